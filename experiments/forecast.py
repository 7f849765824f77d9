"""Next-step forecasting of a real series: stateful LSTM, LSTM and SRN on windows, a 1D CNN.

Claim (2) of the lecture: a long series is learned *statefully* (one consecutive part per batch,
the carry kept from batch to batch, no shuffling) or from sliding windows, e.g. by a 1D CNN.

Data (offline, shipped by pmdarima/statsmodels): by default the daily Microsoft close price
1986-2017 (``seqjax.data.load_msft``). Chronological 75/15/10 split on the target day; a
``Standardizer`` fitted on the training part only; the models see ``config.data.transform`` of the
series (``logdiff``: daily log returns, ``diff``: daily changes, ``level``: the price itself) and
predict its next value, which is mapped back to a next-day price. Test RMSE and MAE in the
original units (dollars), computed once with the parameters of the best validation epoch, against
two baselines: persistence (tomorrow = today) and a linear autoregression of order
``baselines.ar_order`` fitted by least squares on the training part.

Models (``config.models``):

- ``stateful_lstm``: the lecture's layout: ``stateful_batches`` (``B`` streams, parts of
  ``timesteps`` steps), the carry kept across batches (truncated BPTT), no shuffling; predicts
  every next step; evaluated by one pass over the whole series from a zero carry.
- ``lstm``, ``srn``: the same recurrent layers on shuffled sliding windows of ``window`` steps,
  predicting the step after the window.
- ``cnn``: a causal dilated 1D CNN (``TemporalConv``) over the same windows.
"""

from __future__ import annotations

import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm.auto import tqdm

from experiments import plots
from experiments.workdir import Workdir
from seqjax.data import (
    Standardizer,
    load_series,
    split_points,
    stateful_batches,
    windows,
)
from seqjax.nn import LSTM, SimpleRNN, TemporalConv

MODEL_LABELS = {
    "stateful_lstm": "LSTM, stateful (consecutive parts, carry kept)",
    "lstm": "LSTM, shuffled windows",
    "srn": "SimpleRNN, shuffled windows",
    "cnn": "1D CNN (causal, dilated), shuffled windows",
}


# ---- data ----------------------------------------------------------------------------------
def load(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The raw series, its transform ``s``, split indices and the standardised ``z``."""
    series = load_series(config.data.name)
    values = np.asarray(series.values, np.float64)
    if values.ndim == 2:
        values = values[:, list(series.columns).index(config.data.column)]
    raw = values[-config.data.limit :] if config.data.limit else values
    time_stamps = series.time[-len(raw) :]
    n = len(raw)
    transform = config.data.transform
    s = np.zeros(n)
    if transform == "level":
        s = raw.copy()
    elif transform == "diff":
        s[1:] = np.diff(raw)
    elif transform == "logdiff":
        s[1:] = np.diff(np.log(raw))
    else:
        raise ValueError(f"data.transform must be level, diff or logdiff, got {transform!r}")
    first = 0 if transform == "level" else 1  # s[0] is undefined for differences
    train, val, test = split_points(n, *config.data.split)
    scaler = Standardizer().fit(s[first : train.stop])
    z = scaler.transform(s).astype(np.float32)
    z[:first] = 0.0
    return {
        "raw": raw,
        "z": z,
        "time": time_stamps,
        "first": first,
        "splits": {"train": train, "val": val, "test": test},
        "scaler": scaler,
        "name": series.name,
    }


def to_price(data: dict[str, Any], target_times: np.ndarray, z_pred: np.ndarray) -> np.ndarray:
    """Maps standardised predictions of ``s[t]`` to predictions of ``raw[t]`` (original units)."""
    s_pred = data["scaler"].inverse_transform(np.asarray(z_pred, np.float64))
    previous = data["raw"][target_times - 1]
    transform = data.get("transform")
    if transform == "level":
        return s_pred
    if transform == "diff":
        return previous + s_pred
    return previous * np.exp(s_pred)


def window_data(data: dict[str, Any], window: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Windows of ``z`` per split, selected by the time of their target, and those times."""
    inputs, targets = windows(data["z"], window)
    target_time = np.arange(len(targets)) + window
    out = {}
    for split, part in data["splits"].items():
        lo = max(part.start, window + data["first"])
        keep = (target_time >= lo) & (target_time < part.stop)
        out[split] = (
            np.asarray(inputs[keep])[..., None],
            np.asarray(targets[keep]),
            target_time[keep],
        )
    return out


# ---- models --------------------------------------------------------------------------------
class Forecaster(nn.Module):
    """A body over ``[B, T, 1]`` and a Dense readout: one prediction per step ``[B, T]``."""

    body: nn.Module
    recurrent: bool = True

    @nn.compact
    def __call__(self, inputs, carry=None):
        if self.recurrent:
            carry, ys = self.body(inputs, carry)
        else:
            ys = self.body(inputs)
        return carry, nn.Dense(1, name="head")(ys)[..., 0]


def make_model(name: str, config: ml_collections.ConfigDict) -> Forecaster:
    h = config.model.hidden
    impl = {"implementation": config.model.get("implementation", "scan")}
    if name in ("stateful_lstm", "lstm"):
        return Forecaster(LSTM(h, **impl))
    if name == "srn":
        return Forecaster(SimpleRNN(h, **impl))
    if name == "cnn":
        conv = TemporalConv(
            features=[config.model.conv_channels] * len(config.model.conv_dilations),
            kernel_size=config.model.conv_kernel,
            dilations=list(config.model.conv_dilations),
        )
        return Forecaster(conv, recurrent=False)
    raise ValueError(f"unknown model {name!r}; choose from {sorted(MODEL_LABELS)}")


def model_names(config: ml_collections.ConfigDict) -> list[str]:
    names = [n.strip() for n in config.models.split(",") if n.strip()]
    for n in names:
        if n not in MODEL_LABELS:
            raise ValueError(f"config.models: unknown model {n!r}")
    return names


# ---- baselines -----------------------------------------------------------------------------
def ar_fit_predict(z: np.ndarray, order: int, train_times: np.ndarray, times: np.ndarray):
    """Least-squares AR(order) with intercept on ``z``, fitted on targets at ``train_times``."""

    def design(t):
        lags = np.stack([z[t - k] for k in range(1, order + 1)], axis=1)
        return np.concatenate([lags, np.ones((len(t), 1))], axis=1)

    coef, *_ = np.linalg.lstsq(design(train_times), z[train_times], rcond=None)
    return design(times) @ coef


def errors(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    e = np.asarray(pred, np.float64) - truth
    return {"rmse": float(np.sqrt(np.mean(e**2))), "mae": float(np.mean(np.abs(e)))}


# ---- training ------------------------------------------------------------------------------
def _optimizer(config):
    return optax.chain(
        optax.clip_by_global_norm(config.train.clip_norm), optax.adam(config.train.learning_rate)
    )


def train_model(name, config, data, wins, wd: Workdir) -> dict[str, Any]:
    """Trains one model, keeping the parameters of the best validation epoch; resumes."""
    model = make_model(name, config)
    stateful = name == "stateful_lstm"
    tx = _optimizer(config)
    z, splits = data["z"], data["splits"]
    if stateful:
        train_z = z[data["first"] : splits["train"].stop]
        xs, ys = stateful_batches(
            train_z, config.stateful.batch_size, config.stateful.timesteps, warn=False
        )
        xs, ys = np.asarray(xs), np.asarray(ys)[..., 0]
        example = xs[0]
    else:
        example = wins["train"][0][:2]
    params = jax.jit(model.init)(jax.random.key(config.seed), jnp.asarray(example))["params"]
    state = {
        "params": params,
        "best": params,
        "opt_state": tx.init(params),
        "best_val": jnp.asarray(np.inf, jnp.float32),
    }
    epoch0 = 0
    restored = wd.restore(name, state)
    if restored is not None:
        epoch0, state = restored

    def loss_fn(params, x, y, carry):
        carry, pred = model.apply({"params": params}, x, carry)
        if not stateful:
            pred = pred[:, -1]  # the step after the window
        return jnp.mean((pred - y) ** 2), carry

    @jax.jit
    def train_step(params, opt_state, x, y, carry):
        (loss, carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, carry)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, carry

    full_pass = jax.jit(lambda p, x: model.apply({"params": p}, x)[1])

    def predict(params, split):
        """Standardised predictions for the targets of ``split`` and their times."""
        if stateful:  # one pass over the whole series, from a zero carry
            out = np.asarray(full_pass(params, jnp.asarray(z[None, :, None])))[0]
            times = np.arange(splits[split].start, splits[split].stop)
            times = times[times >= data["first"] + 1]
            return out[times - 1], times
        x, _, times = wins[split]
        preds = [
            np.asarray(full_pass(params, jnp.asarray(x[i : i + 1024])))[:, -1]
            for i in range(0, len(x), 1024)
        ]
        return np.concatenate(preds), times

    def val_rmse(params):
        pred, times = predict(params, "val")
        return errors(to_price(data, times, pred), data["raw"][times])["rmse"]

    epochs = config.train.epochs
    bar = tqdm(total=epochs, initial=epoch0, desc=MODEL_LABELS[name], unit="epoch")
    tick = time.perf_counter()
    params, opt_state = state["params"], state["opt_state"]
    best, best_val = state["best"], float(state["best_val"])
    for epoch in range(epoch0 + 1, epochs + 1):
        losses = []
        if stateful:
            carry = model.body.initial_carry(xs.shape[1])  # reset once per epoch
            for k in range(xs.shape[0]):  # in time order: row j of batch k+1 continues row j of k
                params, opt_state, loss, carry = train_step(params, opt_state, xs[k], ys[k], carry)
                losses.append(loss)
        else:
            x, y, _ = wins["train"]
            order = np.random.default_rng([config.seed, epoch]).permutation(len(x))
            bs = config.train.batch_size
            for i in range(0, len(x) - bs + 1, bs):
                idx = order[i : i + bs]
                params, opt_state, loss, _ = train_step(params, opt_state, x[idx], y[idx], None)
                losses.append(loss)
        rmse = val_rmse(params)
        if rmse < best_val:
            best, best_val = params, rmse
        train_mse = float(np.mean(jax.device_get(losses)))
        wd.log(name, epoch, train_mse=train_mse, val_rmse=rmse)
        wd.save(
            name,
            epoch,
            {
                "params": params,
                "best": best,
                "opt_state": opt_state,
                "best_val": jnp.asarray(best_val, jnp.float32),
            },
        )
        bar.set_postfix(val_rmse=f"{rmse:.4g}")
        bar.update(1)
    bar.close()
    pred, times = predict(best, "test")
    val_pred, val_times = predict(best, "val")
    return {
        "label": MODEL_LABELS[name],
        "test": errors(to_price(data, times, pred), data["raw"][times]),
        "val_rmse": errors(to_price(data, val_times, val_pred), data["raw"][val_times])["rmse"],
        "best_epoch": 1 + int(np.argmin([r["val_rmse"] for r in wd.metrics(name)])),
        "train_seconds_this_session": round(time.perf_counter() - tick, 1),
        "test_prices": to_price(data, times, pred),
        "test_times": times,
    }


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Fits the baselines and every model of ``config.models``; test metrics computed once each."""
    wd = Workdir(workdir)
    wd.write_config(config)
    tick = time.perf_counter()
    data = load(config)
    data["transform"] = config.data.transform
    wins = window_data(data, config.data.window)
    raw, splits = data["raw"], data["splits"]
    test_times = np.arange(max(splits["test"].start, 1), splits["test"].stop)
    truth = raw[test_times]

    # Baselines.
    persistence = raw[test_times - 1]
    order = config.baselines.ar_order
    z = data["z"]
    train_times = np.arange(order + data["first"], splits["train"].stop)
    ar_z = ar_fit_predict(z, order, train_times, test_times)
    ar = to_price(data, test_times, ar_z)
    table = {
        "persistence": {
            "label": "persistence (tomorrow = today)",
            "test": errors(persistence, truth),
        },
        "linear_ar": {
            "label": f"linear AR({order}), least squares on the training part",
            "test": errors(ar, truth),
        },
    }
    predictions = {"persistence": persistence, f"linear AR({order})": ar}

    for name in model_names(config):
        info = train_model(name, config, data, wins, wd)
        assert np.array_equal(info.pop("test_times"), test_times)
        predictions[MODEL_LABELS[name]] = info.pop("test_prices")
        table[name] = info
    wd.close()

    persistence_rmse = table["persistence"]["test"]["rmse"]
    for entry in table.values():
        entry["rmse_vs_persistence"] = entry["test"]["rmse"] / persistence_rmse
        entry["beats_persistence"] = entry["test"]["rmse"] < persistence_rmse
    best = min(table, key=lambda k: table[k]["test"]["rmse"])
    unit = "USD" if data["name"] == "msft" else "original units"
    title = (
        f"{data['name']} {config.data.column if data['name'] == 'msft' else ''}: next-step "
        f"forecasts on the test part ({len(test_times)} steps)"
    )
    forecast_png = plots.forecasts(
        wd.path / "forecasts.png",
        data["time"][test_times],
        truth,
        predictions,
        title=title,
        ylabel=unit,
        zoom=config.plot.zoom,
    )
    history_png = plots.histories(
        wd.path / "validation.png",
        {
            f"validation RMSE ({unit})": {
                MODEL_LABELS[n]: [r["val_rmse"] for r in wd.metrics(n)] for n in model_names(config)
            }
        },
        title="validation after each epoch",
    )
    results = {
        "series": data["name"],
        "transform": config.data.transform,
        "units": unit,
        "split_sizes": {k: v.stop - v.start for k, v in splits.items()},
        "test_steps": len(test_times),
        "models": table,
        "best": best,
        "any_model_beats_persistence": any(
            table[n]["beats_persistence"] for n in model_names(config)
        ),
        "seconds_this_session": round(time.perf_counter() - tick, 1),
        "plots": [str(forecast_png), str(history_png)],
    }
    wd.write_results(results)
    return results


def summary(results: dict[str, Any]) -> str:
    """A Markdown table of the test errors, each RMSE also as a ratio to persistence's."""
    u = results["units"]
    lines = [
        f"| model | test RMSE ({u}) | test MAE ({u}) | RMSE / persistence |",
        "|---|---|---|---|",
    ]
    for entry in results["models"].values():
        lines.append(
            f"| {entry['label']} | {entry['test']['rmse']:.4f} | {entry['test']['mae']:.4f} | "
            f"{entry['rmse_vs_persistence']:.3f} |"
        )
    best = results["models"][results["best"]]
    gain = 1.0 - best["rmse_vs_persistence"]
    if gain <= 0:
        verdict = "no model beats persistence"
    elif gain < 0.01:
        verdict = (
            f"the best ({best['label']}) is {100 * gain:.1f}% below persistence's RMSE: "
            "a tie, nothing beats persistence by a meaningful margin"
        )
    else:
        verdict = f"the best ({best['label']}) is {100 * gain:.1f}% below persistence's RMSE"
    lines.append(f"\n{results['test_steps']} test steps of {results['series']}: {verdict}.")
    return "\n".join(lines)

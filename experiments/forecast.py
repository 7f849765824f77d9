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
  every next step; validated and tested by one pass over the series from a zero carry
  (``stateful_batches(..., drop="pad")`` with one stream: every step kept, the targets outside
  the split masked). It trains for as many Adam steps as the windowed models by default
  (``stateful.epochs=0``): one of its epochs makes a handful of updates (sunspots: 5 against
  32), and with the windowed models' epochs it stayed under-trained (``forecast_study.py``).
- ``lstm``, ``srn``: the same recurrent layers on shuffled sliding windows of ``window`` steps,
  predicting the step after the window.
- ``cnn``: a causal dilated 1D CNN (``TemporalConv``) over the same windows.

Every model trains through ``seqjax.train.fit`` (its own workdir ``<workdir>/<model>``: checkpoints
and resume, ``metrics.jsonl``, the state of the best validation epoch kept); the validation metric
is the MSE of the standardised series, the test table is in the original units.
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

from experiments import plots
from experiments.workdir import Workdir
from seqjax.data import (
    Standardizer,
    load_series,
    padded_batches,
    split_points,
    stateful_batches,
    stateful_layout,
    windows,
)
from seqjax.nn import LSTM, SimpleRNN, TemporalConv
from seqjax.train import SequenceModel, fit

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
class ConvForecaster(nn.Module):
    """A causal 1D CNN over ``[B, T, 1]`` and a Dense readout at the last step: ``[B, 1]``.

    Follows ``seqjax.train``'s model protocol without a carry (``None``).
    """

    conv: nn.Module

    @nn.compact
    def __call__(self, inputs, carry=None, *, deterministic: bool = True):
        return None, nn.Dense(1, name="head")(self.conv(inputs)[:, -1])

    def initial_carry(self, batch_size: int, dtype: Any = None) -> None:
        return None


def make_model(name: str, config: ml_collections.ConfigDict) -> nn.Module:
    """Stateful: ``[B, T, 1] -> [B, T, 1]`` (every next step); windows: ``[B, W, 1] -> [B, 1]``."""
    h = config.model.hidden
    impl = {"implementation": config.model.get("implementation", "auto")}
    if name == "stateful_lstm":
        return SequenceModel(LSTM(h, **impl), output_features=1)
    if name == "lstm":
        return SequenceModel(LSTM(h, **impl), output_features=1, return_sequences=False)
    if name == "srn":
        return SequenceModel(SimpleRNN(h, **impl), output_features=1, return_sequences=False)
    if name == "cnn":
        conv = TemporalConv(
            features=[config.model.conv_channels] * len(config.model.conv_dilations),
            kernel_size=config.model.conv_kernel,
            dilations=list(config.model.conv_dilations),
        )
        return ConvForecaster(conv)
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
def series_pass(data: dict[str, Any], split: str, timesteps: int) -> dict[str, np.ndarray]:
    """One stream over the series up to the end of ``split``, every step kept
    (``drop="pad"``), only the targets inside ``split`` counted: a stateful evaluation source."""
    z, part = data["z"], data["splits"][split]
    laid = stateful_batches(z[: part.stop], 1, timesteps, drop="pad")
    target_time = np.arange(1, part.stop)  # input step t predicts z[t + 1]
    inside = (target_time >= max(part.start, data["first"] + 1)).astype(np.float32)
    mask = stateful_layout(inside, 1, timesteps, drop="pad")
    return {**laid, "targets": laid["targets"], "mask": laid["mask"] * mask}


def training_source(name, config, data, wins) -> tuple[dict, dict]:
    """``(train, val)`` batch sources of ``fit`` for model ``name``."""
    if name == "stateful_lstm":
        z, splits = data["z"], data["splits"]
        train_z = z[data["first"] : splits["train"].stop]
        drop = config.stateful.get("drop", "end")
        if drop not in ("end", "start"):
            raise ValueError(f"config.stateful.drop must be 'end' or 'start', got {drop!r}")
        xs, ys = stateful_batches(
            train_z, config.stateful.batch_size, config.stateful.timesteps, drop=drop
        )
        eval_steps = config.stateful.get("eval_timesteps", 0) or config.stateful.timesteps
        train = {"inputs": xs, "targets": ys}
        burn_in = config.stateful.get("train_burn_in", 0)
        if burn_in:  # the first steps of every stream (cold carry) leave the loss
            num, _, steps = xs.shape[:3]
            position = np.arange(num)[:, None, None] * steps + np.arange(steps)[None, None, :]
            train["mask"] = np.broadcast_to(position >= burn_in, xs.shape[:3]).astype(np.float32)
        return train, series_pass(data, "val", eval_steps)
    x, y, _ = wins["train"]
    bs = config.train.batch_size
    keep = len(x) // bs * bs  # full batches (reshuffled every epoch)
    train = padded_batches(x[:keep], y[:keep, None], bs)
    val_x, val_y, _ = wins["val"]
    return train, padded_batches(val_x, val_y[:, None], 1024)


def stateful_predictions(
    model: nn.Module, params: Any, z: np.ndarray, times: np.ndarray, burn_in: int | None = None
) -> np.ndarray:
    """Standardised predictions of ``z[times]`` (consecutive target times) by a many-to-many
    model in one pass from a zero carry. ``burn_in=None``: the pass starts at the series' first
    step (the carry has seen the whole history); ``N``: it starts ``N`` inputs before the first
    scored one (``0``: a cold start, the first target predicted from one input)."""
    first = int(times[0]) - 1  # the input that predicts the first target
    start = 0 if burn_in is None else max(0, first - int(burn_in))
    inputs = jnp.asarray(z[start : int(times[-1])][None, :, None])
    out = np.asarray(_full_pass(model)(params, inputs))[0]
    return out[np.asarray(times) - 1 - start]


def _full_pass(model: nn.Module):
    """The jitted ``params, [B, T, 1] -> [B, T]`` (or ``[B]``) forward pass of ``model``."""
    return jax.jit(lambda p, x: model.apply({"params": p}, x)[1][..., 0])


def window_predictions(model: nn.Module, params: Any, x: np.ndarray) -> np.ndarray:
    """Standardised predictions of a windowed model for the windows ``x`` ``[N, W, 1]``."""
    full_pass = _full_pass(model)
    preds = [
        np.asarray(full_pass(params, jnp.asarray(x[i : i + 1024]))) for i in range(0, len(x), 1024)
    ]
    return np.concatenate(preds)


def epochs_of(name: str, config: ml_collections.ConfigDict, data, wins) -> int:
    """Training epochs of model ``name``: ``train.epochs``, except for the stateful LSTM:
    ``stateful.epochs``, or with ``0`` as many epochs as give it the Adam steps of the windowed
    models' ``train.epochs`` (rounded up). One stateful epoch makes far fewer updates (sunspots:
    5 against 32; an update there averages 400 targets, the windowed one 64)."""
    if name != "stateful_lstm":
        return int(config.train.epochs)
    if config.stateful.epochs:
        return int(config.stateful.epochs)
    windowed_steps = config.train.epochs * (len(wins["train"][0]) // config.train.batch_size)
    train, _ = training_source(name, config, data, wins)
    return -(-windowed_steps // int(np.asarray(train["inputs"]).shape[0]))


def fit_model(
    name, config, data, wins, workdir, *, progress: bool = True
) -> tuple[nn.Module, Any, float]:
    """``(model, FitResult, seconds)``: model ``name`` trained by ``seqjax.train.fit`` in
    ``workdir`` (resumed from its checkpoints), the state of the best validation epoch kept."""
    model = make_model(name, config)
    stateful = name == "stateful_lstm"
    train, val = training_source(name, config, data, wins)
    truncation = config.stateful.get("truncation", 0) if stateful else 0
    learning_rate = config.train.learning_rate
    if stateful and config.stateful.get("learning_rate", 0.0):
        learning_rate = config.stateful.learning_rate
    tick = time.perf_counter()
    result = fit(
        model,
        train,
        val_data=val,
        optimizer=optax.adam(learning_rate),
        clip_norm=config.train.clip_norm,
        workdir=workdir,
        num_epochs=epochs_of(name, config, data, wins),
        loss="mse",
        stateful=stateful,
        shuffle=not stateful,
        truncation=truncation or None,
        seed=config.seed,
        keep_best=True,
        progress=progress,
        tensorboard=False,
    )
    return model, result, time.perf_counter() - tick


def predict(name, model, params, data, wins, split) -> tuple[np.ndarray, np.ndarray]:
    """Standardised predictions of model ``name`` for the targets of ``split`` and their times;
    the stateful model by one pass over the whole series from a zero carry."""
    if name == "stateful_lstm":
        part = data["splits"][split]
        times = np.arange(max(part.start, data["first"] + 1), part.stop)
        return stateful_predictions(model, params, data["z"], times), times
    x, _, times = wins[split]
    return window_predictions(model, params, x), times


def train_model(name, config, data, wins, wd: Workdir) -> dict[str, Any]:
    """Trains one model with ``seqjax.train.fit``, keeping the state of the best validation
    epoch; resumes from ``<workdir>/<name>``."""
    model, result, seconds = fit_model(name, config, data, wins, wd.part(name))
    best = result.best_state.params
    pred, times = predict(name, model, best, data, wins, "test")
    val_pred, val_times = predict(name, model, best, data, wins, "val")
    return {
        "label": MODEL_LABELS[name],
        "test": errors(to_price(data, times, pred), data["raw"][times]),
        "val_rmse": errors(to_price(data, val_times, val_pred), data["raw"][val_times])["rmse"],
        "best_epoch": 1 + int(result.best_epoch),
        "epochs": epochs_of(name, config, data, wins),
        "val_mse_by_epoch": [h["val"]["loss"] for h in result.history],
        "train_seconds_this_session": round(seconds, 1),
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
            "validation MSE (standardised series)": {
                MODEL_LABELS[n]: table[n]["val_mse_by_epoch"] for n in model_names(config)
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

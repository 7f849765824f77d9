"""Online learning vs stateful batched training, next-day forecasting of Microsoft's close.

Data: the daily close 1986-2017 (``seqjax.data.load_msft``), as daily log returns
``r[t] = log(p[t+1] / p[t])``; ``chronological_split`` 75/15/10 of the returns; a
``Standardizer`` fitted on the training part only. Every model reads the standardised return of
day t and predicts that of day t+1, mapped back to a price ``p[t+1] * exp(r_hat)``; test RMSE and
MAE in dollars against persistence (tomorrow = today, i.e. a zero return) and drift (the
training part's mean return) on the same days.

Models:

- ``batched``: the stateful LSTM of ``seqjax.train.fit``: the training days cut into
  ``batched.batch_size`` consecutive streams of ``batched.timesteps``-day parts, the carry kept
  from part to part, ``batched.epochs`` epochs (truncated BPTT of one part).
- ``online_k{k}``: the same LSTM trained day by day with ``seqjax.train.online_fit``, one pass over
  the training days in time order, one Adam update per day, the gradient of that day's loss
  backpropagated through the last ``k`` days (TBPTT(1, k); ``k=1`` is T=1 chunks with the carry
  held).

Both are evaluated the same way: the final parameters run over the whole series from a zero
carry in one call (the chunked evaluation) and the test days' predictions are scored. The
online models are also scored *prequentially*: they keep learning through validation and test,
and each test day is predicted before the update that sees it (how an online model is used).
Wall times include compilation; the machine is shared (``results["load_before"]``,
``load_after``). Use a fresh workdir for timings: ``fit`` resumes from the checkpoints it finds in
``workdir/batched``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from seqjax.data import (
    Standardizer,
    chronological_split,
    load_msft,
    load_series,
    stateful_batches,
)
from seqjax.nn import LSTM
from seqjax.train import SequenceModel, create_online_state, fit, online_fit


# ---- data ----------------------------------------------------------------------------------
def load_returns(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Prices ``p [n]``, the modelled series ``s [n-1]`` (``s[t]`` is known on day ``t + 1``),
    split indices of ``s``, scaler, standardised ``z``.

    ``data.transform``: ``logdiff`` (default): ``s[t] = log(p[t+1] / p[t])``; ``level``:
    ``s[t] = p[t+1]`` (the series itself, e.g. the sunspot numbers).
    """
    if config.data.name == "msft":
        prices = load_msft(columns=("Close",)).values[:, 0]
    else:
        series = load_series(config.data.name)
        prices = series.values if series.values.ndim == 1 else series.values[:, 0]
    prices = np.asarray(prices, np.float64)
    if config.data.limit:
        prices = prices[-config.data.limit :]
    if config.data.transform == "logdiff":
        returns = np.diff(np.log(prices))
    elif config.data.transform == "level":
        returns = prices[1:].copy()
    else:
        raise ValueError(f"data.transform must be logdiff or level; got {config.data.transform!r}")
    train, val, test = chronological_split(np.arange(len(returns)), *config.data.split)
    scaler = Standardizer().fit(returns[train])
    return {
        "prices": prices,
        "returns": returns,
        "transform": config.data.transform,
        "z": scaler.transform(returns).astype(np.float32),
        "splits": {"train": train, "val": val, "test": test},
        "scaler": scaler,
    }


def make_model(config: ml_collections.ConfigDict) -> SequenceModel:
    return SequenceModel(LSTM(config.model.hidden), output_features=1)


def _optimizer(part: ml_collections.ConfigDict) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(part.clip_norm), optax.adam(part.learning_rate))


def predict_series(model: SequenceModel, params: Any, z: np.ndarray) -> np.ndarray:
    """The in-library chunked evaluation: one call over ``z [N]`` from a zero carry; ``[N]``
    standardised predictions, entry t for day t+1."""
    _, predictions = jax.jit(model.apply)({"params": params}, z[None, :, None])
    return np.asarray(predictions)[0, :, 0]


def score(data: dict[str, Any], predicted_z: np.ndarray, days: np.ndarray) -> dict[str, float]:
    """RMSE/MAE in dollars (and of the standardised return) of the predictions for ``days``
    (indices of ``r``; ``predicted_z[i]`` predicts ``z[days[i]]``)."""
    predicted_s = data["scaler"].inverse_transform(np.asarray(predicted_z, np.float64))
    prices = data["prices"]
    if data["transform"] == "logdiff":
        predicted_s = prices[days] * np.exp(predicted_s)
    error = predicted_s - prices[days + 1]
    z_error = np.asarray(predicted_z, np.float64) - data["z"][days]
    persistence = prices[days] - prices[days + 1]
    gain = persistence**2 - error**2  # > 0 on average: better than persistence
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "rmse_z": float(np.sqrt(np.mean(z_error**2))),
        # Paired squared-error gain over persistence, day by day, and its standard error: a
        # difference within about two standard errors is a tie.
        "mse_gain_vs_persistence": float(np.mean(gain)),
        "mse_gain_se": float(np.std(gain, ddof=1) / np.sqrt(len(gain))),
    }


def persistence_z(data: dict[str, Any], days: np.ndarray) -> np.ndarray:
    """Persistence (tomorrow's price = today's) as standardised predictions of ``s[days]``."""
    scaler = data["scaler"]
    if data["transform"] == "logdiff":  # a zero return
        return np.full(len(days), -scaler.mean_ / scaler.scale_)
    return scaler.transform(data["prices"][days])


# ---- training ------------------------------------------------------------------------------
def train_batched(config, data, workdir: Path) -> tuple[SequenceModel, Any, float]:
    """The stateful batched LSTM through ``seqjax.train.fit``: ``(model, params, seconds)``."""
    z, splits = data["z"], data["splits"]
    xs, ys = stateful_batches(
        z[splits["train"]], config.batched.batch_size, config.batched.timesteps, warn=False
    )
    val = z[splits["val"]]
    model = make_model(config)
    start = time.perf_counter()
    result = fit(
        model,
        {"inputs": np.asarray(xs), "targets": np.asarray(ys)},
        val_data={"inputs": val[None, None, :-1, None], "targets": val[None, None, 1:, None]},
        optimizer=optax.adam(config.batched.learning_rate),
        clip_norm=config.batched.clip_norm,
        workdir=workdir,
        num_epochs=config.batched.epochs,
        stateful=True,
        seed=config.seed,
        progress=False,
        tensorboard=False,
    )
    jax.block_until_ready(result.state.params)
    return model, result.state.params, time.perf_counter() - start


def train_online(config, data, window: int) -> dict[str, Any]:
    """One pass over the training days, an update per day; then on through val and test."""
    z, splits = data["z"], data["splits"]
    model = make_model(config)
    state = create_online_state(
        model,
        _optimizer(config.online),
        batch_size=1,
        features=1,
        window=window,
        seed=config.seed,
    )
    pairs = lambda days: (z[days][:-1, None, None], z[days][1:, None, None])
    train_days = splits["train"]
    rng = jax.random.key(config.seed)
    start = time.perf_counter()
    run = jax.jit(online_fit).lower(state, *pairs(train_days), rng).compile()
    compiled = time.perf_counter()
    state, _, losses = run(state, *pairs(train_days), rng)
    jax.block_until_ready(state.train.params)
    seconds = time.perf_counter() - start
    run_seconds = time.perf_counter() - compiled
    # Prequential: keep learning from the last training day to the end; predictions made first.
    rest = np.arange(train_days[-1], len(z))
    _, prequential, _ = jax.jit(online_fit)(state, *pairs(rest), rng)
    prequential = np.asarray(prequential)[:, 0, 0]  # entry i predicts z[rest[i] + 1]
    return {
        "model": model,
        "params": state.train.params,
        "seconds": seconds,
        "run_seconds": run_seconds,
        "train_loss_last_1000": float(np.mean(np.asarray(losses)[-1000:])),
        "prequential": dict(zip((rest[1:]).tolist(), prequential.tolist(), strict=True)),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def windows(config) -> list[int]:
    return [int(w) for w in str(config.online.windows).split(",") if w.strip()]


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(config.to_json_best_effort(indent=2))
    data = load_returns(config)
    z, test = data["z"], data["splits"]["test"]
    test_days = test[:-1] if test[-1] + 1 >= len(data["prices"]) else test
    inputs_for = test_days - 1  # the prediction of z[d] is made on day d - 1
    results: dict[str, Any] = {
        "data": f"{config.data.name} ({config.data.transform})",
        "test_days": int(len(test_days)),
        "train_days": int(len(data["splits"]["train"])),
        "load_before": load_average(),
        "cpu_count": os.cpu_count(),
        "models": {},
    }
    results["models"]["persistence"] = score(data, persistence_z(data, test_days), test_days)
    results["models"]["drift"] = score(data, np.zeros(len(test_days)), test_days)  # train mean
    model, params, seconds = train_batched(config, data, path / "batched")
    entry = score(data, predict_series(model, params, z)[inputs_for], test_days)
    entry.update(seconds=seconds, updates=int(config.batched.epochs) * _num_batches(config, data))
    results["models"]["batched"] = entry
    for k in windows(config):
        online = train_online(config, data, k)
        entry = score(
            data, predict_series(online["model"], online["params"], z)[inputs_for], test_days
        )
        prequential = np.asarray([online["prequential"][int(d)] for d in test_days])
        entry["prequential"] = score(data, prequential, test_days)
        entry.update(
            seconds=online["seconds"],
            run_seconds=online["run_seconds"],
            updates=int(len(data["splits"]["train"]) - 1),
            train_loss_last_1000=online["train_loss_last_1000"],
        )
        results["models"][f"online_k{k}"] = entry
    results["load_after"] = load_average()
    models = results["models"]
    learned = {n: m for n, m in models.items() if n not in ("persistence", "drift")}
    results["winner"] = min(learned, key=lambda name: learned[name]["rmse"])
    prequential = {
        f"{n} (prequential)": m["prequential"] for n, m in models.items() if "prequential" in m
    }
    results["winner_with_prequential"] = min(
        {**learned, **prequential}.items(), key=lambda item: item[1]["rmse"]
    )[0]
    (path / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _num_batches(config, data) -> int:
    days = len(data["splits"]["train"]) - 1
    return days // (config.batched.batch_size * config.batched.timesteps)


def summary(results: dict[str, Any]) -> str:
    lines = [
        f"{results['data']}: next step, {results['test_days']} test steps "
        f"({results['train_days']} training days); load {results['load_before']} -> "
        f"{results['load_after']} on {results['cpu_count']} cores",
        f"{'model':<14}{'RMSE':>9}{'MAE':>9}{'RMSE z':>9}{'preq. RMSE':>14}"
        f"{'updates':>9}{'wall s':>9}",
    ]
    for name, m in results["models"].items():
        preq = m.get("prequential", {}).get("rmse")
        preq_text = "" if preq is None else f"{preq:.4f}"
        wall = "" if "seconds" not in m else f"{m['seconds']:.1f}"
        lines.append(
            f"{name:<14}{m['rmse']:>9.4f}{m['mae']:>9.4f}{m['rmse_z']:>9.4f}"
            f"{preq_text:>14}{m.get('updates', ''):>9}{wall:>9}"
        )
    lines.append(
        f"lowest test RMSE of the learned models: {results['winner']} (frozen), "
        f"{results['winner_with_prequential']} (with the prequential scores)"
    )
    gains = [
        f"{name} {m['mse_gain_vs_persistence']:+.4f} +- {m['mse_gain_se']:.4f}"
        for name, m in results["models"].items()
        if name not in ("persistence", "drift")
    ]
    lines.append("MSE gain over persistence (units^2, +- 1 s.e.): " + ", ".join(gains))
    return "\n".join(lines)

"""Long-range dependencies: the adding problem (Hochreiter & Schmidhuber 1997, Experiment 4).

Claim (1) of the lecture: a simple RNN's gradient vanishes over long lags and an LSTM's does not,
so the LSTM learns a dependency 50-100 steps back that the SRN cannot. Every model gets the same
budget (steps, batch, optimiser); each is scored once on ``test_size`` fresh sequences: the
fraction with ``|error| < 0.04`` (the paper's criterion) and the MSE. Predicting the mean (0.5)
scores MSE ~ 1/24 ~ 0.042: the "baseline" a model stuck at the start stays at.

Every model trains through ``seqjax.train.fit`` (a step budget of fresh batches, validation every
``eval_every`` steps, gradient clipping, checkpoints and resume, NaN guard), one fit workdir per
model. Writes to the workdir: ``config.json``, ``results.json``, ``learning_curves.png``,
``gradient_by_lag.png``, and per model ``<model>/metrics.jsonl`` (train loss every ``eval_every``
steps, validation MSE and fraction solved), TensorBoard files and orbax checkpoints.
"""

from __future__ import annotations

import functools
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
from seqjax import diagnostics
from seqjax.data import adding_problem
from seqjax.nn import GRU, LSTM, SimpleRNN
from seqjax.train import FreshBatches, SequenceModel, create_train_state, fit

SOLVED = 0.04  # the paper's criterion on the absolute error
BASELINE_MSE = 1.0 / 24.0  # predicting 0.5: Var((X1 + X2) / 4) with X1, X2 ~ U[-1, 1]

MODEL_LABELS = {
    "srn": "SimpleRNN",
    "srn_exploding": "SimpleRNN, large recurrent weights",
    "gru": "GRU",
    "lstm": "LSTM (forget bias {fb:g})",
    "lstm_fb1": "LSTM (forget bias 1)",
    "lstm_chrono": "LSTM (chrono init, T_max={T})",
}


def adding_model(recurrent: nn.Module) -> SequenceModel:
    """The recurrent layer read at each row's last valid step, then a Dense to one number."""
    return SequenceModel(recurrent, output_features=1, return_sequences=False)


def read_out(ys, seq_lengths, head_variables):
    """The Dense head on each row's last valid step of ``ys [B, T, H]``: ``[B]``."""
    last = jnp.asarray(seq_lengths) - 1
    h = jnp.take_along_axis(ys, last[:, None, None], axis=1)[:, 0]
    return nn.Dense(1).apply(head_variables, h)[:, 0]


def make_recurrent(name: str, config: ml_collections.ConfigDict) -> nn.Module:
    """The recurrent layer called ``name`` (see ``MODEL_LABELS``)."""
    h, length = config.model.hidden, config.data.length
    impl = {"implementation": config.model.get("implementation", "auto")}
    if name == "srn":
        return SimpleRNN(h, **impl)
    if name == "srn_exploding":
        scale = config.diagnostics.exploding_scale
        return SimpleRNN(h, recurrent_kernel_init=_orthogonal(scale=scale), **impl)
    if name == "gru":
        return GRU(h, **impl)
    if name == "lstm":
        return LSTM(h, forget_bias=config.model.forget_bias, **impl)
    if name == "lstm_fb1":
        return LSTM(h, forget_bias=1.0, **impl)
    if name == "lstm_chrono":
        return LSTM(h, chrono_max_time=length, **impl)
    raise ValueError(f"unknown model {name!r}; choose from {sorted(MODEL_LABELS)}")


# One initializer object per scale: equal models, so the jitted functions below compile once.
_orthogonal = functools.lru_cache(nn.initializers.orthogonal)


def batch(x, y, lengths) -> dict[str, np.ndarray]:
    """An adding-problem batch in ``seqjax.train``'s format (targets ``[B, 1]``)."""
    return {"inputs": x, "targets": np.asarray(y)[:, None], "seq_lengths": lengths}


def _init(model: SequenceModel, seed: int, example: dict) -> Any:
    """The parameters ``fit`` starts from (the same key use as ``create_train_state``)."""
    return create_train_state(model, optax.identity(), example, seed=seed).params


@functools.partial(jax.jit, static_argnums=0)
def _gradient_by_step(model: SequenceModel, params, x, y, lengths):
    """``|dL/dh_t|`` for each step ``t`` (``seqjax.diagnostics``), MSE read at the last step."""

    def loss_fn(ys):
        pred = read_out(ys, lengths, {"params": params["head"]})
        return jnp.mean((pred - y) ** 2)

    recurrent = {"params": params["recurrent"]}
    return diagnostics.loss_gradient_norms(
        model.recurrent, recurrent, x, loss_fn, seq_lengths=lengths
    )


def label(name: str, config: ml_collections.ConfigDict) -> str:
    return MODEL_LABELS[name].format(fb=config.model.forget_bias, T=config.data.length)


def model_names(config: ml_collections.ConfigDict) -> list[str]:
    names = [n.strip() for n in config.models.split(",") if n.strip()]
    for n in names:
        if n not in MODEL_LABELS or n == "srn_exploding":
            raise ValueError(f"config.models: unknown model {n!r}")
    return names


def train_batch(config: ml_collections.ConfigDict, step: int) -> dict[str, np.ndarray]:
    """The training batch of ``step``: a pure function of the seed and the step (exact resume)."""
    rng = np.random.default_rng([config.seed, 0, step])
    return batch(*adding_problem(config.data.batch_size, config.data.length, rng=rng))


def solved(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """1.0 per sequence whose absolute error is below the paper's 0.04, else 0.0: ``[B]``."""
    return (jnp.abs(predictions - targets) < SOLVED).astype(jnp.float32)[..., 0]


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.square(predictions - targets)[..., 0]


METRICS = {"mse": squared_error, "solved": solved}


def train_model(
    name: str, config: ml_collections.ConfigDict, workdir: Workdir, val, test
) -> dict[str, Any]:
    """Trains one model with ``seqjax.train.fit`` (resuming from its checkpoints) and scores it
    once on the test set."""
    model = adding_model(make_recurrent(name, config))
    steps, every = config.train.steps, config.train.eval_every
    resumed = workdir.resumed_step(name)
    tick = time.perf_counter()
    result = fit(
        model,
        FreshBatches(functools.partial(train_batch, config), steps_per_epoch=every),
        optimizer=optax.adam(config.train.learning_rate),
        clip_norm=config.train.clip_norm or None,
        workdir=workdir.part(name),
        num_steps=steps,
        val_data=[val],
        test_data=[test],
        loss="mse",
        metrics=METRICS,
        stateful=False,
        monitor="solved",
        monitor_mode="max",
        stop_at=config.train.stop_when_solved or None,
        seed=config.seed,
        checkpoint_every=config.train.checkpoint_every,
        log_every=every,
        progress=True,
    )
    seconds = time.perf_counter() - tick
    curve = curve_records(result.history)
    first = next((r["step"] for r in curve if r["val_solved"] >= 0.99), None)
    count = result.test["count"]
    return {
        "label": label(name, config),
        "test_mse": result.test["mse"],
        "test_solved": result.test["solved"],
        "test_wrong": int(round((1.0 - result.test["solved"]) * count)),
        "steps_trained": int(curve[-1]["step"]) if curve else 0,
        "steps_this_session": int(curve[-1]["step"]) - resumed if curve else 0,
        "first_step_val_solved_99": first,
        "train_seconds_this_session": round(seconds, 1),
        "init_params": _init(model, config.seed, val),
        "params": result.state.params,
        "model": model,
        "curve": curve,
    }


def curve_records(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``fit``'s history as the learning-curve records: step, train and validation figures."""
    return [
        {
            "step": h["step"],
            "train_mse": h["train"]["loss"],
            "val_mse": h["val"]["mse"],
            "val_solved": h["val"]["solved"],
        }
        for h in history
    ]


def gradient_curves(config, trained: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """``||dL/dh_t||`` against lag at initialisation and after training, fixed-length batch."""
    n, length = config.diagnostics.batch_size, config.data.length
    rng = np.random.default_rng([config.seed, 3])
    x, y, lengths = adding_problem(n, length, rng=rng, variable_length=False)
    curves: dict[str, np.ndarray] = {}

    def curve(model, params):
        """By lag ``k = T - 1 - t`` (``seqjax.diagnostics`` reports by step ``t``)."""
        return np.asarray(_gradient_by_step(model, params, x, y, lengths))[::-1].copy()

    for info in trained.values():
        curves[f"{info['label']}, init"] = curve(info["model"], info["init_params"])
        curves[f"{info['label']}, trained"] = curve(info["model"], info["params"])
    exploding = adding_model(make_recurrent("srn_exploding", config))
    params = _init(exploding, config.seed, batch(x, y, lengths))
    scale = config.diagnostics.exploding_scale
    curves[f"SimpleRNN, recurrent weights x{scale:g} (exploding), init"] = curve(exploding, params)
    return curves


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains every model of ``config.models`` on the adding problem; returns the results."""
    wd = Workdir(workdir)
    wd.write_config(config)
    length = config.data.length
    val = batch(*adding_problem(config.data.val_size, length, seed=config.seed + 10_001))
    test = batch(*adding_problem(config.data.test_size, length, seed=config.seed + 20_002))
    tick = time.perf_counter()
    trained = {}
    for name in model_names(config):
        trained[name] = train_model(name, config, wd, val, test)
    curves = gradient_curves(config, trained)

    learning = plots.learning_curves(
        wd.path / "learning_curves.png",
        {info["label"]: info["curve"] for info in trained.values()},
        title=f"Adding problem, T={length}: validation on {config.data.val_size} fresh sequences",
        baseline=BASELINE_MSE,
    )
    grads = plots.gradient_by_lag(
        wd.path / "gradient_by_lag.png", curves, title=f"Gradient reaching h_t, T={length}"
    )
    results = {
        "task": f"adding problem, T={length} (lengths {length}..{length + length // 10})",
        "test_sequences": config.data.test_size,
        "baseline_mse": BASELINE_MSE,
        "models": {
            name: {
                k: v
                for k, v in info.items()
                if k not in ("init_params", "params", "model", "curve")
            }
            for name, info in trained.items()
        },
        "gradient_by_lag": {
            k: v[[0, length // 4, length // 2, length - 1]].tolist() for k, v in curves.items()
        },
        "gradient_lags": [0, length // 4, length // 2, length - 1],
        "seconds_this_session": round(time.perf_counter() - tick, 1),
        "plots": [str(learning), str(grads)],
    }
    wd.write_results(results)
    return results


def summary(results: dict[str, Any]) -> str:
    """A Markdown table of the results."""
    n = results["test_sequences"]
    lines = [
        f"| model | solved (of {n:,}) | wrong | test MSE | steps | val >= 99% at step |",
        "|---|---|---|---|---|---|",
    ]
    for info in results["models"].values():
        lines.append(
            f"| {info['label']} | {info['test_solved']:.2%} | {info['test_wrong']} | "
            f"{info['test_mse']:.5f} | {info['steps_trained']} | "
            f"{info['first_step_val_solved_99'] or 'never'} |"
        )
    return "\n".join(lines)

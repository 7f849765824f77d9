"""Long-range dependencies: the adding problem (Hochreiter & Schmidhuber 1997, Experiment 4).

Claim (1) of the lecture: a simple RNN's gradient vanishes over long lags and an LSTM's does not,
so the LSTM learns a dependency 50-100 steps back that the SRN cannot. Every model gets the same
budget (steps, batch, optimiser); each is scored once on ``test_size`` fresh sequences: the
fraction with ``|error| < 0.04`` (the paper's criterion) and the MSE. Predicting the mean (0.5)
scores MSE ~ 1/24 ~ 0.042: the "baseline" a model stuck at the start stays at.

Writes to the workdir: ``config.json``, ``metrics.jsonl`` (train loss, validation MSE and
fraction solved every ``eval_every`` steps), ``results.json``, ``learning_curves.png``,
``gradient_by_lag.png`` and orbax checkpoints per model (resumed on a second run).
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
from tqdm.auto import tqdm

from experiments import plots
from experiments.workdir import Workdir
from seqjax import diagnostics
from seqjax.data import adding_problem
from seqjax.nn import GRU, LSTM, SimpleRNN

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


class AddingModel(nn.Module):
    """A recurrent layer read at each row's last valid step, then a Dense to one number."""

    recurrent: nn.Module

    @nn.compact
    def __call__(self, inputs, seq_lengths):
        _, ys = self.recurrent(inputs, None, seq_lengths)
        return read_out(self.head(), ys, seq_lengths)

    @nn.nowrap
    def head(self) -> nn.Dense:
        return nn.Dense(1, name="head")


def read_out(head: nn.Module, ys, seq_lengths, head_variables=None):
    """The head on each row's last valid step of ``ys [B, T, H]``: ``[B]``."""
    last = jnp.asarray(seq_lengths) - 1
    h = jnp.take_along_axis(ys, last[:, None, None], axis=1)[:, 0]
    out = head(h) if head_variables is None else head.apply(head_variables, h)
    return out[:, 0]


def make_recurrent(name: str, config: ml_collections.ConfigDict) -> nn.Module:
    """The recurrent layer called ``name`` (see ``MODEL_LABELS``)."""
    h, length = config.model.hidden, config.data.length
    impl = {"implementation": config.model.get("implementation", "scan")}
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


# Module-level, the model a static argument: a second run in the same process (a resume), and the
# gradient curves at initialisation and after training, reuse the compiled functions.
@functools.partial(jax.jit, static_argnums=0)
def _init(model: AddingModel, key: jax.Array, x, lengths):
    return model.init(key, x, lengths)["params"]


@functools.partial(jax.jit, static_argnums=0)
def _predict(model: AddingModel, params, x, lengths):
    return model.apply({"params": params}, x, lengths)


@functools.partial(jax.jit, static_argnums=0)
def _gradient_by_step(model: AddingModel, params, x, y, lengths):
    """``|dL/dh_t|`` for each step ``t`` (``seqjax.diagnostics``), MSE read at the last step."""

    def loss_fn(ys):
        pred = read_out(model.head(), ys, lengths, {"params": params["head"]})
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


def optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    tx = optax.adam(config.train.learning_rate)
    if config.train.clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(config.train.clip_norm), tx)
    return tx


def train_batch(config: ml_collections.ConfigDict, step: int):
    """The training batch of ``step``: a pure function of the seed and the step (exact resume)."""
    rng = np.random.default_rng([config.seed, 0, step])
    return adding_problem(config.data.batch_size, config.data.length, rng=rng)


def _metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    errors = np.abs(np.asarray(predictions, np.float64) - targets)
    return {
        "mse": float(np.mean(errors**2)),
        "solved": float(np.mean(errors < SOLVED)),
        "wrong": int(np.sum(errors >= SOLVED)),
    }


def train_model(
    name: str, config: ml_collections.ConfigDict, workdir: Workdir, val, test
) -> dict[str, Any]:
    """Trains one model (resuming from its checkpoint) and scores it once on the test set."""
    model = AddingModel(make_recurrent(name, config))
    x0, _, l0 = train_batch(config, 0)
    init_params = _init(model, jax.random.key(config.seed), x0, l0)
    tx = optimizer(config)
    state = {"params": init_params, "opt_state": tx.init(init_params)}
    start = 0
    restored = workdir.restore(name, state)
    if restored is not None:
        start, state = restored

    def loss_fn(params, x, y, lengths):
        return jnp.mean((model.apply({"params": params}, x, lengths) - y) ** 2)

    @jax.jit
    def train_step(state, x, y, lengths):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, y, lengths)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state}, loss

    predict = functools.partial(_predict, model)
    steps, every = config.train.steps, config.train.eval_every
    seconds = 0.0
    bar = tqdm(total=steps, initial=start, desc=label(name, config), unit="step", leave=True)
    tick = time.perf_counter()
    step = start
    losses: list[jax.Array] = []
    for step in range(start + 1, steps + 1):
        x, y, lengths = train_batch(config, step)
        state, loss = train_step(state, x, y, lengths)
        losses.append(loss)
        if step % every == 0 or step == steps:
            val_m = _metrics(predict(state["params"], val[0], val[2]), val[1])
            train_loss = float(np.mean(jax.device_get(losses)))
            losses = []
            workdir.log(
                name, step, train_mse=train_loss, val_mse=val_m["mse"], val_solved=val_m["solved"]
            )
            bar.set_postfix(val_mse=f"{val_m['mse']:.4f}", solved=f"{val_m['solved']:.1%}")
            if step % config.train.checkpoint_every == 0 or step == steps:
                workdir.save(name, step, state)
            stop = (
                config.train.stop_when_solved and val_m["solved"] >= config.train.stop_when_solved
            )
            if stop:
                workdir.save(name, steps, state)  # marks the model done for a resumed run
                bar.update(step - bar.n)
                break
        bar.update(1)
    bar.close()
    seconds = time.perf_counter() - tick
    test_m = _metrics(predict(state["params"], test[0], test[2]), test[1])
    curve = workdir.metrics(name)
    first = next((r["step"] for r in curve if r["val_solved"] >= 0.99), None)
    return {
        "label": label(name, config),
        "test_mse": test_m["mse"],
        "test_solved": test_m["solved"],
        "test_wrong": test_m["wrong"],
        "steps_trained": int(curve[-1]["step"]) if curve else int(step),
        "first_step_val_solved_99": first,
        "train_seconds_this_session": round(seconds, 1),
        "init_params": init_params,
        "params": state["params"],
        "model": model,
    }


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
    exploding = AddingModel(make_recurrent("srn_exploding", config))
    params = _init(exploding, jax.random.key(config.seed), x, lengths)
    scale = config.diagnostics.exploding_scale
    curves[f"SimpleRNN, recurrent weights x{scale:g} (exploding), init"] = curve(exploding, params)
    return curves


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains every model of ``config.models`` on the adding problem; returns the results."""
    wd = Workdir(workdir)
    wd.write_config(config)
    length = config.data.length
    val_x, val_y, val_l = adding_problem(config.data.val_size, length, seed=config.seed + 10_001)
    test = adding_problem(config.data.test_size, length, seed=config.seed + 20_002)
    tick = time.perf_counter()
    trained = {}
    for name in model_names(config):
        trained[name] = train_model(name, config, wd, (val_x, val_y, val_l), test)
    curves = gradient_curves(config, trained)
    wd.close()

    learning = plots.learning_curves(
        wd.path / "learning_curves.png",
        {info["label"]: wd.metrics(name) for name, info in trained.items()},
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
            name: {k: v for k, v in info.items() if k not in ("init_params", "params", "model")}
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

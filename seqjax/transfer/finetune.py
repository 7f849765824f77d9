"""Training and evaluation steps and epoch loops for transfer learning, as pure functions.

The model is called as ``model.apply(variables, x, train=..., backbone_train=...)`` (see
:class:`seqjax.models.BackboneClassifier`): ``train`` is the head's mode (dropout),
``backbone_train`` the backbone's. As in Keras, where a frozen base model runs in inference mode:

- ``make_train_step(model, tx)`` (``backbone_train=False``) runs the backbone with
  ``use_running_average=True`` and returns ``batch_stats`` untouched, both while the backbone is
  frozen and while its top blocks are fine-tuned;
- ``make_train_step(model, tx, backbone_train=True)`` is for training the whole network from
  scratch (updating ``batch_stats``), e.g. to pretrain a backbone on a source task.

Which parameters train is the optimizer's business: wrap it with
:func:`seqjax.transfer.freeze`.

Data are ``(images, labels)`` pairs of NumPy arrays: images ``(N, H, W, 3)`` float32 in
``[-1, 1]``, labels ``(N,)`` integer classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

__all__ = [
    "Batch",
    "Split",
    "TrainState",
    "batches",
    "cross_entropy",
    "evaluate",
    "fit",
    "init_state",
    "make_eval_step",
    "make_train_step",
    "train_epoch",
]

Batch = tuple[jax.Array, jax.Array]
Split = tuple[np.ndarray, np.ndarray]
Metrics = dict[str, float]
TrainStep = Callable[["TrainState", Batch, jax.Array], tuple["TrainState", dict[str, jax.Array]]]
EvalStep = Callable[["TrainState", Batch, jax.Array], dict[str, jax.Array]]


class TrainState(struct.PyTreeNode):
    """Everything that changes during training; a pytree (no functions inside).

    Attributes:
        step: number of optimizer steps taken, ``()`` int32.
        params: the model's ``params``.
        batch_stats: the model's ``batch_stats`` (``{}`` if none).
        opt_state: the optimizer's state.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def init_state(variables: dict[str, Any], tx: optax.GradientTransformation) -> TrainState:
    """A fresh :class:`TrainState` from model variables and an optimizer (new optimizer state)."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=jax.jit(tx.init)(params),
    )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy: logits ``(N, K)``, integer labels ``(N,)`` -> ``(N,)``."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _variables(state: TrainState, params: Any) -> dict[str, Any]:
    if state.batch_stats:
        return {"params": params, "batch_stats": state.batch_stats}
    return {"params": params}


def make_train_step(
    model: nn.Module, tx: optax.GradientTransformation, *, backbone_train: bool = False
) -> TrainStep:
    """A jitted ``step(state, (images, labels), rng) -> (state, metrics)``.

    One optimizer step on the mean cross-entropy; ``rng`` drives dropout. With
    ``backbone_train=False`` the backbone runs in inference mode and ``batch_stats`` come back
    bit-identical; with ``True`` they are updated from the batch. Metrics: ``loss`` (mean) and
    ``accuracy`` over the batch.
    """

    def step(state: TrainState, batch: Batch, rng: jax.Array):
        images, labels = batch

        def loss_fn(params):
            variables = _variables(state, params)
            kwargs = {"train": True, "backbone_train": backbone_train, "rngs": {"dropout": rng}}
            if backbone_train and state.batch_stats:
                logits, updates = model.apply(variables, images, mutable=["batch_stats"], **kwargs)
                stats = updates["batch_stats"]
            else:
                logits = model.apply(variables, images, **kwargs)
                stats = state.batch_stats
            return jnp.mean(cross_entropy(logits, labels)), (logits, stats)

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            batch_stats=stats,
            opt_state=opt_state,
        )
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return new_state, {"loss": loss, "accuracy": accuracy}

    return jax.jit(step)


def make_eval_step(model: nn.Module) -> EvalStep:
    """A jitted ``step(state, (images, labels), weights) -> sums`` in inference mode.

    ``weights`` ``(N,)`` (1 for real examples, 0 for padding) lets every batch have the same
    shape. Returns the weighted sums ``loss``, ``correct`` and ``count``.
    """

    def step(state: TrainState, batch: Batch, weights: jax.Array):
        images, labels = batch
        logits = model.apply(_variables(state, state.params), images, train=False)
        return {
            "loss": jnp.sum(weights * cross_entropy(logits, labels)),
            "correct": jnp.sum(weights * (jnp.argmax(logits, -1) == labels)),
            "count": jnp.sum(weights),
        }

    return jax.jit(step)


def batches(
    data: Split,
    batch_size: int,
    *,
    rng: np.random.Generator | None = None,
    drop_remainder: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(images, labels, weights)`` batches of exactly ``batch_size`` examples.

    Shuffled when ``rng`` is given. The last partial batch is dropped with ``drop_remainder``,
    else padded by repeating its first example with weight 0 (so jitted steps compile once).
    """
    images, labels = data
    n = len(labels)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        weights = np.ones(len(idx), np.float32)
        if len(idx) < batch_size:
            if drop_remainder:
                return
            pad = batch_size - len(idx)
            idx = np.concatenate([idx, np.repeat(idx[:1], pad)])
            weights = np.concatenate([weights, np.zeros(pad, np.float32)])
        yield images[idx], labels[idx], weights


def train_epoch(
    state: TrainState,
    train_step: TrainStep,
    data: Split,
    *,
    batch_size: int,
    rng: jax.Array,
) -> tuple[TrainState, Metrics]:
    """One pass over shuffled ``data`` (remainder dropped, unless smaller than one batch).

    Returns the new state and the mean ``loss`` and ``accuracy`` over the steps.
    """
    shuffle_rng, dropout_rng = jax.random.split(rng)
    np_rng = np.random.default_rng(np.asarray(jax.random.key_data(shuffle_rng)).ravel())
    batch_size = min(batch_size, len(data[1]))
    losses, accuracies = [], []
    for i, (x, y, _) in enumerate(batches(data, batch_size, rng=np_rng, drop_remainder=True)):
        state, metrics = train_step(state, (x, y), jax.random.fold_in(dropout_rng, i))
        losses.append(metrics["loss"])
        accuracies.append(metrics["accuracy"])
    return state, {
        "loss": float(np.mean(jax.device_get(losses))),
        "accuracy": float(np.mean(jax.device_get(accuracies))),
    }


def evaluate(state: TrainState, eval_step: EvalStep, data: Split, *, batch_size: int) -> Metrics:
    """Mean ``loss`` and ``accuracy`` over all of ``data``, in inference mode."""
    totals = {"loss": 0.0, "correct": 0.0, "count": 0.0}
    for x, y, w in batches(data, min(batch_size, len(data[1]))):
        sums = jax.device_get(eval_step(state, (x, y), w))
        for key in totals:
            totals[key] += float(sums[key])
    return {
        "loss": totals["loss"] / totals["count"],
        "accuracy": totals["correct"] / totals["count"],
    }


def fit(
    state: TrainState,
    train_step: TrainStep,
    eval_step: EvalStep,
    train: Split,
    val: Split | None,
    *,
    epochs: int,
    batch_size: int,
    rng: jax.Array,
    log: Callable[[dict[str, float]], None] | None = None,
) -> tuple[TrainState, list[dict[str, float]]]:
    """Train for ``epochs`` epochs with a validation epoch after each one (Keras' ``fit``).

    Returns the final state and a history with one dict per epoch: ``epoch``, ``loss``,
    ``accuracy`` and, with ``val``, ``val_loss`` and ``val_accuracy``. ``log`` is called with each.
    """
    history = []
    for epoch in range(epochs):
        state, metrics = train_epoch(
            state, train_step, train, batch_size=batch_size, rng=jax.random.fold_in(rng, epoch)
        )
        row = {"epoch": epoch + 1, **metrics}
        if val is not None:
            val_metrics = evaluate(state, eval_step, val, batch_size=batch_size)
            row |= {f"val_{k}": v for k, v in val_metrics.items()}
        history.append(row)
        if log is not None:
            log(row)
    return state, history

"""Pure train and eval steps that thread the recurrent carry from batch to batch.

``train_step(state, carry, batch, rng) -> (state, carry, metrics)`` and
``eval_step(state, carry, batch) -> (carry, metrics)`` are module-level functions; jit them where
they are called, with their options bound and the state and carry donated::

    step = jax.jit(functools.partial(train_step, loss="mse", metrics=("mae",)), donate_argnums=(0, 1))
    for batch in batches:                        # consecutive chunks of the same B streams
        state, carry, metrics = step(state, carry, batch, rng)

**Truncated BPTT by construction.** The incoming carry is a constant of the step
(``stop_gradient``): the gradient of a step runs back through the ``T`` steps of its own batch and
never into earlier batches, while the forward pass still starts from the state the earlier
batches left (Keras ``stateful=True``). The outgoing carry is the state after the batch. With
``truncation=k2`` a long batch is cut into ``T / k2`` segments and the gradient is also cut at
each segment boundary (the forward pass is unchanged): memory and gradient depth ``k2``, one
optimiser update per batch.

Before the batch, the rows named by ``batch["reset"]`` restart from zeros (a new stream began).
The batch must have as many rows as the carry; another size raises ValueError at trace time,
naming both sizes, instead of recompiling.

**Frozen parameters** (``frozen=``, a boolean pytree like the parameters, ``True`` = frozen, as
Keras' ``trainable=False``): the gradient is taken with respect to the trainable leaves only (the
frozen ones enter the loss as constants), clipping and ``grad_norm`` see only the trainable
leaves, and the frozen leaves come back bit-identical. Build the optimizer with
``optax.transforms.selective_transform(tx, freeze_mask=frozen)`` so that it keeps no state for
them (:func:`seqjax.train.fit` does this for you).

**Models without carry** (an image classifier, :class:`seqjax.models.BackboneClassifier`): the
carry is ``None``; inputs may be images ``[B, H, W, C]`` and targets integer labels ``[B]``.
BatchNorm layers update their ``batch_stats`` in ``train_step`` only where the model runs them
in training mode; which mode is the model's business (per module), not the step's.

Metrics (float32 scalars, fetched late by the caller): ``loss`` (masked mean), ``count`` (the
number of targets it averages), ``grad_norm`` (global norm of the trainable gradients before
clipping, train only) and one entry per requested metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqjax.train import losses
from seqjax.train.batches import Batch
from seqjax.train.carry import Carry, check_batch_size, reset_carry
from seqjax.train.state import TrainState

Metrics = dict[str, jax.Array]
LossSpec = str | Callable[[jax.Array, jax.Array], jax.Array]


def _terms(loss: LossSpec, metrics: Sequence[str] | Mapping[str, Any]) -> dict[str, Callable]:
    terms = {"loss": losses.pointwise(loss) if isinstance(loss, str) else loss}
    if isinstance(metrics, Mapping):
        terms.update(metrics)
    else:
        terms.update({name: losses.pointwise(name) for name in metrics})
    return terms


def _example_mask(predictions: jax.Array, batch: Batch, seq_lengths: jax.Array | None) -> Any:
    """The per-example mask ``predictions.shape[:-1]``: ``batch["mask"]`` and the valid steps."""
    shape = predictions.shape[:-1]
    mask = batch.get("mask")
    if mask is not None:
        mask = jnp.asarray(mask, jnp.float32)
        if mask.shape != shape:
            raise ValueError(
                f"batch['mask'] must have the per-example shape {shape} (predictions "
                f"{predictions.shape} without the feature axis); got {mask.shape}."
            )
    if seq_lengths is not None and len(shape) == 2:  # many-to-many: drop the padded steps
        valid = (jnp.arange(shape[1])[None, :] < seq_lengths[:, None]).astype(jnp.float32)
        mask = valid if mask is None else mask * valid
    return mask


def _sums(terms: dict[str, Callable], predictions: jax.Array, batch: Batch, seq_lengths) -> dict:
    """``{name: (masked sum, count)}`` of every term over one (segment of a) batch."""
    mask = _example_mask(predictions, batch, seq_lengths)
    return {
        name: losses.masked_sum(fn(predictions, batch["targets"]), mask)
        for name, fn in terms.items()
    }


def _apply(state: TrainState, params: Any, carry: Carry, batch: Batch, *, rng: Any) -> tuple:
    """Runs the model; returns ``(carry, predictions, new_batch_stats)``. ``rng`` None: eval."""
    variables = {"params": params}
    has_stats = bool(state.batch_stats)
    if has_stats:
        variables["batch_stats"] = state.batch_stats
    kwargs = {}
    if batch.get("seq_lengths") is not None:
        kwargs["seq_lengths"] = jnp.asarray(batch["seq_lengths"], jnp.int32)
    if rng is None:
        carry, predictions = state.apply_fn(variables, batch["inputs"], carry, **kwargs)
        return carry, predictions, state.batch_stats
    out = state.apply_fn(
        variables,
        batch["inputs"],
        carry,
        deterministic=False,
        rngs={"dropout": rng},
        mutable=["batch_stats"] if has_stats else False,
        **kwargs,
    )
    if has_stats:
        (carry, predictions), updates = out
        return carry, predictions, updates["batch_stats"]
    carry, predictions = out
    return carry, predictions, state.batch_stats


def _segments(batch: Batch, k2: int) -> dict[str, jax.Array]:
    """Cuts a many-to-many batch ``[B, T, ...]`` into ``[T/k2, B, k2, ...]`` segments."""
    time = batch["inputs"].shape[1]
    if time % k2:
        raise ValueError(f"truncation={k2} must divide the batch's {time} time steps.")
    n = time // k2
    out = {}
    for key in ("inputs", "targets", "mask"):
        if batch.get(key) is None:
            continue
        value = jnp.asarray(batch[key])
        if value.ndim < 2 or value.shape[1] != time:
            raise ValueError(
                f"truncation needs time-aligned {key} [B, {time}, ...]; got shape {value.shape}."
            )
        value = value.reshape((value.shape[0], n, k2) + value.shape[2:])
        out[key] = jnp.moveaxis(value, 1, 0)
    if batch.get("seq_lengths") is not None:
        lengths = jnp.asarray(batch["seq_lengths"], jnp.int32)
        starts = jnp.arange(n, dtype=jnp.int32)[:, None] * k2
        out["seq_lengths"] = jnp.clip(lengths[None, :] - starts, 0, k2)
    return out


def _loss_fn(
    params: Any,
    state: TrainState,
    carry: Carry,
    batch: Batch,
    rng: jax.Array,
    terms: dict[str, Callable],
    truncation: int | None,
) -> tuple[jax.Array, tuple]:
    """The masked mean loss of one batch; aux ``(carry, sums, batch_stats)``."""
    if truncation is None or truncation >= batch["inputs"].shape[1]:
        carry, predictions, stats = _apply(state, params, carry, batch, rng=rng)
        sums = _sums(terms, predictions, batch, batch.get("seq_lengths"))
    else:
        segments = _segments(batch, truncation)

        def segment(loop, seg):
            carry, stats, index = loop
            carry = jax.lax.stop_gradient(carry)  # the k2 cut: no gradient into the segment before
            seg_state = state.replace(batch_stats=stats)
            seg_rng = jax.random.fold_in(rng, index)
            carry, predictions, stats = _apply(seg_state, params, carry, seg, rng=seg_rng)
            sums = _sums(terms, predictions, seg, seg.get("seq_lengths"))
            return (carry, stats, index + 1), sums

        (carry, stats, _), sums = jax.lax.scan(segment, (carry, state.batch_stats, 0), segments)
        sums = jax.tree.map(jnp.sum, sums)
    total, count = sums["loss"]
    return total / jnp.maximum(count, 1.0), (carry, sums, stats)


def _metrics(sums: dict[str, tuple[jax.Array, jax.Array]]) -> Metrics:
    count = sums["loss"][1]
    out = {name: total / jnp.maximum(n, 1.0) for name, (total, n) in sums.items()}
    out["count"] = count
    return out


def _frozen_flags(frozen: Any, params: Any) -> tuple[bool, ...]:
    """One Python bool per parameter leaf (True = frozen); raises if the mask does not fit."""
    flags = jax.tree.leaves(frozen)
    params_structure = jax.tree.structure(jax.tree.map(lambda _: True, params))
    if jax.tree.structure(frozen) != params_structure:  # type: ignore[operator]  # no PyTreeDef stub
        raise ValueError(
            "frozen must be a pytree of bools with the structure of the model's parameters "
            f"({len(jax.tree.leaves(params))} leaves; build it with seqjax.transfer.mask_params); "
            f"got one with {len(flags)} leaves and another structure."
        )
    return tuple(bool(f) for f in flags)


def _trainable_grads(params: Any, frozen: Any, loss_of_params: Callable) -> tuple:
    """``value_and_grad`` of ``loss_of_params`` with respect to the trainable leaves only.

    Returns ``((loss, aux), trainable_grads, rebuild, leaves, flags)``: the gradients as a list
    (frozen leaves are constants of the loss, no gradient is computed for them),
    ``rebuild(trainable, fill)`` that puts a list of trainable leaves back into the full tree,
    ``fill(i)`` at the frozen leaf ``i``, the parameters' leaves and one bool per leaf (frozen).
    """
    leaves, treedef = jax.tree.flatten(params)
    flags = (False,) * len(leaves) if frozen is None else _frozen_flags(frozen, params)
    constants = [
        jax.lax.stop_gradient(leaf) if f else None for leaf, f in zip(leaves, flags, strict=True)
    ]

    def rebuild(trainable: Sequence[Any], fill: Callable[[int], Any]) -> Any:
        it = iter(trainable)
        return jax.tree.unflatten(
            treedef, [fill(i) if f else next(it) for i, f in enumerate(flags)]
        )

    def loss_of_trainable(trainable):
        return loss_of_params(rebuild(trainable, lambda i: constants[i]))

    trainable = [leaf for leaf, f in zip(leaves, flags, strict=True) if not f]
    out, grads = jax.value_and_grad(loss_of_trainable, has_aux=True)(trainable)
    return out, grads, rebuild, leaves, flags


def _prepare_carry(carry: Carry, batch: Batch) -> Carry:
    check_batch_size(carry, batch["inputs"].shape[0])
    return jax.lax.stop_gradient(reset_carry(carry, batch.get("reset")))


def train_step(
    state: TrainState,
    carry: Carry,
    batch: Batch,
    rng: jax.Array,
    *,
    loss: LossSpec = "mse",
    metrics: Sequence[str] | Mapping[str, Callable] = (),
    truncation: int | None = None,
    frozen: Any = None,
    clip_norm: float | None = None,
) -> tuple[TrainState, Carry, Metrics]:
    """One optimiser update on one batch, continuing the streams from ``carry``.

    >>> import functools, jax, jax.numpy as jnp, optax
    >>> from seqjax.nn import GRU
    >>> from seqjax.train import SequenceModel, create_train_state
    >>> model = SequenceModel(GRU(4), output_features=1)
    >>> batch = {"inputs": jnp.ones((2, 5, 3)), "targets": jnp.zeros((2, 5, 1))}
    >>> state = create_train_state(model, optax.adam(1e-2), batch)
    >>> step = jax.jit(functools.partial(train_step, loss="mse", clip_norm=1.0))
    >>> state, carry, metrics = step(state, model.initial_carry(2), batch, state.base_key())
    >>> int(state.step), carry.shape, sorted(metrics)
    (1, (2, 4), ['count', 'grad_norm', 'loss'])

    Args:
      state: the :class:`TrainState` (donate it).
      carry: the state of the ``B`` streams after the previous batch (donate it); a constant of
        this step. ``None`` for a model without carry.
      batch: ``{"inputs": [B, T, F], "targets": ..., "mask"?, "seq_lengths"?, "reset"?}``, or
        ``{"inputs": [B, H, W, C], "targets": [B], "mask"?}`` for an image model.
      rng: the run's base key; this step uses ``fold_in(rng, state.step)`` for dropout.
      loss: a name in :data:`seqjax.train.losses.POINTWISE` ("mse", "mae", "huber",
        "cross_entropy") or a per-example function ``(predictions, targets) -> [B(, T)]``.
      metrics: more names (e.g. ``("mae",)``, ``("accuracy",)``) or ``{name: function}``.
      truncation: ``k2``: also cut the gradient every ``k2`` steps inside the batch
        (many-to-many only; ``k2`` divides ``T``).
      frozen: a boolean pytree like ``state.params`` (``True`` = frozen; see the module
        docstring), or None: all parameters train.
      clip_norm: clip the trainable gradients by their global norm before the optimiser.

    Returns:
      ``(new_state, carry_after_batch [B, ...], metrics)``.
    """
    terms = _terms(loss, metrics)
    carry = _prepare_carry(carry, batch)
    step_rng = jax.random.fold_in(rng, state.step)

    def loss_of_params(params):
        return _loss_fn(params, state, carry, batch, step_rng, terms, truncation)

    (_, (carry, sums, stats)), grads, rebuild, old, flags = _trainable_grads(
        state.params, frozen, loss_of_params
    )
    grad_norm = optax.global_norm(grads)
    if clip_norm is not None:
        grads, _ = optax.clip_by_global_norm(clip_norm).update(grads, optax.EmptyState())
    full_grads = rebuild(grads, lambda i: jnp.zeros_like(old[i]))
    new_state = state.apply_gradients(grads=full_grads, batch_stats=stats)
    if frozen is not None:  # exactly the old values (p + 0 could turn -0.0 into 0.0)
        new = jax.tree.leaves(new_state.params)
        trainable = [n for n, f in zip(new, flags, strict=True) if not f]
        new_state = new_state.replace(params=rebuild(trainable, lambda i: old[i]))
    out = _metrics(sums)
    out["grad_norm"] = grad_norm
    return new_state, carry, out


def eval_step(
    state: TrainState,
    carry: Carry,
    batch: Batch,
    *,
    loss: LossSpec = "mse",
    metrics: Sequence[str] | Mapping[str, Callable] = (),
) -> tuple[Carry, Metrics]:
    """Evaluates one batch (deterministic), continuing the streams from ``carry``.

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.nn import GRU
    >>> from seqjax.train import SequenceModel, create_train_state
    >>> model = SequenceModel(GRU(4), output_features=3, return_sequences=False)
    >>> batch = {"inputs": jnp.ones((2, 5, 3)), "targets": jnp.array([0, 2])}   # labels [B]
    >>> state = create_train_state(model, optax.sgd(0.1), batch)
    >>> carry, metrics = eval_step(state, None, batch, loss="cross_entropy", metrics=("accuracy",))
    >>> sorted(metrics), float(metrics["count"])
    (['accuracy', 'count', 'loss'], 2.0)

    Returns ``(carry_after_batch, metrics)`` with the same metric names as :func:`train_step`
    (without ``grad_norm``).
    """
    terms = _terms(loss, metrics)
    carry = _prepare_carry(carry, batch)
    carry, predictions, _ = _apply(state, state.params, carry, batch, rng=None)
    return carry, _metrics(_sums(terms, predictions, batch, batch.get("seq_lengths")))


def predict_step(state: TrainState, carry: Carry, batch: Batch) -> tuple[Carry, jax.Array]:
    """Predictions for one batch (only ``inputs`` and the optional ``seq_lengths``/``reset``).

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.nn import LSTM
    >>> from seqjax.train import SequenceModel, create_train_state
    >>> model = SequenceModel(LSTM(4), output_features=1)
    >>> state = create_train_state(model, optax.sgd(0.1), jnp.ones((2, 5, 3)))
    >>> carry, y = predict_step(state, model.initial_carry(2), {"inputs": jnp.ones((2, 5, 3))})
    >>> y.shape, carry.cell.shape
    ((2, 5, 1), (2, 4))

    Returns ``(carry_after_batch, predictions [B, T, O] or [B, O])``; call it chunk after chunk to
    forecast a stream.
    """
    carry = _prepare_carry(carry, batch)
    carry, predictions, _ = _apply(state, state.params, carry, batch, rng=None)
    return carry, predictions

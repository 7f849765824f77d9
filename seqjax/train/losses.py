"""Masked losses and metrics for sequence targets.

Every function takes ``predictions`` and ``targets`` in one of two layouts:

- many-to-many: predictions ``[B, T, O]`` (or logits ``[B, T, C]``), targets ``[B, T, O]`` (or
  integer labels ``[B, T]``, or one-hot ``[B, T, C]``);
- many-to-one: predictions ``[B, O]``, targets ``[B, O]`` (or labels ``[B]``, or one-hot ``[B, C]``).

Each loss is first computed per example, reducing the trailing feature axis only: ``[B, T]`` or
``[B]``. An optional ``mask`` of that shape (1 where a target exists: targets that exist only
every p-th step, right padding) weights the examples, and the loss is the masked mean
``sum(mask * loss) / max(sum(mask), 1)``; a batch without any target gives 0, not NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
Pointwise = Callable[[Array, Array], Array]


# ---- per-example terms: [B, T, ...] -> [B, T] or [B, ...] -> [B] --------------------------------
def squared_error(predictions: Array, targets: Array) -> Array:
    """``mean_o (p - y)^2`` over the trailing feature axis."""
    return jnp.mean(jnp.square(predictions - targets), axis=-1)


def absolute_error(predictions: Array, targets: Array) -> Array:
    """``mean_o |p - y|`` over the trailing feature axis."""
    return jnp.mean(jnp.abs(predictions - targets), axis=-1)


def huber_error(predictions: Array, targets: Array, delta: float = 1.0) -> Array:
    """Huber loss (quadratic within ``delta``, linear outside), mean over the feature axis."""
    return jnp.mean(optax.huber_loss(predictions, targets, delta=delta), axis=-1)


def _is_sparse(logits: Array, labels: Array) -> bool:
    if labels.ndim == logits.ndim - 1:
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(
                f"class labels of shape {labels.shape} must be integers; got dtype {labels.dtype}."
            )
        return True
    if labels.shape != logits.shape:
        raise ValueError(
            f"labels must be integers of shape {logits.shape[:-1]} or one-hot of shape "
            f"{logits.shape}; got shape {labels.shape}."
        )
    return False


def cross_entropy_error(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy per example; ``labels`` integer class ids or one-hot / soft targets."""
    if _is_sparse(logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return optax.softmax_cross_entropy(logits, labels)


def correct(logits: Array, labels: Array) -> Array:
    """1.0 where ``argmax(logits)`` equals the label (or the one-hot argmax), else 0.0."""
    if not _is_sparse(logits, labels):
        labels = jnp.argmax(labels, axis=-1)
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


POINTWISE: dict[str, Pointwise] = {
    "mse": squared_error,
    "mae": absolute_error,
    "huber": huber_error,
    "cross_entropy": cross_entropy_error,
    "accuracy": correct,
}
"""Per-example terms by name; ``loss=`` and ``metrics=`` of the train steps take these names."""


def pointwise(name: str) -> Pointwise:
    """The per-example term called ``name`` (a key of :data:`POINTWISE`)."""
    try:
        return POINTWISE[name]
    except KeyError:
        raise ValueError(f"unknown loss or metric {name!r}; known: {sorted(POINTWISE)}.") from None


# ---- masked reduction ---------------------------------------------------------------------------
def masked_sum(values: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """``(sum(mask * values), sum(mask))`` as float32 scalars; ``mask`` has ``values``' shape."""
    values = values.astype(jnp.float32)
    if mask is None:
        return jnp.sum(values), jnp.asarray(values.size, jnp.float32)
    if mask.shape != values.shape:
        raise ValueError(
            f"the target mask must have the per-example shape {values.shape} (targets without "
            f"their feature axis); got {mask.shape}."
        )
    mask = mask.astype(jnp.float32)
    # where, not multiply: a NaN prediction at a masked-out step must not poison the sum.
    return jnp.sum(jnp.where(mask > 0, values * mask, 0.0)), jnp.sum(mask)


def masked_mean(values: Array, mask: Array | None = None) -> Array:
    """``sum(mask * values) / max(sum(mask), 1)``: the mean over the examples that exist.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import masked_mean
        >>> values = jnp.array([[1.0, 2.0], [3.0, 4.0]])           # per example, [B, T]
        >>> float(masked_mean(values)), float(masked_mean(values, jnp.array([[1, 0], [1, 0]])))
        (2.5, 2.0)
        >>> float(masked_mean(values, jnp.zeros((2, 2))))          # no target at all: 0, not NaN
        0.0
    """
    total, count = masked_sum(values, mask)
    return total / jnp.maximum(count, 1.0)


# ---- the public losses and metrics: scalars -----------------------------------------------------
def mse(predictions: Array, targets: Array, mask: Array | None = None) -> Array:
    """Masked mean squared error (mean over features, masked mean over examples).

    ``predictions`` and ``targets``: ``[B, T, O]`` (many-to-many) or ``[B, O]`` (many-to-one);
    ``mask``: ``[B, T]`` or ``[B]``, 1 where a target exists.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import mse
        >>> predictions = jnp.array([[[1.0], [2.0], [3.0]]])       # [B=1, T=3, O=1]
        >>> targets = jnp.zeros((1, 3, 1))
        >>> float(mse(predictions, targets))                       # (1 + 4 + 9) / 3
        4.666...
        >>> float(mse(predictions, targets, mask=jnp.array([[1, 1, 0]])))  # no target at t=2
        2.5
    """
    return masked_mean(squared_error(predictions, targets), mask)


def mae(predictions: Array, targets: Array, mask: Array | None = None) -> Array:
    """Masked mean absolute error; shapes as for :func:`mse`.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import mae
        >>> predictions = jnp.array([[1.0], [-3.0]])               # many-to-one: [B=2, O=1]
        >>> float(mae(predictions, jnp.zeros((2, 1)))), float(mae(predictions, jnp.zeros((2, 1)), jnp.array([1, 0])))
        (2.0, 1.0)
    """
    return masked_mean(absolute_error(predictions, targets), mask)


def huber(
    predictions: Array, targets: Array, mask: Array | None = None, delta: float = 1.0
) -> Array:
    """Masked Huber loss: quadratic for errors within ``delta``, linear outside; shapes as for
    :func:`mse`.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import huber
        >>> predictions = jnp.array([[0.5], [3.0]])                # errors 0.5 and 3
        >>> float(huber(predictions, jnp.zeros((2, 1))))            # (0.5 * 0.5**2 + (3 - 0.5)) / 2
        1.3125
    """
    return masked_mean(huber_error(predictions, targets, delta), mask)


def softmax_cross_entropy(logits: Array, labels: Array, mask: Array | None = None) -> Array:
    """Masked softmax cross-entropy; ``labels`` integer ids ``[B(, T)]`` or one-hot like ``logits``.

    ``logits``: ``[B, T, C]`` or ``[B, C]``; ``mask``: ``[B, T]`` or ``[B]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import softmax_cross_entropy
        >>> logits = jnp.zeros((2, 4))                             # uniform over C=4 classes
        >>> round(float(softmax_cross_entropy(logits, jnp.array([0, 3]))), 4)   # log(4)
        1.3863
        >>> one_hot = jnp.eye(4)[jnp.array([0, 3])]                # the same labels, one-hot
        >>> round(float(softmax_cross_entropy(logits, one_hot)), 4)
        1.3863
    """
    return masked_mean(cross_entropy_error(logits, labels), mask)


def accuracy(logits: Array, labels: Array, mask: Array | None = None) -> Array:
    """Masked fraction of examples whose argmax is the label; shapes as for
    :func:`softmax_cross_entropy`.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.train import accuracy
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])   # [B=1, T=3, C=2]
        >>> labels = jnp.array([[0, 1, 1]])                        # the last step is wrong
        >>> float(accuracy(logits, labels)), float(accuracy(logits, labels, jnp.array([[1, 1, 0]])))
        (0.666..., 1.0)
    """
    return masked_mean(correct(logits, labels), mask)

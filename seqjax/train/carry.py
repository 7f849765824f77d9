"""The recurrent carry outside the train state: zeros, per-row resets, the batch-size guard.

A carry is any pytree whose leaves are ``[B, ...]`` arrays, one row per stream: the hidden array
``[B, H]`` of ``SimpleRNN``/``GRU``, an ``LSTMCarry(cell, hidden)``, a tuple of those for a
``StackedRNN``, a pair for a ``Bidirectional`` layer. ``None`` is the carry of a model without
recurrent state (an image classifier): nothing to reset, no batch size to check.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Carry = Any


def zero_carry(model: nn.Module, batch_size: int, dtype: Any = jnp.float32) -> Carry:
    """``model.initial_carry(batch_size, dtype)``: the zero carry for ``batch_size`` streams.

    Every seqjax recurrent layer, ``StackedRNN``, ``Bidirectional``,
    :class:`seqjax.train.SequenceModel` and :class:`seqjax.models.BackboneClassifier` (``None``:
    no carry) have that method; unbound modules are fine.

    >>> from seqjax.nn import GRU, StackedRNN
    >>> [leaf.shape for leaf in zero_carry(StackedRNN([GRU(3), GRU(2)]), 5)]
    [(5, 3), (5, 2)]
    """
    if hasattr(model, "initial_carry"):
        return model.initial_carry(batch_size, dtype)
    raise TypeError(
        f"zero_carry: {type(model).__name__} has no initial_carry(batch_size, dtype) method; add "
        "one that returns the carry for a batch, or build the carry yourself."
    )


def carry_batch_size(carry: Carry) -> int | None:
    """The number of rows (streams) of a carry (None for a carry without leaves); raises if its
    leaves disagree."""
    sizes = {leaf.shape[0] for leaf in jax.tree.leaves(carry)}
    if not sizes:
        return None
    if len(sizes) != 1:
        raise ValueError(f"the carry's leaves have different batch sizes {sorted(sizes)}.")
    return sizes.pop()


def check_batch_size(carry: Carry, batch_size: int) -> None:
    """Raises ValueError naming both sizes when a batch does not match the carry's streams.

    Stateful training fixes the batch size: row ``b`` of every batch continues stream ``b``.
    Runs on static shapes, so inside ``jit`` it fires at trace time instead of recompiling.
    """
    streams = carry_batch_size(carry)
    if streams is not None and streams != batch_size:
        raise ValueError(
            f"stateful training: this batch has {batch_size} rows but the carry holds {streams} "
            f"streams. Row b of every batch continues stream b, so every batch must have "
            f"{streams} rows: drop or pad the last partial batch (or use stateful=False)."
        )


def reset_carry(carry: Carry, reset: jax.Array | None, fresh: Carry | None = None) -> Carry:
    """Replaces the rows where ``reset [B]`` is true by zeros (or by those rows of ``fresh``).

    Rows where ``reset`` is false are returned unchanged, bit for bit.
    """
    if reset is None or not jax.tree.leaves(carry):
        return carry
    reset = jnp.asarray(reset, bool)
    check_batch_size(carry, reset.shape[0])
    if fresh is None:
        fresh = jax.tree.map(jnp.zeros_like, carry)

    def select(old: jax.Array, new: jax.Array) -> jax.Array:
        keep = reset.reshape(reset.shape + (1,) * (old.ndim - 1))
        return jnp.where(keep, new.astype(old.dtype), old)

    return jax.tree.map(select, carry, fresh)

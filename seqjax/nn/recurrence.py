"""The time loop shared by every recurrent layer: pure functions over ``jax.lax.scan``.

A layer supplies a *step* ``step(params, carry, x_proj_t) -> carry`` and a way to read and
replace the hidden state of its carry. Everything about time (masking padded steps, reverse
order, reversing each row's own valid part, unrolling, rematerialisation) lives here, once.

Shapes: ``B`` batch, ``T`` time, ``G`` the projected width (gates x features), ``H`` features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Carry = Any
Step = Callable[[Any, Carry, jax.Array], Carry]


def reverse_padded(xs_tm: jax.Array, seq_lengths: jax.Array) -> jax.Array:
    """Reverses the valid part of each row of a time-major batch, leaving padding in place.

    ``xs_tm`` has shape ``[T, B, ...]``; row ``b`` has ``seq_lengths[b]`` valid steps. Time ``t`` of
    row ``b`` moves to ``seq_lengths[b] - 1 - t`` when ``t < seq_lengths[b]``; padding stays. The map
    is its own inverse.
    """
    time = xs_tm.shape[0]
    t = jnp.arange(time)[:, None]  # [T, 1]
    lengths = seq_lengths[None, :]  # [1, B]
    index = jnp.where(t < lengths, lengths - 1 - t, t)  # [T, B]
    index = index.reshape(index.shape + (1,) * (xs_tm.ndim - 2))
    return jnp.take_along_axis(xs_tm, index, axis=0)


def scan_recurrence(
    step: Step,
    params: Any,
    carry: Carry,
    xs_tm: jax.Array,
    *,
    get_hidden: Callable[[Carry], jax.Array],
    set_hidden: Callable[[Carry, jax.Array], Carry],
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    hidden_offsets_tm: jax.Array | None = None,
    unroll: int = 1,
    remat: bool = False,
) -> tuple[Carry, jax.Array]:
    """Runs ``step`` over time and returns ``(final_carry, hidden_states)``.

    Args:
      step: the cell, ``step(params, carry, x_proj_t) -> new_carry``.
      params: the cell's parameters (any pytree), closed over by the loop.
      carry: the initial carry, a pytree of ``[B, H]`` arrays.
      xs_tm: projected inputs ``[T, B, G]`` (time-major).
      get_hidden, set_hidden: read / replace the hidden state ``[B, H]`` of a carry.
      seq_lengths: optional ``[B]`` int32. Steps at ``t >= seq_lengths[b]`` leave row ``b``'s carry
        unchanged and output zeros, so the final carry is each row's carry at its own last valid
        step and padded inputs get no gradient.
      reverse: run from the last valid step to the first. With ``seq_lengths`` each row starts at its
        own last valid step. Outputs stay in the original time order.
      hidden_offsets_tm: optional ``[T, B, H]`` added to the hidden state after each step (carry and
        output). Zeros change nothing; the gradient with respect to it is dL/dh_t.
      unroll: steps per loop iteration (``lax.scan``'s ``unroll``).
      remat: recompute each step in the backward pass instead of storing its intermediates.

    Returns:
      ``(carry, hs)`` with ``hs`` of shape ``[T, B, H]``.
    """
    flip_rows = reverse and seq_lengths is not None
    if flip_rows and seq_lengths is not None:  # (flip_rows implies it; said for the type checker)
        xs_tm = reverse_padded(xs_tm, seq_lengths)
        if hidden_offsets_tm is not None:
            hidden_offsets_tm = reverse_padded(hidden_offsets_tm, seq_lengths)

    time = xs_tm.shape[0]
    if seq_lengths is not None:
        mask_tm = jnp.arange(time)[:, None] < seq_lengths[None, :]  # [T, B]
    else:
        mask_tm = None

    def body(carry, inputs):
        x_t, mask_t, offset_t = inputs
        new_carry = step(params, carry, x_t)
        if offset_t is not None:
            new_carry = set_hidden(new_carry, get_hidden(new_carry) + offset_t)
        hidden = get_hidden(new_carry)
        if mask_t is not None:
            keep = mask_t[:, None]
            new_carry = jax.tree.map(lambda new, old: jnp.where(keep, new, old), new_carry, carry)
            hidden = jnp.where(keep, hidden, jnp.zeros_like(hidden))
        return new_carry, hidden

    if remat:
        body = jax.checkpoint(body)

    carry, hs = jax.lax.scan(
        body,
        carry,
        (xs_tm, mask_tm, hidden_offsets_tm),
        reverse=reverse and not flip_rows,
        unroll=unroll,
    )
    if flip_rows and seq_lengths is not None:
        hs = reverse_padded(hs, seq_lengths)
    return carry, hs

"""Input validation for the recurrent layers.

Every check runs in Python on shapes and dtypes (and on values only when they are concrete), so a
mistake is reported with the expected and the actual shape before anything is traced into XLA.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_inputs(inputs: Any, *, time_major: bool, layer: str) -> tuple[int, int, int]:
    """Checks a sequence batch and returns ``(batch, time, features)``.

    Raises:
      ValueError: inputs not of rank 3, or not floating point.
    """
    shape = jnp.shape(inputs)
    layout = "[time, batch, features]" if time_major else "[batch, time, features]"
    if len(shape) != 3:
        raise ValueError(
            f"{layer}: inputs must have rank 3, {layout}; got shape {tuple(shape)} (rank {len(shape)})."
        )
    dtype = jnp.result_type(inputs)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"{layer}: inputs must be floating point (e.g. float32); got dtype {dtype}. "
            "Cast with inputs.astype(jnp.float32), or embed integer tokens first."
        )
    if time_major:
        time, batch, features = shape
    else:
        batch, time, features = shape
    return int(batch), int(time), int(features)


def check_features(features: int, kernel_shape: tuple[int, ...], *, layer: str) -> None:
    """Checks that the inputs' feature size matches the one the parameters were built for."""
    if kernel_shape[0] != features:
        raise ValueError(
            f"{layer}: inputs have {features} features but the parameters were built for "
            f"{kernel_shape[0]} (kernel shape {tuple(kernel_shape)})."
        )


def check_seq_lengths(seq_lengths: Any, *, batch: int, time: int, layer: str) -> jax.Array:
    """Checks ``seq_lengths`` (shape ``[batch]``, integers in ``[0, time]``) and returns it as int32.

    The range is checked only when the lengths are concrete (not traced inside ``jit``).
    """
    shape = tuple(jnp.shape(seq_lengths))
    if shape != (batch,):
        raise ValueError(
            f"{layer}: seq_lengths must have shape [batch] = ({batch},); got shape {shape}."
        )
    dtype = jnp.result_type(seq_lengths)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{layer}: seq_lengths must be integers; got dtype {dtype}.")
    if _is_concrete(seq_lengths):
        values = np.asarray(seq_lengths)
        bad = np.flatnonzero((values < 0) | (values > time))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{layer}: seq_lengths must lie in [0, {time}] (the time axis); "
                f"row {i} has length {int(values[i])}."
            )
    return jnp.asarray(seq_lengths, jnp.int32)


def check_carry_array(carry: Any, *, batch: int, features: int, layer: str, field: str) -> None:
    """Checks one carry array of shape ``[batch, features]``."""
    if not hasattr(carry, "shape"):
        raise ValueError(
            f"{layer}: {field} must be an array of shape [batch, features] = ({batch}, {features}); "
            f"got {type(carry).__name__}."
        )
    shape = tuple(carry.shape)
    if shape != (batch, features):
        raise ValueError(
            f"{layer}: {field} must have shape [batch, features] = ({batch}, {features}); "
            f"got {shape}."
        )


def check_time_aligned(array: Any, *, expected: tuple[int, ...], layer: str, name: str) -> None:
    """Checks an array that runs alongside the inputs (e.g. ``hidden_offsets``)."""
    shape = tuple(jnp.shape(array))
    if shape != expected:
        raise ValueError(f"{layer}: {name} must have shape {expected}; got {shape}.")

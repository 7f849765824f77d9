"""Small Flax modules that reproduce a Keras ``Sequential`` stack around seqjax layers.

:class:`Sequential` runs one module per Keras layer (``layers_i`` is ``keras_model.layers[i]``),
threads ``seq_lengths`` through the recurrent ones and returns ``(carries, outputs)`` where
``outputs`` is what the Keras model returns and ``carries`` holds one carry per recurrent layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.nn.base import RecurrentLayer
from seqjax.nn.bidirectional import Bidirectional, merge
from seqjax.nn.lstm import LSTMCarry
from seqjax.nn.stack import StackedRNN

__all__ = [
    "OUTPUT_MODES",
    "Activated",
    "Activation",
    "Flatten",
    "GlobalPool1D",
    "Masking",
    "Sequential",
    "is_recurrent",
    "last_output",
]

#: How a recurrent entry of :class:`Sequential` reports its outputs, as Keras would:
#: "sequences" (``return_sequences=True``), "last" (``return_sequences=False``: the output after
#: the last processed step), "reversed" (``return_sequences=True`` with ``go_backwards=True``:
#: Keras returns the steps in processing order, i.e. time reversed).
OUTPUT_MODES = ("sequences", "last", "reversed")


def is_recurrent(module: nn.Module) -> bool:
    """True for modules whose call returns ``(carry, outputs)``."""
    return isinstance(module, RecurrentLayer | Bidirectional | StackedRNN | Sequential)


def _hidden(carry: Any) -> jax.Array:
    return carry.hidden if isinstance(carry, LSTMCarry) else carry


def last_output(module: nn.Module, carry: Any) -> Any:
    """The Keras ``return_sequences=False`` output of a seqjax recurrent layer, from its carry.

    For one layer it is the hidden state of the final carry (each row's last valid step with
    ``seq_lengths``; the state after step 0 for a ``reverse=True`` layer, which is what Keras'
    ``go_backwards=True`` returns). For :class:`Bidirectional` it is both directions' final hidden
    states merged with its ``merge_mode``, as Keras' ``Bidirectional`` does.
    """
    if isinstance(module, Bidirectional):
        return merge(_hidden(carry[0]), _hidden(carry[1]), module.merge_mode)
    if isinstance(module, RecurrentLayer):
        return _hidden(carry)
    raise TypeError(f"last_output: no final output rule for {type(module).__name__}.")


class Activation(nn.Module):
    """Applies ``fn`` (Keras' ``Activation`` layer)."""

    fn: Callable[[jax.Array], jax.Array]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fn(x)


class Activated(nn.Module):
    """``activation(layer(x))``: a Keras ``Dense`` / ``Conv1D`` with its ``activation``.

    The wrapped layer's variables live under ``layer`` (``params["layer"]["kernel"]``).
    """

    layer: nn.Module
    activation: Callable[[jax.Array], jax.Array]

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.activation(self.layer(x))


class Masking(nn.Module):
    """Keras' ``Masking(mask_value)``: zeroes the masked steps and reports the mask.

    A step is valid when any feature differs from ``mask_value``. Returns ``(x * mask, lengths)``
    with ``lengths = mask.sum(1)``: the ``seq_lengths`` of right-padded rows (masks with holes
    are not representable by lengths).
    """

    mask_value: float = 0.0

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        mask = jnp.any(x != self.mask_value, axis=-1)
        return x * mask[..., None].astype(x.dtype), mask.sum(axis=1).astype(jnp.int32)


class GlobalPool1D(nn.Module):
    """Keras' ``GlobalAveragePooling1D`` (``op="mean"``) / ``GlobalMaxPooling1D`` (``op="max"``).

    Pools ``[B, T, C]`` over time (channels-last), ignoring any mask.
    """

    op: str = "mean"
    keepdims: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:
        ops: dict[str, Callable[..., Any]] = {"mean": jnp.mean, "max": jnp.max}
        fn = ops[self.op]
        return fn(x, axis=1, keepdims=self.keepdims)


class Flatten(nn.Module):
    """Keras' ``Flatten``: ``[B, ...] -> [B, prod(...)]``."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


#: modules through which a mask (``seq_lengths``) survives, as in Keras.
_MASK_PRESERVING = (nn.Dense, nn.Dropout, nn.BatchNorm, Activation)


class Sequential(nn.Module):
    """Modules applied in order, Keras-``Sequential``-style; returns ``(carries, outputs)``.

    Attributes:
      layers: the modules; recurrent ones (``seqjax.interop.sequential.is_recurrent``) are called with
        ``(x, initial_carry, seq_lengths)`` and return ``(carry, outputs)``, ``nn.Dropout`` gets
        ``deterministic``, ``seqjax.interop.sequential.Masking`` sets ``seq_lengths``, the others are called on ``x``.
      output_modes: one entry per layer (ignored for non-recurrent ones), from
        ``seqjax.interop.sequential.OUTPUT_MODES``; default "sequences" for all.

    ``initial_carry`` (optional) and the returned ``carries`` are tuples with one carry per
    recurrent layer, bottom first. ``seq_lengths`` marks right-padded rows as for the layers; it
    is dropped after a layer that changes the time axis (a convolution, pooling, a "last" output),
    as Keras drops the mask. Outputs at padded steps are zeros here; Keras repeats the previous
    output there unless ``zero_output_for_mask``, so compare valid steps only.
    """

    layers: Sequence[nn.Module]
    output_modes: Sequence[str] | None = None

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_carry: Sequence[Any] | None = None,
        seq_lengths: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[tuple[Any, ...], Any]:
        modes = list(self.output_modes or ["sequences"] * len(self.layers))
        if len(modes) != len(self.layers):
            raise ValueError(
                f"Sequential: one output mode per layer ({len(self.layers)}); got {len(modes)}."
            )
        recurrent = [i for i, layer in enumerate(self.layers) if is_recurrent(layer)]
        if initial_carry is not None and len(initial_carry) != len(recurrent):
            raise ValueError(
                f"Sequential: initial_carry must hold one carry per recurrent layer "
                f"({len(recurrent)}); got {len(initial_carry)}."
            )
        carries: list[Any] = []
        x = inputs
        for i, (layer, mode) in enumerate(zip(self.layers, modes, strict=True)):
            if is_recurrent(layer):
                if mode not in OUTPUT_MODES:
                    raise ValueError(
                        f"Sequential: output mode {mode!r} of layer {i} not in {OUTPUT_MODES}."
                    )
                init = None if initial_carry is None else initial_carry[len(carries)]
                carry, ys = layer(x, init, seq_lengths)
                carries.append(carry)
                if mode == "last":
                    x = last_output(layer, carry)
                    seq_lengths = None
                elif mode == "reversed":
                    x = jnp.flip(ys, axis=1)
                    seq_lengths = None
                else:
                    x = ys
            elif isinstance(layer, Masking):
                x, lengths = layer(x)
                seq_lengths = lengths if seq_lengths is None else seq_lengths
            elif isinstance(layer, nn.Dropout):
                x = layer(x, deterministic=deterministic)
            else:
                x = layer(x)
                inner = layer.layer if isinstance(layer, Activated) else layer
                if not isinstance(inner, _MASK_PRESERVING):
                    seq_lengths = None
        return tuple(carries), x

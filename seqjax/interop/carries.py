"""Recurrent states between Keras, PyTorch and seqjax carries.

- Keras: an LSTM state is the list ``[h, c]``, a GRU / SimpleRNN state ``[h]``; a
  ``Bidirectional`` state is the forward states followed by the backward ones
  (``[h_f, c_f, h_b, c_b]``). Each array is ``[batch, H]``.
- PyTorch: ``h`` (and for the LSTM ``c``) of shape ``[D·num_layers, batch, H]``, row
  ``layer·D + direction``; the LSTM state tuple is ``(h, c)``.
- seqjax: ``LSTMCarry(cell=c, hidden=h)`` for the LSTM, the hidden array for GRU/SimpleRNN, a
  pair ``(forward, backward)`` for ``Bidirectional``, a tuple per level for ``StackedRNN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.nn.base import RecurrentLayer
from seqjax.nn.bidirectional import Bidirectional
from seqjax.nn.lstm import LSTM, LSTMCarry
from seqjax.nn.stack import StackedRNN

__all__ = ["carry_from_keras", "carry_from_torch", "carry_to_keras", "carry_to_torch"]


def _levels(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, StackedRNN):
        return list(module.layers)
    if isinstance(module, RecurrentLayer | Bidirectional):
        return [module]
    raise TypeError(
        f"expected a seqjax recurrent layer, Bidirectional or StackedRNN; got "
        f"{type(module).__name__}."
    )


def _directions(level: nn.Module) -> list[RecurrentLayer]:
    if isinstance(level, Bidirectional):
        return [level.layer, level.backward_layer or level.layer]
    if isinstance(level, RecurrentLayer):
        return [level]
    raise TypeError(
        f"expected a seqjax recurrent layer or Bidirectional; got {type(level).__name__}."
    )


def _pack(module: nn.Module, per_level: list[Any]) -> Any:
    return tuple(per_level) if isinstance(module, StackedRNN) else per_level[0]


def _unpack(module: nn.Module, carry: Any) -> list[Any]:
    return list(carry) if isinstance(module, StackedRNN) else [carry]


# ---- PyTorch ------------------------------------------------------------------------------------
def carry_from_torch(module: nn.Module, h: Any, c: Any = None) -> Any:
    """The seqjax carry for ``module`` (as built by ``from_torch``) from PyTorch's ``h`` / ``c``.

    ``h``, ``c``: ``[D·num_layers, batch, H]`` tensors or arrays (``c`` for LSTMs only).

    Example:
        >>> import numpy as np
        >>> from seqjax.nn import LSTM
        >>> from seqjax.interop import carry_from_torch
        >>> h, c = np.ones((1, 2, 4)), np.zeros((1, 2, 4))          # PyTorch's h_n, c_n
        >>> carry = carry_from_torch(LSTM(4), h, c)
        >>> type(carry).__name__, carry.hidden.shape, float(carry.cell.sum())
        ('LSTMCarry', (2, 4), 0.0)
    """
    h = jnp.asarray(_as_numpy(h))
    c = None if c is None else jnp.asarray(_as_numpy(c))
    per_level, row = [], 0
    for level in _levels(module):
        carries = []
        for layer in _directions(level):
            if isinstance(layer, LSTM):
                if c is None:
                    raise ValueError("carry_from_torch: an LSTM needs the cell state c.")
                carries.append(LSTMCarry(cell=c[row], hidden=h[row]))
            else:
                carries.append(h[row])
            row += 1
        per_level.append(tuple(carries) if isinstance(level, Bidirectional) else carries[0])
    if row != h.shape[0]:
        raise ValueError(
            f"carry_from_torch: h has {h.shape[0]} rows; the module has {row} layer directions."
        )
    return _pack(module, per_level)


def carry_to_torch(module: nn.Module, carry: Any) -> jax.Array | tuple[jax.Array, jax.Array]:
    """PyTorch's ``h_n`` (or ``(h_n, c_n)`` for an LSTM) from a seqjax carry, as JAX arrays.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import LSTM
        >>> from seqjax.interop import carry_to_torch
        >>> layer = LSTM(4)
        >>> x = jnp.ones((2, 5, 3))
        >>> carry, _ = layer.apply(layer.init(jax.random.key(0), x), x)
        >>> h_n, c_n = carry_to_torch(layer, carry)                 # PyTorch's (h, c) order
        >>> h_n.shape, bool((c_n[0] == carry.cell).all())           # [D * num_layers, batch, H]
        ((1, 2, 4), True)
    """
    hs, cs = [], []
    for level, level_carry in zip(_levels(module), _unpack(module, carry), strict=True):
        parts = level_carry if isinstance(level, Bidirectional) else (level_carry,)
        for part in parts:
            if isinstance(part, LSTMCarry):
                hs.append(part.hidden)
                cs.append(part.cell)
            else:
                hs.append(part)
    h = jnp.stack(hs)
    return (h, jnp.stack(cs)) if cs else h


def _as_numpy(x: Any) -> Any:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if hasattr(x, "numpy") and not isinstance(x, jax.Array):
        return x.numpy()
    return x


# ---- Keras --------------------------------------------------------------------------------------
def _keras_state_to_carry(layer: RecurrentLayer, states: Sequence[Any]) -> Any:
    states = [jnp.asarray(_as_numpy(s)) for s in states]
    if isinstance(layer, LSTM):
        h, c = states  # Keras: [h, c]
        return LSTMCarry(cell=c, hidden=h)
    (h,) = states
    return h


def carry_from_keras(module: nn.Module, states: Sequence[Any]) -> Any:
    """The seqjax carry from Keras states (``return_state=True`` results or ``layer.states``).

    For one layer ``states`` is ``[h, c]`` (LSTM) or ``[h]``; for ``Bidirectional`` the forward
    states then the backward ones; for a ``StackedRNN`` a list with one such list per level.

    Example:
        >>> import numpy as np
        >>> from seqjax.nn import GRU
        >>> from seqjax.interop import carry_from_keras
        >>> carry_from_keras(GRU(4), [np.ones((2, 4))]).shape        # a GRU's carry is its hidden state
        (2, 4)
    """
    per_level_states = list(states) if isinstance(module, StackedRNN) else [states]
    per_level = []
    for level, level_states in zip(_levels(module), per_level_states, strict=True):
        level_states = list(level_states)
        layers = _directions(level)
        size = len(level_states) // len(layers)
        carries = [
            _keras_state_to_carry(layer, level_states[i * size : (i + 1) * size])
            for i, layer in enumerate(layers)
        ]
        per_level.append(tuple(carries) if isinstance(level, Bidirectional) else carries[0])
    return _pack(module, per_level)


def carry_to_keras(module: nn.Module, carry: Any) -> list[Any]:
    """Keras states (``initial_state=``) from a seqjax carry: ``[h, c]`` for an LSTM, ``[h]``
    otherwise, forward then backward for ``Bidirectional``; a list per level for a stack.

    Example:
        >>> import jax.numpy as jnp
        >>> from seqjax.nn import LSTM, LSTMCarry
        >>> from seqjax.interop import carry_to_keras
        >>> carry = LSTMCarry(cell=jnp.zeros((2, 4)), hidden=jnp.ones((2, 4)))
        >>> h, c = carry_to_keras(LSTM(4), carry)                   # Keras' [h, c] order
        >>> float(h.sum()), float(c.sum())
        (8.0, 0.0)
    """
    per_level = []
    for level, level_carry in zip(_levels(module), _unpack(module, carry), strict=True):
        parts = level_carry if isinstance(level, Bidirectional) else (level_carry,)
        states: list[Any] = []
        for part in parts:
            if isinstance(part, LSTMCarry):
                states += [part.hidden, part.cell]
            else:
                states.append(part)
        per_level.append(states)
    return per_level if isinstance(module, StackedRNN) else per_level[0]

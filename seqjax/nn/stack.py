"""``StackedRNN``: recurrent layers applied one after another, with dropout between them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax


class StackedRNN(nn.Module):
    """A stack of recurrent layers (or ``Bidirectional`` wrappers), each feeding the next.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import GRU, LSTM, StackedRNN
        >>> x = jnp.ones((2, 5, 3))                                 # [batch, time, features]
        >>> stack = StackedRNN([LSTM(4), GRU(3)], dropout_rate=0.5)
        >>> variables = stack.init(jax.random.key(0), x)
        >>> key = jax.random.key(1)
        >>> carries, ys = stack.apply(variables, x, deterministic=False, rngs={"dropout": key})
        >>> len(carries), carries[0].hidden.shape, carries[1].shape, ys.shape
        (2, (2, 4), (2, 3), (2, 5, 3))

    Attributes:
      layers: the layers, bottom first.
      dropout_rate: dropout on the outputs of every layer but the last (as PyTorch's ``dropout``).

    ``initial_carry`` and the returned carry are tuples with one carry per layer.
    """

    layers: Sequence[nn.Module]
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        initial_carry: Sequence[Any] | None = None,
        seq_lengths: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[tuple[Any, ...], jax.Array]:
        if initial_carry is not None and len(initial_carry) != len(self.layers):
            raise ValueError(
                f"StackedRNN: initial_carry must hold one carry per layer ({len(self.layers)}); "
                f"got {len(initial_carry)}."
            )
        carries = []
        x = inputs
        for i, layer in enumerate(self.layers):
            carry = None if initial_carry is None else initial_carry[i]
            carry, x = layer(x, carry, seq_lengths)
            carries.append(carry)
            if self.dropout_rate > 0 and i < len(self.layers) - 1:
                x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return tuple(carries), x

    def initial_carry(self, batch_size: int, dtype: Any = None) -> tuple[Any, ...]:
        """One zero carry per layer, bottom first, for ``batch_size`` streams (unbound is fine).

        >>> from seqjax.nn import GRU, LSTM
        >>> carry = StackedRNN([LSTM(3), GRU(2)]).initial_carry(4)
        >>> type(carry).__name__, carry[0].hidden.shape, carry[1].shape
        ('tuple', (4, 3), (4, 2))
        """
        return tuple(layer.initial_carry(batch_size, dtype) for layer in self.layers)

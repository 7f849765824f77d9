"""``SequenceModel``: recurrent layer(s) and a Dense readout, the model the train steps expect.

The train steps accept any Flax module with this calling convention (the **model protocol**)::

    carry, predictions = model.apply(variables, inputs, carry, seq_lengths=None,
                                     deterministic=True, rngs=...)

``inputs [B, T, F]``, ``carry`` the state to continue from (None: zeros), predictions
``[B, T, O]`` (many-to-many) or ``[B, O]`` (many-to-one). ``seq_lengths`` is passed only when the
batch has it; ``deterministic=False`` and a ``"dropout"`` rng are passed in training.
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.train.carry import zero_carry


class SequenceModel(nn.Module):
    """A recurrent body and a Dense head, many-to-many or many-to-one.

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.nn import GRU, LSTM, StackedRNN
    >>> model = SequenceModel(LSTM(4), output_features=1)          # [B, T, F] -> [B, T, 1]
    >>> x = jnp.ones((2, 5, 3))
    >>> variables = model.init(jax.random.key(0), x)
    >>> carry, y = model.apply(variables, x, model.initial_carry(2))
    >>> y.shape, carry.hidden.shape
    ((2, 5, 1), (2, 4))
    >>> classifier = SequenceModel(StackedRNN([GRU(4), GRU(4)]), 10, return_sequences=False)
    >>> _, logits = classifier.apply(classifier.init(jax.random.key(0), x), x)
    >>> logits.shape                                               # [B, T, F] -> [B, 10] logits
    (2, 10)

    Attributes:
      recurrent: a seqjax recurrent layer (``SimpleRNN``, ``LSTM``, ``GRU``), a ``StackedRNN`` or a
        ``Bidirectional`` layer (the latter only for non-stateful training: its backward half
        cannot continue a stream).
      output_features: ``O``, the width of the Dense readout (classes for logits).
      return_sequences: a prediction at every step ``[B, T, O]``; False: only at each row's last
        valid step ``[B, O]`` (the last step, or ``seq_lengths - 1``).
      dropout_rate: dropout on the recurrent outputs before the readout.
    """

    recurrent: nn.Module
    output_features: int
    return_sequences: bool = True
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(
        self,
        inputs: jax.Array,
        carry: Any = None,
        seq_lengths: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[Any, jax.Array]:
        """``inputs [B, T, F]`` -> ``(carry, predictions [B, T, O] or [B, O])``."""
        if _takes_deterministic(self.recurrent):  # a StackedRNN with dropout between layers
            carry, ys = self.recurrent(inputs, carry, seq_lengths, deterministic=deterministic)
        else:
            carry, ys = self.recurrent(inputs, carry, seq_lengths)
        if not self.return_sequences:
            if seq_lengths is None:
                ys = ys[:, -1]
            else:
                last = jnp.clip(jnp.asarray(seq_lengths) - 1, 0, ys.shape[1] - 1)
                ys = jnp.take_along_axis(ys, last[:, None, None], axis=1)[:, 0]
        if self.dropout_rate > 0:
            ys = nn.Dropout(self.dropout_rate)(ys, deterministic=deterministic)
        return carry, nn.Dense(self.output_features, name="head")(ys)

    def initial_carry(self, batch_size: int, dtype: Any = jnp.float32) -> Any:
        """The zero carry for ``batch_size`` streams (works on the unbound model)."""
        return zero_carry(self.recurrent, batch_size, dtype)


def _takes_deterministic(module: nn.Module) -> bool:
    return "deterministic" in inspect.signature(type(module).__call__).parameters

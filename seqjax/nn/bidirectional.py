"""``Bidirectional``: a forward and a backward recurrent layer whose outputs are merged per step."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.nn.base import RecurrentLayer

MERGE_MODES = ("concat", "sum", "mean", "mul", None)


class Bidirectional(nn.Module):
    """Runs ``layer`` forward and a copy (or ``backward_layer``) backward, padding-aware.

    With ``seq_lengths`` the backward pass starts at each row's own last valid step (not at the
    padding), and both directions output zeros past a row's length.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import GRU, Bidirectional
        >>> x = jnp.ones((2, 5, 3))                                 # [batch, time, features]
        >>> bi = Bidirectional(GRU(4), merge_mode="concat")
        >>> variables = bi.init(jax.random.key(0), x)
        >>> (fwd, bwd), ys = bi.apply(variables, x, seq_lengths=jnp.array([5, 2]))
        >>> fwd.shape, bwd.shape, ys.shape                          # features 2H
        ((2, 4), (2, 4), (2, 5, 8))
        >>> bool((ys[1, 2:] == 0).all())                            # zeros past a row's length
        True

    Attributes:
      layer: the forward layer (its ``reverse`` must be False).
      backward_layer: the backward layer; by default a copy of ``layer`` with ``reverse=True``.
      merge_mode: "concat" (features ``2H``), "sum", "mean", "mul", or None (a tuple of the two).

    Returns ``((forward_carry, backward_carry), outputs)``; the backward carry is the state after
    the first time step, which is where the backward pass ends.
    """

    layer: RecurrentLayer
    backward_layer: RecurrentLayer | None = None
    merge_mode: str | None = "concat"

    def setup(self) -> None:
        if self.merge_mode not in MERGE_MODES:
            raise ValueError(
                f"Bidirectional: merge_mode must be one of {MERGE_MODES}; got {self.merge_mode!r}."
            )
        if self.layer.reverse:
            raise ValueError("Bidirectional: `layer` runs forward; got a layer with reverse=True.")
        backward = self.backward_layer
        if backward is None:
            backward = self.layer.clone(reverse=True, parent=None)
        elif not backward.reverse:
            raise ValueError("Bidirectional: backward_layer must have reverse=True.")
        if backward.time_major != self.layer.time_major:
            raise ValueError("Bidirectional: both layers must have the same time_major.")
        self.forward_rnn = self.layer.clone(parent=None)
        self.backward_rnn = backward.clone(parent=None)

    def initial_carry(self, batch_size: int, dtype: Any = None) -> tuple[Any, Any]:
        """``(forward_carry, backward_carry)`` of zeros for ``batch_size`` rows (unbound is fine).

        >>> from seqjax.nn import GRU, LSTM
        >>> fwd, bwd = Bidirectional(LSTM(3), backward_layer=GRU(2, reverse=True)).initial_carry(4)
        >>> fwd.hidden.shape, bwd.shape
        ((4, 3), (4, 2))
        """
        backward = self.backward_layer or self.layer
        return (
            self.layer.initial_carry(batch_size, dtype),
            backward.initial_carry(batch_size, dtype),
        )

    def __call__(
        self,
        inputs: jax.Array,
        initial_carry: tuple[Any, Any] | None = None,
        seq_lengths: jax.Array | None = None,
    ) -> tuple[tuple[Any, Any], Any]:
        if initial_carry is None:
            fwd_init = bwd_init = None
        else:
            if not (isinstance(initial_carry, tuple) and len(initial_carry) == 2):
                raise ValueError(
                    "Bidirectional: initial_carry must be a pair (forward_carry, backward_carry)."
                )
            fwd_init, bwd_init = initial_carry
        fwd_carry, fwd = self.forward_rnn(inputs, fwd_init, seq_lengths)
        bwd_carry, bwd = self.backward_rnn(inputs, bwd_init, seq_lengths)
        return (fwd_carry, bwd_carry), merge(fwd, bwd, self.merge_mode)


def merge(forward: jax.Array, backward: jax.Array, mode: str | None) -> Any:
    """Merges the two directions' outputs ``[..., H]`` per step."""
    if mode == "concat":
        return jnp.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mean":
        return (forward + backward) / 2
    if mode == "mul":
        return forward * backward
    return forward, backward

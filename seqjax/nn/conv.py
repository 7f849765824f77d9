"""``TemporalConv``: a 1D CNN over time, causal by default, with dilations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from seqjax.nn import checks


class TemporalConv(nn.Module):
    """A stack of 1D convolutions over ``[batch, time, features]`` returning ``[batch, time, C]``.

    Layer ``k`` is a ``Conv(features[k], kernel_size, kernel_dilation=dilations[k])`` followed by
    ``activation`` (not after the last layer when ``activate_last=False``). With ``causal=True``
    the output at step t sees only inputs ``<= t`` (left padding, as Keras' ``padding="causal"``),
    so it can run on a stream; the receptive field is ``1 + (kernel_size - 1) * sum(dilations)``.
    The lecture's first layer sees dependencies inside a window, the next combines neighbouring
    windows: with dilations 1, 2, 4, ... the receptive field grows exponentially with depth.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import TemporalConv
        >>> x = jnp.ones((2, 5, 3))                                 # [batch, time, features]
        >>> conv = TemporalConv(features=(8, 1), kernel_size=2, dilations=(1, 2))
        >>> variables = conv.init(jax.random.key(0), x)
        >>> conv.apply(variables, x).shape                          # [batch, time, 1]
        (2, 5, 1)
        >>> x2 = x.at[:, 3:].set(5.0)                                # change steps 3 and 4 only
        >>> bool(jnp.allclose(conv.apply(variables, x2)[:, :3], conv.apply(variables, x)[:, :3]))
        True

    The last line shows causality: outputs before step 3 do not see the change.

    Attributes:
      features: output channels per layer.
      kernel_size: width of every kernel.
      dilations: one per layer (default all 1).
      causal: causal (left) padding; otherwise "SAME".
      activation: applied after each layer (ReLU).
      activate_last: also apply ``activation`` after the last layer.
      dropout_rate: dropout after each hidden layer (``deterministic`` switches it off).
    """

    features: Sequence[int]
    kernel_size: int = 3
    dilations: Sequence[int] | None = None
    causal: bool = True
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    activate_last: bool = True
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, inputs: jax.Array, *, deterministic: bool = True) -> jax.Array:
        checks.check_inputs(inputs, time_major=False, layer="TemporalConv")
        dilations = self.dilations or [1] * len(self.features)
        if len(dilations) != len(self.features):
            raise ValueError(
                f"TemporalConv: one dilation per layer; got {len(dilations)} dilations for "
                f"{len(self.features)} layers."
            )
        x = inputs
        last = len(self.features) - 1
        for k, (width, dilation) in enumerate(zip(self.features, dilations, strict=True)):
            x = nn.Conv(
                width,
                (self.kernel_size,),
                kernel_dilation=(dilation,),
                padding="CAUSAL" if self.causal else "SAME",
                name=f"conv_{k}",
            )(x)
            if k < last or self.activate_last:
                x = self.activation(x)
            if k < last and self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return x

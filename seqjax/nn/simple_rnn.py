"""The simple recurrent network (Elman 1990).

    h_t = act(x_t W + h_{t-1} U + b)

Parameters: ``kernel`` W ``[F, H]``, ``recurrent_kernel`` U ``[H, H]``, ``bias`` b ``[H]`` (the Keras
names and layouts). Carry: the hidden array ``[B, H]``. Backpropagation multiplies by ``U^T``
and ``act'`` once per step back in time, so over long lags the gradient vanishes (spectral radius
below one) or explodes (above one): the lecture's ``0.9 · 0.9 · 0.9 ...``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from seqjax.nn.base import RecurrentLayer
from seqjax.nn.engines.cpu import covers_activation


def simple_rnn_step(
    params: dict[str, jax.Array],
    hidden: jax.Array,
    x_proj: jax.Array,
    *,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
) -> jax.Array:
    """One Elman step: ``act(x_proj + hidden @ U)``, where ``x_proj = x_t W + b``.

    Shapes: ``hidden [B, H]``, ``x_proj [B, H]``; returns ``[B, H]``.
    """
    return activation(x_proj + hidden @ params["recurrent_kernel"])


class SimpleRNN(RecurrentLayer):
    r"""Elman RNN layer over ``[batch, time, features]``; returns ``(hidden [B, H], outputs)``.

    .. math::

        h_t = \mathrm{act}(x_t W + h_{t-1} U + b)

    Learned parameters: ``kernel`` W ``[F, H]``, ``recurrent_kernel`` U ``[H, H]``, ``bias`` b
    ``[H]``; ``outputs`` is every :math:`h_t`, ``[B, T, H]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import SimpleRNN
        >>> x = jnp.ones((2, 5, 3))                                 # [batch, time, features]
        >>> layer = SimpleRNN(features=4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> hidden, ys = layer.apply(variables, x)
        >>> hidden.shape, ys.shape
        ((2, 4), (2, 5, 4))
        >>> hidden, ys_next = layer.apply(variables, x, initial_carry=hidden)  # continue
        >>> ys_next.shape
        (2, 5, 4)

    The attributes of :class:`RecurrentLayer` apply; the SimpleRNN adds:

    Attributes:
      activation: ``act`` (tanh by default; e.g. ``jax.nn.relu``).
    """

    activation: Callable[[jax.Array], jax.Array] = jnp.tanh

    num_gates = 1
    kernel = "simple_rnn"

    def _declare_params(self, in_features: int) -> dict[str, jax.Array]:
        h = self.features
        return {
            "kernel": self.param("kernel", self.kernel_init, (in_features, h), self.param_dtype),
            "recurrent_kernel": self.param(
                "recurrent_kernel", self.recurrent_kernel_init, (h, h), self.param_dtype
            ),
            "bias": self.param("bias", self.bias_init, (h,), self.param_dtype),
        }

    def _kernel_limits(self):
        if covers_activation(self.activation):
            return []
        return [f"activation {getattr(self.activation, '__name__', self.activation)!r}"]

    def _step_fn(self):
        activation = self.activation
        return lambda params, hidden, x_proj: simple_rnn_step(
            params, hidden, x_proj, activation=activation
        )

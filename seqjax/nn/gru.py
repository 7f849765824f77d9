"""Gated recurrent unit (Cho et al. 2014), reset gate applied after the recurrent matmul
(the PyTorch / cuDNN convention and Keras' default ``reset_after=True``).

With gate blocks in the order **(r, z, n)**::

    r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + c_r)                reset gate
    z_t = sigmoid(x_t W_z + b_z + h_{t-1} U_z + c_z)                update gate
    n_t = act(x_t W_n + b_n + r_t * (h_{t-1} U_n + c_n))            candidate (tanh by default)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Parameters: ``kernel`` W ``[F, 3H]``, ``recurrent_kernel`` U ``[H, 3H]``, ``bias`` b ``[3H]`` (input
side), ``recurrent_bias`` c ``[3H]`` (recurrent side; only ``c_n`` cannot be merged into ``b``, the
other two are kept so PyTorch weights round-trip exactly). Carry: the hidden array ``[B, H]``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from seqjax.nn.base import RecurrentLayer
from seqjax.nn.engines.cpu import covers_activation
from seqjax.nn.initializers import per_gate


def gru_step(
    params: dict[str, jax.Array],
    hidden: jax.Array,
    x_proj: jax.Array,
    *,
    activation: Callable[[jax.Array], jax.Array] = jnp.tanh,
) -> jax.Array:
    """One GRU step (equations in the module docstring), ``x_proj = x_t W + b`` ``[B, 3H]``."""
    h_proj = hidden @ params["recurrent_kernel"] + params["recurrent_bias"]
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h_proj, 3, axis=-1)
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    n = activation(x_n + r * h_n)
    return (1.0 - z) * n + z * hidden


class GRU(RecurrentLayer):
    """GRU layer over ``[batch, time, features]``; returns ``(hidden [B, H], outputs [B, T, H])``.

    Gates (r, z, n), with the reset gate applied after the recurrent matmul (Keras'
    ``reset_after=True``, PyTorch's and cuDNN's GRU). Learned parameters: ``kernel`` ``[F, 3H]``,
    ``recurrent_kernel`` ``[H, 3H]``, ``bias`` and ``recurrent_bias`` ``[3H]``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import GRU
        >>> x = jnp.ones((2, 5, 3))                                 # [batch, time, features]
        >>> layer = GRU(features=4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> jax.tree.map(jnp.shape, variables["params"])
        {'bias': (12,), 'kernel': (3, 12), 'recurrent_bias': (12,), 'recurrent_kernel': (4, 12)}
        >>> hidden, ys = layer.apply(variables, x)
        >>> hidden.shape, ys.shape
        ((2, 4), (2, 5, 4))
        >>> bool(jnp.allclose(hidden, ys[:, -1]))                  # the last output is the carry
        True

    The attributes of :class:`RecurrentLayer` apply; the GRU adds:

    Attributes:
      activation: the candidate activation (tanh).
    """

    activation: Callable[[jax.Array], jax.Array] = jnp.tanh

    num_gates = 3
    kernel = "gru"

    def _declare_params(self, in_features: int) -> dict[str, jax.Array]:
        h = self.features
        return {
            "kernel": self.param(
                "kernel", self.kernel_init, (in_features, 3 * h), self.param_dtype
            ),
            "recurrent_kernel": self.param(
                "recurrent_kernel",
                per_gate(self.recurrent_kernel_init, 3),
                (h, 3 * h),
                self.param_dtype,
            ),
            "bias": self.param("bias", self.bias_init, (3 * h,), self.param_dtype),
            "recurrent_bias": self.param(
                "recurrent_bias", self.bias_init, (3 * h,), self.param_dtype
            ),
        }

    def _kernel_limits(self):
        if covers_activation(self.activation):
            return []
        return [f"activation {getattr(self.activation, '__name__', self.activation)!r}"]

    def _step_fn(self):
        activation = self.activation
        return lambda params, hidden, x_proj: gru_step(
            params, hidden, x_proj, activation=activation
        )

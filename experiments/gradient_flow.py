"""Gradient norm against lag: how much of the loss's gradient reaches the hidden state k steps back.

With ``hidden_offsets`` (zeros, added to the hidden state after every step; see
:class:`seqjax.nn.RecurrentLayer`) the gradient of the loss with respect to the offsets at step
``t`` is ``dL/dh_t``, the total derivative through every later step. For a loss read at the last
step ``T - 1`` the lag of step ``t`` is ``T - 1 - t``; a simple RNN's ``||dL/dh_t||`` falls
geometrically with the lag (vanishing) or grows (exploding, large recurrent weights), an LSTM's
stays flat through its additive cell.

(``seqjax.diagnostics`` was still empty when this was written; this is the minimum the long-range
experiment needs.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def grad_norm_by_lag(
    loss_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    offsets_shape: tuple[int, int, int],
) -> np.ndarray:
    """``||dL/dh_t||`` (mean over the batch) for each lag ``0 .. T-1``.

    Args:
      loss_fn: ``(params, hidden_offsets [B, T, H]) -> scalar loss`` read at the last step.
      params: the parameters to evaluate at.
      offsets_shape: ``(B, T, H)``.

    Returns:
      ``[T]``: entry ``k`` is the mean over the batch of ``||dL/dh_{T-1-k}||_2``.
    """
    grads = jax.jit(jax.grad(loss_fn, argnums=1))(params, jnp.zeros(offsets_shape, jnp.float32))
    norms = np.asarray(jnp.linalg.norm(grads, axis=-1).mean(axis=0))  # [T]
    return norms[::-1].copy()

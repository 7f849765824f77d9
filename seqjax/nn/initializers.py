"""Initialisers for recurrent parameters.

- ``per_gate``: apply an initialiser to each gate's ``[H, H]`` block separately, so that every
  gate's recurrent matrix is orthogonal (an orthogonal ``[H, 4H]`` matrix is not orthogonal per gate).
- ``lstm_bias``: the LSTM bias with the forget-gate slice set to a constant (Keras
  ``unit_forget_bias``; Gers et al. 2000) or drawn by chrono initialisation (Tallec & Ollivier 2018).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def per_gate(init: Initializer, num_gates: int) -> Initializer:
    """Returns an initialiser for ``[H, num_gates * H]`` that calls ``init`` once per gate block."""

    def initializer(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        rows, cols = shape
        if cols % num_gates:
            raise ValueError(f"shape {shape} is not {num_gates} gate blocks wide")
        width = cols // num_gates
        keys = jax.random.split(key, num_gates)
        return jnp.concatenate([init(k, (rows, width), dtype) for k in keys], axis=1)

    return initializer


def lstm_bias(
    base: Initializer,
    features: int,
    *,
    forget_bias: float | None = 1.0,
    chrono_max_time: int | None = None,
) -> Initializer:
    """The LSTM bias ``[4H]`` in gate order (i, f, g, o).

    ``base`` initialises the whole vector; then the forget slice ``[H:2H]`` is replaced:

    - ``chrono_max_time = T_max``: chrono initialisation, ``b_f ~ log(U(1, T_max - 1))`` and
      ``b_i = -b_f`` (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?"), so the
      cells start with memory time scales spread up to ``T_max`` steps;
    - otherwise ``forget_bias`` (1.0 by default, like Keras' ``unit_forget_bias``); ``None`` keeps
      ``base`` for the forget gate too.
    """

    def initializer(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        base_key, chrono_key = jax.random.split(key)
        bias = base(base_key, shape, dtype)
        h = features
        if chrono_max_time is not None:
            if chrono_max_time < 3:
                raise ValueError(f"chrono_max_time must be at least 3; got {chrono_max_time}.")
            u = jax.random.uniform(chrono_key, (h,), dtype, 1.0, chrono_max_time - 1.0)
            b_f = jnp.log(u)
            return bias.at[0:h].set(-b_f).at[h : 2 * h].set(b_f)
        if forget_bias is not None:
            return bias.at[h : 2 * h].set(jnp.asarray(forget_bias, dtype))
        return bias

    return initializer

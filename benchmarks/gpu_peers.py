"""GPU-only peers, added by ``python -m benchmarks.run --gpu`` (on a CUDA machine).

* ``jax.experimental.rnn.lstm``: JAX's cuDNN LSTM (GPU only).
* PyTorch ``nn.LSTM`` needs nothing extra: on CUDA the runners in ``impls`` are cuDNN already.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from benchmarks.impls import JaxRunner


def jax_cudnn_lstm_runner(case, mode):
    from jax.experimental import rnn

    b, t, f, h = case

    def init(key, x):
        weights = rnn.init_lstm_weight(key, f, h, 1, False)
        return {"w": weights}

    def apply(p, x):
        seq_lengths = jnp.full((x.shape[0],), x.shape[1], jnp.int32)
        h0 = jnp.zeros((1, x.shape[0], h), x.dtype)
        ys, _, _ = rnn.lstm(x, h0, h0, p["w"], seq_lengths, f, h, 1, 0.0, False)
        return ys

    if jax.default_backend() != "gpu":
        raise RuntimeError("jax.experimental.rnn.lstm needs a GPU (cuDNN)")
    return JaxRunner("jax.experimental.rnn.lstm (cuDNN)", "lstm", init, apply, case, mode)


def builders():
    return [("jax.experimental.rnn.lstm (cuDNN)", jax_cudnn_lstm_runner)]

"""The implementations under test, each built as a *runner*: compile once, then ``step()`` runs one
training step (forward, backward, Adam update; MSE on the last output) or one forward pass.

Every JAX runner is one ``jax.jit`` function with the parameters and optimiser state donated, so
the libraries are compared on the same footing. Torch runs eagerly on CUDA if available, else CPU
with its own defaults (threads, OpenMP wait policy). ``benchmarks.worker`` runs each library in its
own process.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import optax

LR = 1e-3


def _data(case, seed=0):
    b, t, f, h = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, f), dtype=np.float32)
    y = rng.standard_normal((b, h), dtype=np.float32) * 0.1
    return x, y


def _mem_bytes(compiled):
    try:
        m = compiled.memory_analysis()
        return int(
            m.temp_size_in_bytes
            + m.argument_size_in_bytes
            + m.output_size_in_bytes
            - m.alias_size_in_bytes
        )
    except Exception:
        return None


class JaxRunner:
    """Wraps ``apply(params, x) -> ys [B, T, H]`` into a jitted Adam training step or a forward."""

    def __init__(self, name, family, init, apply, case, mode):
        self.name, self.family, self.mode = name, family, mode
        x, y = _data(case)
        self.x, self.y = jnp.asarray(x), jnp.asarray(y)
        params = init(jax.random.key(0), self.x)
        t0 = time.perf_counter()
        if mode == "train":
            tx = optax.adam(LR)
            opt_state = tx.init(params)

            def loss_fn(p, x, y):
                ys = apply(p, x)
                return jnp.mean((ys[:, -1].astype(jnp.float32) - y) ** 2)

            def train_step(p, s, x, y):
                loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
                updates, s = tx.update(grads, s, p)
                return optax.apply_updates(p, updates), s, loss

            fn = jax.jit(train_step, donate_argnums=(0, 1))
            self.compiled = fn.lower(params, opt_state, self.x, self.y).compile()
            self.state = (params, opt_state)
        else:
            fn = jax.jit(apply)
            self.compiled = fn.lower(params, self.x).compile()
            self.state = params
        self.compile_s = time.perf_counter() - t0
        self.mem_bytes = _mem_bytes(self.compiled)

    def step(self):
        if self.mode == "train":
            p, s, loss = self.compiled(*self.state, self.x, self.y)
            self.state = (p, s)
            loss.block_until_ready()
        else:
            self.compiled(self.state, self.x).block_until_ready()


# ---- seqjax ----------------------------------------------------------------------------------------
SEQJAX_LABELS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}


def seqjax_label(kind, implementation=None, isa=None):
    """``seqjax LSTM``, ``seqjax LSTM (cpu_kernel)``, ``seqjax LSTM (cpu_kernel, avx2)``."""
    name = f"seqjax {SEQJAX_LABELS[kind]}"
    inner = ", ".join(x for x in (implementation, isa) if x)
    return f"{name} ({inner})" if inner else name


def seqjax_runner(kind, case, mode, name=None, **layer_kw):
    """Any ``implementation`` string the layers accept ("scan", "cpu_kernel", "auto", ...); none
    given: the layer's default."""
    from seqjax import nn as snn

    cls = {"lstm": snn.LSTM, "gru": snn.GRU, "rnn": snn.SimpleRNN}[kind]
    layer = cls(case[3], **layer_kw)
    name = name or seqjax_label(kind, layer_kw.get("implementation"))
    return JaxRunner(
        name, kind, lambda k, x: layer.init(k, x), lambda p, x: layer.apply(p, x)[1], case, mode
    )


# ---- Flax ---------------------------------------------------------------------------------------
def flax_runner(cell_name, case, mode):
    import flax.linen as nn

    kind = {"OptimizedLSTMCell": "lstm", "LSTMCell": "lstm", "SimpleCell": "rnn", "GRUCell": "gru"}[
        cell_name
    ]
    cell = getattr(nn, cell_name)(case[3])
    model = nn.RNN(cell)
    return JaxRunner(
        f"Flax nn.RNN({cell_name})",
        kind,
        lambda k, x: model.init(k, x),
        lambda p, x: model.apply(p, x),
        case,
        mode,
    )


# ---- Keras 3 (JAX backend) ----------------------------------------------------------------------
def keras_runner(case, mode):
    import keras

    b, t, f, h = case
    layer = keras.layers.LSTM(h, return_sequences=True)
    model = keras.Sequential([keras.Input((t, f)), layer])
    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def apply(p, x):
        ys, _ = model.stateless_call(p, ntv, x)
        return ys

    return JaxRunner("Keras 3 LSTM (JAX)", "lstm", lambda k, x: tv, apply, case, mode)


# ---- PyTorch ------------------------------------------------------------------------------------
class TorchRunner:
    def __init__(self, kind, case, mode):
        import torch

        self.torch = torch
        self.family, self.mode = kind, mode
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind]
        self.name = f"PyTorch nn.{cls.__name__}"
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"
        if self.dev == "cuda":
            self.name += " (cuDNN)"
        b, t, f, h = case
        x, y = _data(case)
        self.x = torch.from_numpy(x).to(self.dev)
        self.y = torch.from_numpy(y).to(self.dev)
        self.model = cls(f, h, batch_first=True).to(self.dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        t0 = time.perf_counter()
        self.step()
        self.compile_s = time.perf_counter() - t0  # first step: allocator/cuDNN set-up, no compile
        self.mem_bytes = None
        if self.dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.step()
            self.mem_bytes = int(torch.cuda.max_memory_allocated())

    def step(self):
        torch = self.torch
        if self.mode == "train":
            self.opt.zero_grad(set_to_none=True)
            out, _ = self.model(self.x)
            loss = ((out[:, -1] - self.y) ** 2).mean()
            loss.backward()
            self.opt.step()
        else:
            with torch.inference_mode():
                self.model(self.x)
        if self.dev == "cuda":
            torch.cuda.synchronize()


def torch_runner(kind, case, mode):
    return TorchRunner(kind, case, mode)


FLAX_CELLS = {
    "lstm": ("OptimizedLSTMCell", "LSTMCell"),
    "rnn": ("SimpleCell",),
    "gru": ("GRUCell",),
}


def peer_builders(library, family):
    """(label, builder(case, mode)) of one peer library for one family (empty if it has none)."""
    if library == "flax":
        return [
            (f"Flax nn.RNN({cell})", lambda c, m, cell=cell: flax_runner(cell, c, m))
            for cell in FLAX_CELLS[family]
        ]
    if library == "torch":
        name = {"lstm": "LSTM", "rnn": "RNN", "gru": "GRU"}[family]
        return [(f"PyTorch nn.{name}", lambda c, m: torch_runner(family, c, m))]
    if library == "keras":
        return [("Keras 3 LSTM (JAX)", keras_runner)] if family == "lstm" else []
    raise ValueError(library)

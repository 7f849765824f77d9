"""Hardware and algorithmic floors measured in the same process as the implementations.

* matmul peak: a 2048 x 2048 f32 ``jnp.dot``.
* recurrence floor (forward): a ``lax.scan`` chain of T dependent ``[B, H] x [H, G*H]`` matmuls (the
  next state is the first H columns), i.e. the latency-bound part no RNN can avoid.
* recurrence floor (train): that forward chain, the backward chain of T dependent
  ``[B, G*H] x [G*H, H]`` matmuls, and one ``[H, T*B] x [T*B, G*H]`` weight-gradient matmul: what a
  cuDNN-style backward does at least (the input projection and elementwise work come on top).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from benchmarks.common import median


class FnRunner:
    def __init__(self, name, fn, *args):
        self.name, self.family, self.mode = name, "floor", "floor"
        t0 = time.perf_counter()
        self.compiled = jax.jit(fn).lower(*args).compile()
        self.compile_s = time.perf_counter() - t0
        self.args = args
        self.mem_bytes = None

    def step(self):
        jax.block_until_ready(self.compiled(*self.args))


def matmul_peak_runner(n=2048):
    k1, k2 = jax.random.split(jax.random.key(1))
    a = jax.random.normal(k1, (n, n), jnp.float32)
    b = jax.random.normal(k2, (n, n), jnp.float32)
    r = FnRunner("matmul peak (2048² f32 dot)", jnp.dot, a, b)
    r.flops = 2 * n**3
    return r


def _chain(h0, w, time_steps, h):
    def body(carry, _):
        z = carry @ w
        return z[:, :h], None

    return jax.lax.scan(body, h0, None, length=time_steps)[0]


def floor_runners(case, gates):
    b, t, f, h = case
    k1, k2 = jax.random.split(jax.random.key(2))
    h0 = jax.random.normal(k1, (b, h), jnp.float32)
    w = jax.random.normal(k2, (h, gates * h), jnp.float32) * (1.0 / h**0.5)
    wt = w.T
    dz = jnp.ones((t * b, gates * h), jnp.float32)
    hs = jnp.ones((t * b, h), jnp.float32)

    def fwd(h0, w):
        return _chain(h0, w, t, h)

    def train(h0, w, wt, hs, dz):
        hf = _chain(h0, w, t, h)

        def bbody(carry, _):
            d = carry @ wt  # [B, H]
            return jnp.tile(d, (1, gates)), None

        dh = jax.lax.scan(bbody, jnp.tile(hf, (1, gates)), None, length=t)[0]
        dw = hs.T @ dz
        return dh, dw

    return (
        FnRunner(f"recurrence floor fwd (G={gates})", fwd, h0, w),
        FnRunner(f"recurrence floor train (G={gates})", train, h0, w, wt, hs, dz),
    )


def time_runner(r, steps, warmup=2):
    for _ in range(warmup):
        r.step()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        r.step()
        ts.append(time.perf_counter() - t0)
    return median(ts)

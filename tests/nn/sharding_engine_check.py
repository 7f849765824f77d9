"""Run by test_engine_sharding.py in a subprocess with 4 CPU devices (XLA_FLAGS must be set before
JAX starts): a default LSTM/GRU/SimpleRNN training step on a batch sharded over the 4 devices runs
the CPU kernel per shard (no gather of the batch; the custom call sees a quarter of the rows) and
equals one device.

Prints ``ENGINE SHARDING OK`` at the end; any mismatch raises.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.nn import GRU, LSTM, SimpleRNN
from seqjax.train.sharding import batch_sharding, make_mesh, replicated

TARGETS = {LSTM: "SeqjaxLstm", GRU: "SeqjaxGru", SimpleRNN: "SeqjaxSrn"}
B, T, F, H = 8, 5, 3, 6


def loss(layer):
    def f(params, x):
        carry, ys = layer.apply({"params": params}, x)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    return f


def custom_call_batches(hlo: str, target: str) -> list[int]:
    """The batch size (dimension 1 of the first [T, B, .] operand... i.e. of the first result) of
    every custom call to ``target`` in the compiled HLO."""
    sizes = []
    for line in hlo.splitlines():
        if f'custom_call_target="{target}' not in line:
            continue
        shape = re.search(r"= \(?f32\[(\d+),(\d+),(\d+)\]", line)
        assert shape, line
        sizes.append(int(shape.group(2)))
    return sizes


def main() -> None:
    assert jax.device_count() == 4, f"expected 4 CPU devices, got {jax.devices()}"
    mesh = make_mesh()  # as fit(mesh=...) uses: one axis, automatic sharding
    rows, whole = batch_sharding(mesh), replicated(mesh)
    x = np.random.default_rng(0).standard_normal((B, T, F)).astype(np.float32)
    for cls, target in TARGETS.items():
        layer = cls(H)
        params = cls(H, implementation="scan").init(jax.random.key(0), x)["params"]
        step = jax.jit(jax.value_and_grad(loss(layer)))
        expected = step(params, x)
        sharded_x = jax.device_put(x, rows)
        sharded_params = jax.device_put(params, whole)
        compiled = step.lower(sharded_params, sharded_x).compile()
        hlo = compiled.as_text()
        for part in ("Fwd", "Bwd"):
            batches = custom_call_batches(hlo, target + part)
            assert batches and all(b == B // 4 for b in batches), (target + part, batches)
        assert "all-gather" not in hlo, "the batch was gathered: " + hlo[:3000]
        got = compiled(sharded_params, sharded_x)
        close = lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
        jax.tree.map(close, got, expected)
        print(cls.__name__, "per-shard batch", B // 4, "ok")
    print("ENGINE SHARDING OK")


if __name__ == "__main__":
    main()

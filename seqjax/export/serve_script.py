"""Serve an artifact of ``seqjax.export.export_step`` one call at a time, without seqjax.

This file imports only the standard library, jax and numpy: run it in a process that has no
seqjax (the tests and ``experiments/deploy.py`` block ``import seqjax`` before running it)::

    python serve_script.py BLOB INPUTS.npy OUT.npz [RESETS.npy]

``INPUTS.npy`` is ``[N, B, T, F]`` (``N`` calls; ``[N, B, F]`` means ``T = 1``), ``RESETS.npy``
``[N, B]`` bool for an artifact exported with ``reset=True``. Starting from the zero carry, it
calls the step ``N`` times, threading the carry, and writes ``OUT.npz`` with ``predictions``
``[N, B, T, O]``, the final carry's leaves ``carry_0, carry_1, ...`` (plain containers flattened in
``jax.tree`` order), ``seconds`` ``[N]`` per call, ``traced_bytes`` ``[N]`` (Python heap after
each call, ``tracemalloc``), ``rss_bytes`` ``[N]`` (resident set size after each call) and
``seqjax_imported`` (whether any module named seqjax was loaded: must be False).
"""

import sys
import time
import tracemalloc
from typing import Any

import jax
import numpy as np


def rss_bytes() -> int:
    """The resident set size of this process (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        return 0


def main(blob_path: str, inputs_path: str, out_path: str, resets_path: str | None = None) -> None:
    with open(blob_path, "rb") as f:
        blob = bytearray(f.read())  # the type jax.export.deserialize takes
    inputs = np.load(inputs_path)
    if inputs.ndim == 3:
        inputs = inputs[:, :, None, :]
    resets = None if resets_path is None else np.load(resets_path).astype(bool)
    batch = inputs.shape[1]

    # The zero carry from the artifact's own signature (README, "Export and serve"):
    exp = jax.export.deserialize(blob)
    args, _ = jax.tree.unflatten(exp.in_tree, exp.in_avals)
    zeros = lambda a: np.zeros((batch, *a.shape[1:]), a.dtype)
    carry = jax.tree.map(zeros, args[0])

    x_dtype = args[1].dtype
    step = jax.jit(exp.call)  # exp.call works as it is; jit caches the dispatch
    n = inputs.shape[0]
    predictions = None  # preallocated after the first call: nothing accumulates per call
    # np.full writes every page now (np.zeros maps them lazily: RSS would grow as they fill).
    seconds = np.full(n, 0.0)
    traced, rss = np.full(n, 0, np.int64), np.full(n, 0, np.int64)
    tracemalloc.start()
    for i in range(n):
        call_args: tuple[Any, ...] = (carry, inputs[i].astype(x_dtype))
        if resets is not None:
            call_args += (resets[i],)
        start = time.perf_counter()
        carry, y = step(*call_args)
        y = np.asarray(y)
        seconds[i] = time.perf_counter() - start
        if predictions is None:
            predictions = np.full((n, *y.shape), 0, y.dtype)
        predictions[i] = y
        traced[i] = tracemalloc.get_traced_memory()[0]
        rss[i] = rss_bytes()
    tracemalloc.stop()
    if predictions is None:
        raise ValueError(f"{inputs_path} holds no calls: expected [N, B, T, F] with N >= 1")
    leaves = {f"carry_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(carry))}
    imported = any(m.startswith("seqjax") and sys.modules[m] is not None for m in sys.modules)
    np.savez(
        out_path,
        predictions=predictions,
        seconds=seconds,
        traced_bytes=traced,
        rss_bytes=rss,
        seqjax_imported=np.asarray(imported),
        allow_pickle=False,  # plain numeric arrays only
        **leaves,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])

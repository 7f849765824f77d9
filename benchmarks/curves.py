"""Scaling curves: ``python -m benchmarks.curves [--quick]``.

For the seqjax LSTM (B=16, F=8, H=128, the "long" case's shape) against T up to 16,384:
training-step time (should be linear in T), compile time (should be flat: one ``lax.scan``), and
XLA memory (argument + output + temp, from ``compiled.memory_analysis()``) with and without
``remat=True`` (the default scan, and implementation="cpu_kernel"), plus the Flax OptimizedLSTMCell reference. Saves ``benchmarks/results/curves-*.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks import common, impls  # noqa: E402
from benchmarks.common import time_runner  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    a = p.parse_args(argv)
    ts = [128, 512, 2048, 8192, 16384]
    time_max = 2048 if a.quick else 16384
    steps = 3 if a.quick else 5
    b, f, h = 16, 8, 128
    variants = {
        "seqjax LSTM (scan)": lambda c: impls.seqjax_runner(
            "lstm", c, "train", implementation="scan"
        ),
        "seqjax LSTM (cpu_kernel)": lambda c: impls.seqjax_runner(
            "lstm", c, "train", implementation="cpu_kernel"
        ),
        "seqjax LSTM (scan) remat=True": lambda c: impls.seqjax_runner(
            "lstm", c, "train", implementation="scan", remat=True
        ),
        "Flax OptimizedLSTMCell": lambda c: impls.flax_runner("OptimizedLSTMCell", c, "train"),
    }
    rows = []
    for t in ts:
        case = (b, t, f, h)
        for name, make in variants.items():
            r = make(case)
            ms = time_runner(r, steps, warmup=1) * 1e3 if t <= time_max else None
            row = {
                "T": t,
                "impl": name,
                "compile_s": r.compile_s,
                "mem_mb": None if r.mem_bytes is None else r.mem_bytes / 2**20,
                "step_ms": ms,
                "step_us_per_T": None if ms is None else ms * 1e3 / t,
            }
            rows.append(row)
            print(row, flush=True)
            del r
    env = common.environment()
    lines = [
        f"Curves, LSTM B={b} F={f} H={h}, {env['cpu']} ({env['cpus']} CPUs), jax {env['jax']}. "
        f"Command: `python -m benchmarks.curves{' --quick' if a.quick else ''}`",
        "",
        "| T | implementation | step ms | µs per time step | compile s | XLA mem MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ms = "" if r["step_ms"] is None else f"{r['step_ms']:.1f}"
        us = "" if r["step_us_per_T"] is None else f"{r['step_us_per_T']:.0f}"
        lines.append(
            f"| {r['T']} | {r['impl']} | {ms} | {us} | {r['compile_s']:.2f} | {r['mem_mb']:.1f} |"
        )
    md = "\n".join(lines) + "\n"
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(a.out, f"curves-{stamp}.json"), "w") as fh:
        json.dump({"environment": env, "rows": rows}, fh, indent=1, default=str)
    with open(os.path.join(a.out, f"curves-{stamp}.md"), "w") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()

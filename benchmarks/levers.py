"""Lever experiments: ``python -m benchmarks.levers --case small``.

Times variants of the seqjax LSTM training step interleaved in one process (see NOTES.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks import impls  # noqa: E402
from benchmarks.common import CASES, median  # noqa: E402
from benchmarks.run import interleaved  # noqa: E402
from seqjax.nn import fused  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="small")
    p.add_argument("--family", default="lstm")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--per-round", type=int, default=4)
    a = p.parse_args(argv)
    case = CASES[a.case]
    runners = []
    for barrier in (True, False):
        fused.BARRIER = barrier
        r = impls.seqjax_runner(a.family, case, "train", fast=True)
        r.name += f" barrier={barrier}"
        runners.append(r)
    fused.BARRIER = True
    runners.append(impls.seqjax_runner(a.family, case, "train"))
    cell = {"lstm": "OptimizedLSTMCell", "gru": "GRUCell", "rnn": "SimpleCell"}[a.family]
    runners.append(impls.flax_runner(cell, case, "train"))
    times, loads = interleaved(runners, a.rounds, a.per_round)
    base = median(times[runners[-1].name])
    for r in runners:
        m = median(times[r.name])
        print(f"{a.case} {r.name:45s} {m * 1e3:9.2f} ms  x{base / m:.2f} vs Flax")
    print("other load (CPUs):", [round(x, 2) for x in loads])


if __name__ == "__main__":
    main()

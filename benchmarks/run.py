"""One command for the whole benchmark: ``python -m benchmarks.run [--quick] [--curves]``.

Builds every implementation for every case in ONE process, compiles each (compile time reported
apart), then times them interleaved (round-robin rounds of a few steps each, so background load
hits all of them alike) and reports medians, ratios to the best peer, achieved GFLOP/s against a
2048² matmul peak and the recurrence floor measured in the same run, XLA memory, and the CPU load
from other processes during the run. Results go to ``benchmarks/results/<stamp>.{json,md}``.

Device-agnostic: JAX uses its default backend, torch uses CUDA when available. ``--gpu`` adds the
GPU-only peers (``jax.experimental.rnn.lstm``; torch is cuDNN automatically on CUDA).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from benchmarks import common, floors, impls  # noqa: E402
from benchmarks.common import CASES, GATES, CpuLoad, median  # noqa: E402


def interleaved(runners, rounds, per_round, warmup=3):
    """Round-robin timing; returns ({name: [seconds]}, [other-load per round])."""
    for r in runners:
        for _ in range(warmup):
            r.step()
    times = {r.name: [] for r in runners}
    loads = []
    load = CpuLoad()
    for _ in range(rounds):
        load.start()
        for r in runners:
            for _ in range(per_round):
                t0 = time.perf_counter()
                r.step()
                times[r.name].append(time.perf_counter() - t0)
        loads.append(load.stop()[0])
    return times, loads


def build(builders, case, mode, only=None):
    out, errors = [], {}
    for label, make in builders:
        if only and not any(s.lower() in label.lower() for s in only):
            continue
        try:
            out.append(make(case, mode))
        except Exception as exc:  # a peer that cannot be built is reported, not fatal
            errors[label] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"  ! {label}: {errors[label]}", flush=True)
    return out, errors


def run_case(cname, case, families, mode, rounds, per_round, only, gpu):
    b, t, f, h = case
    runners, errors = [], {}
    for fam in families:
        builders = impls.implementations(fam)
        if gpu and fam == "lstm":
            from benchmarks import gpu_peers

            builders = builders + gpu_peers.builders()
        rs, errs = build(builders, case, mode, only)
        runners += rs
        errors.update(errs)
    floor_rs = []
    if mode == "train":
        for fam in families:
            fwd, train = floors.floor_runners(case, GATES[fam])
            fwd.family = train.family = fam
            floor_rs += [fwd, train]
    print(f"[{cname} {mode}] built {len(runners)} runners; timing {rounds}x{per_round}", flush=True)
    times, loads = interleaved(runners + floor_rs, rounds, per_round)
    rows = []
    for r in runners + floor_rs:
        g = GATES[r.family]
        flops = (common.train_flops if mode == "train" else common.forward_flops)(b, t, f, h, g)
        ms = median(times[r.name]) * 1e3
        rows.append(
            {
                "case": cname,
                "mode": mode,
                "family": r.family,
                "impl": r.name,
                "median_ms": ms,
                "p10_ms": sorted(times[r.name])[len(times[r.name]) // 10] * 1e3,
                "p90_ms": sorted(times[r.name])[(9 * len(times[r.name])) // 10] * 1e3,
                "steps": len(times[r.name]),
                "compile_s": r.compile_s,
                "mem_mb": None if r.mem_bytes is None else r.mem_bytes / 2**20,
                "gflops": None if r.mode == "floor" else flops / (ms * 1e-3) / 1e9,
                "is_floor": r.mode == "floor",
            }
        )
    # ratios: time / best peer of the same family (peers: not seqjax, not floors)
    for fam in families:
        fam_rows = [x for x in rows if x["family"] == fam]
        peers = [x for x in fam_rows if not x["is_floor"] and not x["impl"].startswith("seqjax")]
        best = min((x["median_ms"] for x in peers), default=float("nan"))
        for x in fam_rows:
            x["ratio_to_best_peer"] = x["median_ms"] / best
            x["speedup_vs_best_peer"] = best / x["median_ms"]
    del runners, floor_rs
    gc.collect()
    return rows, errors, median(loads)


def markdown(result):
    lines = []
    env = result["environment"]
    lines.append(
        f"Machine: {env['cpu']} ({env['cpus']} CPUs), JAX backend `{env['jax_backend']}`; "
    )
    lines.append(
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}, optax {env['optax']}, "
        f"keras {env['keras']}, torch {env['torch']} ({env.get('torch_device')}, "
        f"{env.get('torch_threads')} threads), numpy {env['numpy']}; XLA_FLAGS=`{env['XLA_FLAGS']}`"
    )
    lines.append("")
    pk = result["matmul_peak"]
    lines.append(
        f"Matmul peak (2048² f32 jnp.dot, same run): {pk['gflops']:.0f} GFLOP/s "
        f"({pk['median_ms']:.1f} ms). Command: `{result['command']}`"
    )
    for mode in ("train", "forward"):
        rows = [r for r in result["rows"] if r["mode"] == mode]
        if not rows:
            continue
        lines.append("")
        lines.append(
            f"### {mode} ({'forward + backward + Adam, MSE on last output' if mode == 'train' else 'inference, full output sequence'})"
        )
        lines.append("")
        lines.append(
            "| case (B,T,F,H) | implementation | median ms | p10–p90 ms | × best peer (time) | speed-up vs best peer | GFLOP/s | % peak | compile s | XLA mem MB |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            c = CASES[r["case"]]
            gf = "" if r["gflops"] is None else f"{r['gflops']:.1f}"
            pct = "" if r["gflops"] is None else f"{100 * r['gflops'] / pk['gflops']:.0f}%"
            mem = "" if r["mem_mb"] is None else f"{r['mem_mb']:.1f}"
            name = (
                f"**{r['impl']}**"
                if r["impl"].startswith("seqjax") and "fused" not in r["impl"]
                else r["impl"]
            )
            lines.append(
                f"| {r['case']} {c} | {name} | {r['median_ms']:.2f} | {r['p10_ms']:.2f}–{r['p90_ms']:.2f} | "
                f"{r['ratio_to_best_peer']:.2f} | {r['speedup_vs_best_peer']:.2f}× | {gf} | {pct} | "
                f"{r['compile_s']:.2f} | {mem} |"
            )
        loads = result["other_load"].get(mode, {})
        if loads:
            lines.append("")
            lines.append(
                "Other processes' CPU load during timing (CPUs busy, median over rounds): "
                + ", ".join(f"{k} {v:.2f}" for k, v in loads.items())
            )
    if result.get("errors"):
        lines.append("")
        lines.append("Not run: " + "; ".join(f"{k}: {v}" for k, v in result["errors"].items()))
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 steps per implementation, fewer rounds")
    p.add_argument("--cases", nargs="*", default=list(CASES))
    p.add_argument("--families", nargs="*", default=["lstm", "rnn", "gru"])
    p.add_argument("--modes", nargs="*", default=["train", "forward"])
    p.add_argument("--only", nargs="*", help="substrings of implementation names to keep")
    p.add_argument("--curves", action="store_true", help="also run benchmarks.curves")
    p.add_argument("--gpu", action="store_true", help="add GPU-only peers (jax.experimental.rnn)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--tag", default="")
    a = p.parse_args(argv)

    nthreads = impls.set_torch_threads()
    rounds, per_round = (4, 5) if a.quick else (8, 5)
    f_rounds, f_per_round = (4, 5) if a.quick else (6, 5)
    result = {
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else os.sys.argv[1:]),
        "environment": common.environment(),
        "torch_threads": nthreads,
        "rows": [],
        "errors": {},
        "other_load": {},
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    pk = floors.matmul_peak_runner()
    peak_s = floors.time_runner(pk, 10, warmup=3)
    for mode in a.modes:
        result["other_load"][mode] = {}
        for cname in a.cases:
            r, p_ = (rounds, per_round) if mode == "train" else (f_rounds, f_per_round)
            rows, errors, load = run_case(
                cname, CASES[cname], a.families, mode, r, p_, a.only, a.gpu
            )
            result["rows"] += rows
            result["errors"].update({f"{cname}/{mode}/{k}": v for k, v in errors.items()})
            result["other_load"][mode][cname] = load
            for x in rows:
                print(
                    f"  {cname:5s} {mode:7s} {x['impl']:36s} {x['median_ms']:9.2f} ms  "
                    f"x{x['ratio_to_best_peer']:.2f}  compile {x['compile_s']:.2f}s",
                    flush=True,
                )
    peak_s2 = floors.time_runner(pk, 10, warmup=1)
    ms = median([peak_s, peak_s2]) * 1e3
    result["matmul_peak"] = {"median_ms": ms, "gflops": pk.flops / (ms * 1e-3) / 1e9}
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + (f"-{a.tag}" if a.tag else "")
    with open(os.path.join(a.out, f"{stamp}.json"), "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    md = markdown(result)
    with open(os.path.join(a.out, f"{stamp}.md"), "w") as fh:
        fh.write(md)
    print(md)
    print(f"saved {a.out}/{stamp}.json and .md")
    if a.curves:
        from benchmarks import curves

        curves.main(["--quick"] if a.quick else [])


if __name__ == "__main__":
    main()

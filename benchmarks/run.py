"""One command for the whole benchmark: ``python -m benchmarks.run [--quick] [filters]``.

Each library runs in a process of its own (``benchmarks.worker``): seqjax (``scan`` and
``cpu_kernel``, or any ``--impls``), seqjax's kernel once more per other ISA variant this CPU runs
(the library is loaded once per process; ``SEQJAX_CPU_ISA``), Flax, PyTorch (its own threads and
OpenMP defaults) and Keras. All processes build and warm up first (compile time reported apart);
then the timing rounds interleave them: every round, every process runs each of its
implementations for a few steps, in turn, so background load hits all alike. Reported per row:
median and p10–p90, time / seqjax (peer ÷ seqjax reference, p10–p90 of the per-round ratios),
GFLOP/s and × the compute limit (training FLOPs ÷ the fastest 2048² f32 matmul of the same run,
``jnp.dot`` or ``torch.mm``), compile time and XLA memory. The tables name the CPU, its vector ISA,
the load average and the CPU time other processes took during the rounds. ``--busy N`` runs N
busy-looping processes beside the benchmark (the "one busy core" measurement). Results:
``benchmarks/results/<stamp>[-tag].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks import common
from benchmarks.common import CASES, GATES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = {"lstm": ("Flax nn.RNN(OptimizedLSTMCell)", "PyTorch nn.LSTM"),
         "rnn": ("Flax nn.RNN(SimpleCell)", "PyTorch nn.RNN"),
         "gru": ("Flax nn.RNN(GRUCell)", "PyTorch nn.GRU")}  # fmt: skip
TARGETS = {  # (family, case) -> (vs Flax, vs PyTorch), from issue 12
    ("lstm", "small"): (2.0, 1.5),
    ("lstm", "long"): (2.0, 1.5),
    ("lstm", "main"): (1.6, 1.5),
}


class Worker:
    def __init__(self, key, spec, env):
        self.key = key
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        first = self.proc.stdout.readline()
        if not first:
            raise RuntimeError(f"worker {key} exited ({self.proc.wait()}) before building")
        hello = json.loads(first)
        self.runners, self.errors, self.info = hello["runners"], hello["errors"], hello["info"]

    def run(self, rid, steps, warmup=0):
        msg = {"cmd": "run", "id": rid, "steps": steps, "warmup": warmup}
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["times"]

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


# The workers' environment: as the user started the command (the coordinator itself keeps JAX on
# the CPU, so that on a GPU machine it holds no device memory the workers need).
_USER_ENV = dict(os.environ)
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _env(**extra):
    env = dict(_USER_ENV)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("KERAS_BACKEND", "jax")
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def worker_specs(a, isas):
    """(key, spec, env) per process: seqjax (default ISA), seqjax per other ISA, the peers."""
    base = {"cases": a.cases, "families": a.families, "modes": a.modes}
    out = [("seqjax", {**base, "library": "seqjax", "impls": a.impls, "peak": True}, _env())]
    kernel_impls = [i for i in a.impls if i not in ("scan",)]
    for isa in isas[1:]:
        if kernel_impls:
            spec = {**base, "library": "seqjax", "impls": kernel_impls}
            out.append((f"seqjax-{isa}", spec, _env(SEQJAX_CPU_ISA=isa)))
    for lib in a.peers:
        out.append((lib, {**base, "library": lib, "peak": lib == "torch"}, _env()))
    if a.gpu:
        out.append(("jax-cudnn", {**base, "library": "jax-cudnn"}, _env()))
    return out


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def time_rounds(workers, groups, rounds, per_round, pids, warmup=1):
    """Interleaved timing (each turn: ``warmup`` untimed steps, then ``per_round`` timed); returns ({(worker, id): [s]}, {(worker, id): [per-round medians]},
    {group: [other load per round]})."""
    times, per = {}, {}
    loads = {g: [] for g in groups}
    load = common.CpuLoad(pids)
    for rnd in range(rounds):
        order = workers[rnd % len(workers) :] + workers[: rnd % len(workers)]  # rotate
        for g in groups:
            load.start()
            for w in order:
                for r in w.runners:
                    if (r["case"], r["mode"]) != g and not (r["mode"] == "peak" and g == groups[0]):
                        continue
                    ts = w.run(r["id"], per_round, warmup)
                    times.setdefault((w.key, r["id"]), []).extend(ts)
                    per.setdefault((w.key, r["id"]), []).append(statistics.median(ts))
                time.sleep(0.02)  # let a process's idle threads settle before the next one
            loads[g].append(load.stop()[0])
        print(f"  round {rnd + 1}/{rounds} done", flush=True)
    return times, per, loads


def summarise(workers, times, per, ref_impl):
    rows = []
    for w in workers:
        for r in w.runners:
            ts = times.get((w.key, r["id"]))
            if not ts:
                continue
            rows.append(
                {
                    **{
                        k: r.get(k)
                        for k in ("name", "impl", "family", "case", "mode", "compile_s", "flops")
                    },
                    "process": w.key,
                    "median_ms": statistics.median(ts) * 1e3,
                    "p10_ms": pct(ts, 0.1) * 1e3,
                    "p90_ms": pct(ts, 0.9) * 1e3,
                    "steps": len(ts),
                    "mem_mb": None if r["mem_bytes"] is None else r["mem_bytes"] / 2**20,
                    "_rounds": per[(w.key, r["id"])],
                }
            )
    # The machine's matmul speed: the fastest tenth (p10 time) of the best library's 2048² matmul,
    # so that background load during some rounds does not lower the limit.
    peaks = [x for x in rows if x["mode"] == "peak"]
    peak = min(peaks, key=lambda x: x["p10_ms"] / x["flops"]) if peaks else None
    peak_gflops = peak["flops"] / (peak["p10_ms"] * 1e-3) / 1e9 if peak else float("nan")
    for x in rows:
        if x["mode"] == "peak":
            x["gflops"] = x["flops"] / (x["median_ms"] * 1e-3) / 1e9
            continue
        b, t, f, h = CASES[x["case"]]
        flops_fn = common.train_flops if x["mode"] == "train" else common.forward_flops
        fl = flops_fn(b, t, f, h, GATES[x["family"]])
        x["gflops"] = fl / (x["median_ms"] * 1e-3) / 1e9
        x["limit_ms"] = fl / (peak_gflops * 1e9) * 1e3
        x["x_limit"] = x["median_ms"] / x["limit_ms"]
    # the seqjax reference row of each (case, mode, family): ref_impl in the main seqjax process
    for x in rows:
        if x["mode"] == "peak":
            continue
        ref = [
            y
            for y in rows
            if y["process"] == "seqjax"
            and (y["case"], y["mode"], y["family"]) == (x["case"], x["mode"], x["family"])
            and y.get("impl") == ref_impl
        ]
        if not ref:
            continue
        ref = ref[0]
        x["ref"] = ref["name"]
        rr = [a / b for a, b in zip(x["_rounds"], ref["_rounds"], strict=False)]
        x["vs_ref"] = x["median_ms"] / ref["median_ms"]
        x["vs_ref_p10"], x["vs_ref_p90"] = pct(rr, 0.1), pct(rr, 0.9)
    return rows, peak, peak_gflops


def markdown(result):
    env = result["environment"]
    L = [
        f"JAX backend: `{env.get('jax_backend')}`. "
        f"CPU: **{env['cpu']}** ({env['cpus']} CPUs), vector ISA: **{env['isa']}**; seqjax kernel "
        f"variants this CPU runs: {', '.join(env['kernel_isas'])}. "
        f"Load average before / after: {result['loadavg_before']} / {result['loadavg_after']}; "
        f"busy-loop processes beside the run: {result['busy']}.",
        "",
        f"jax {env['jax']}, jaxlib {env['jaxlib']}, flax {env['flax']}, optax {env['optax']}, "
        f"keras {env['keras']}, torch {env['torch']}, numpy {env['numpy']}; "
        f"XLA_FLAGS=`{env['XLA_FLAGS']}`. Processes: "
        + "; ".join(f"{k}: {v}" for k, v in result["workers"].items()),
        "",
        f"Compute limit = FLOPs ÷ the matmul peak of this run (the faster of jnp.dot and "
        f"torch.mm on 2048² f32, p10 time: {result['peak']['name']}, "
        f"{result['peak_gflops']:.0f} GFLOP/s). "
        f"Time / seqjax = this row ÷ `{result['ref_impl']}` of the same family (p10–p90 of the "
        f"per-round ratios in brackets); > 1 means seqjax is faster. Command: `{result['command']}`",
    ]
    for mode in ("train", "forward"):
        rows = [r for r in result["rows"] if r["mode"] == mode]
        if not rows:
            continue
        what = "forward + backward + Adam" if mode == "train" else "inference, full sequence"
        L += ["", f"#### {mode} ({what})", ""]
        L.append(
            "| case (B,T,F,H) | implementation | median ms | p10–p90 ms | time / seqjax "
            "(p10–p90) | × compute limit | GFLOP/s | compile s | XLA mem MB |"
        )
        L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            vs = (
                f"{r['vs_ref']:.2f} ({r['vs_ref_p10']:.2f}–{r['vs_ref_p90']:.2f})"
                if "vs_ref" in r
                else ""
            )
            mem = "" if r["mem_mb"] is None else f"{r['mem_mb']:.1f}"
            name = f"**{r['name']}**" if r["name"].startswith("seqjax") else r["name"]
            L.append(
                f"| {r['case']} {CASES[r['case']]} | {name} | {r['median_ms']:.2f} | "
                f"{r['p10_ms']:.2f}–{r['p90_ms']:.2f} | {vs} | {r['x_limit']:.2f} | "
                f"{r['gflops']:.1f} | {r['compile_s']:.2f} | {mem} |"
            )
        loads = result["other_load"]
        L += [
            "",
            "Other processes' CPU load during the rounds (CPUs busy, median over rounds): "
            + ", ".join(f"{k.split('/')[0]} {v:.2f}" for k, v in loads.items() if k.endswith(mode)),
        ]
    targets = target_lines(result)
    if targets:
        L += ["", "#### against the targets (training step; ratio = peer ÷ seqjax)", ""] + targets
    if result["errors"]:
        L += ["", "Not run: " + "; ".join(f"{k}: {v}" for k, v in result["errors"].items())]
    return "\n".join(L) + "\n"


def target_lines(result):
    rows = [r for r in result["rows"] if r["mode"] == "train" and "vs_ref" in r]
    out = [
        "| case | family | seqjax ref | scan ÷ ref | Flax ÷ ref (target) | PyTorch ÷ ref (target) "
        "| ref × compute limit |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    seen = False
    for case in CASES:
        for fam in ("lstm", "rnn", "gru"):
            sel = [r for r in rows if r["case"] == case and r["family"] == fam]
            if not sel:
                continue
            ref = next((r for r in sel if r["name"] == sel[0]["ref"]), None)
            if ref is None:
                continue

            def cell(name, sel=sel):
                r = next((r for r in sel if r["name"] == name), None)
                if r is None:
                    return "–"
                return f"{r['vs_ref']:.2f} ({r['vs_ref_p10']:.2f}–{r['vs_ref_p90']:.2f})"

            scan = next((r for r in sel if r["name"].endswith("(scan)")), None)
            flax, torch = PEERS[fam]
            tf, tt = TARGETS.get((fam, case), (1.5, None))
            out.append(
                f"| {case} | {fam} | {ref['name']} | {cell(scan['name']) if scan else '–'} | "
                f"{cell(flax)} ({tf}) | {cell(torch)} ({tt or '–'}) | {ref['x_limit']:.2f} |"
            )
            seen = True
    return out if seen else []


def loadavg():
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "n/a"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5 rounds x 4 steps (default 10 x 4)")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed steps at the start of each turn (default 1): a training loop runs step after "
        "step, while every turn of the interleaving starts after another process has run",
    )
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    p.add_argument("--families", nargs="*", default=["lstm", "rnn", "gru"])
    p.add_argument("--modes", nargs="*", default=["train", "forward"])
    p.add_argument(
        "--impls",
        nargs="*",
        default=["scan", "cpu_kernel"],
        help="seqjax implementation strings ('default' = the layer's default, e.g. 'auto')",
    )
    p.add_argument(
        "--ref", default=None, help="seqjax implementation the ratios use (default: 2nd of --impls)"
    )
    p.add_argument(
        "--isas",
        nargs="*",
        default=None,
        help="kernel variants to time, the first in the main seqjax process (default: every one "
        "this CPU runs except 'portable', which is timed only where it is the only one)",
    )
    p.add_argument("--peers", nargs="*", default=["flax", "torch", "keras"])
    p.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the run")
    p.add_argument("--gpu", action="store_true", help="add jax.experimental.rnn.lstm (cuDNN)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--tag", default="")
    p.add_argument("--curves", action="store_true", help="also run benchmarks.curves")
    a = p.parse_args(argv)
    ref_impl = a.ref or (a.impls[1] if len(a.impls) > 1 else a.impls[0])
    rounds, per_round = (5, 4) if a.quick else (10, 4)

    from seqjax.nn.engines import cpu_build

    isas = a.isas
    if isas is None:  # every variant this CPU runs, but "portable" only where it is the only one
        isas = [i for i in cpu_build.supported_isas() if i != "portable"] or ["portable"]
    environment = common.environment()
    result = {
        "command": "python -m benchmarks.run "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment,
        "ref_impl": ref_impl,
        "busy": a.busy,
        "loadavg_before": loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "errors": {},
        "workers": {},
    }
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    workers = []
    try:
        for key, spec, env in worker_specs(a, isas):
            if key == "seqjax" and a.isas:
                env["SEQJAX_CPU_ISA"] = a.isas[0]
            t0 = time.perf_counter()
            print(f"[build] {key} ...", flush=True)
            try:
                w = Worker(key, spec, env)
            except Exception as exc:
                result["errors"][key] = f"{type(exc).__name__}: {exc}"
                continue
            print(f"[build] {key}: {len(w.runners)} runners, {time.perf_counter() - t0:.0f} s")
            workers.append(w)
            result["errors"].update({f"{key}:{k}": v for k, v in w.errors.items()})
            result["workers"][key] = w.info
            if key == "seqjax":  # the backend the benchmark ran on, as the workers see it
                environment["jax_backend"] = w.info.get("jax_backend")
                environment["jax_devices"] = w.info.get("jax_devices")
        groups = [(c, m) for m in a.modes for c in a.cases]
        pids = [os.getpid()] + [w.proc.pid for w in workers]
        times, per, loads = time_rounds(workers, groups, rounds, per_round, pids, a.warmup)
    finally:
        for w in workers:
            w.close()
        for b in busy:
            b.kill()
            b.wait()
    rows, peak, peak_gflops = summarise(workers, times, per, ref_impl)
    result["loadavg_after"] = loadavg()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    result["peak"] = (
        {k: peak[k] for k in ("name", "median_ms", "p10_ms")} if peak else {"name": "none"}
    )
    result["peak_gflops"] = peak_gflops
    result["other_load"] = {f"{c}/{m}": statistics.median(v) for (c, m), v in loads.items() if v}
    for r in rows:
        r.pop("_rounds")
    result["rows"] = [r for r in rows if r["mode"] != "peak"]
    result["peaks"] = [r for r in rows if r["mode"] == "peak"]
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + (f"-{a.tag}" if a.tag else "")
    with open(os.path.join(a.out, f"{stamp}.json"), "w") as fh:
        json.dump(result, fh, indent=1, default=str)
    md = markdown(result)
    with open(os.path.join(a.out, f"{stamp}.md"), "w") as fh:
        fh.write(md)
    print(md)
    print(f"saved {a.out}/{stamp}.json and .md")
    if a.curves:  # its own process, on the backend the user's environment selects
        cmd = [sys.executable, "-m", "benchmarks.curves"] + (["--quick"] if a.quick else [])
        subprocess.run(cmd, env=_env(), cwd=ROOT, check=False)


if __name__ == "__main__":
    main()

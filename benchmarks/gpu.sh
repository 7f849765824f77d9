#!/usr/bin/env bash
# GPU table for the LSTM training step (forward, backward, Adam; MSE on the last output, the same
# step as benchmarks/impls.py): seqjax scan, seqjax cuDNN (LSTM(H, implementation="cudnn"), and
# the engine called directly), Flax nn.RNN(OptimizedLSTMCell), PyTorch nn.LSTM (cuDNN), plus a
# float32 matmul peak for the compute limit. Each peer runs in its OWN process (PyTorch with its
# own defaults), the processes interleaved over ROUNDS rounds so that background load hits all
# alike; each process times STEPS steps after 3 warm-up steps. TF32 is OFF by default for every
# peer (JAX: jax_default_matmul_precision="highest", which also turns cuDNN's TF32 off in
# jax.experimental.rnn; PyTorch: torch.backends.{cuda.matmul,cudnn}.allow_tf32=False); TF32=1
# turns it on for all of them. Every line of the table states it.
#
# On a CUDA machine with jax[cuda] and a CUDA torch, from the repository root:
#     bash benchmarks/gpu.sh                  # about 5-10 minutes
#     ROUNDS=5 STEPS=40 CASES="main" bash benchmarks/gpu.sh
# First it runs tests/nn/test_cuda_engine.py (on a GPU that compares the real cuDNN call with the
# scan) and a few checks of the cuDNN path (bf16, vmap, sharding): their failures are reported,
# not fatal. Results: benchmarks/results/<stamp>-gpu.{jsonl,md}. Without a GPU it stops, unless
# ALLOW_CPU=1 (a smoke test of this script:
#     CASES=tiny ROUNDS=1 STEPS=3 RUN_TESTS=0 ALLOW_CPU=1 bash benchmarks/gpu.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-20}
CASES=${CASES:-"small main long"}
PEERS=${PEERS:-"seqjax-scan seqjax-cudnn seqjax-cudnn-engine flax pytorch matmul-peak"}
TF32=${TF32:-0}
ALLOW_CPU=${ALLOW_CPU:-0}
RUN_TESTS=${RUN_TESTS:-1}
export TF32 KERAS_BACKEND=jax
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's seqjax, not an installed one

stamp=$(date -u +%Y%m%d-%H%M%S)
out_dir=benchmarks/results
mkdir -p "$out_dir"
jsonl="$out_dir/$stamp-gpu.jsonl"
table="$out_dir/$stamp-gpu.md"
prog=$(mktemp "${TMPDIR:-/tmp}/seqjax-gpu-bench.XXXXXX")
trap 'rm -f "$prog" "$prog.err"' EXIT

cat >"$prog" <<'PY'
"""One peer, one case, one process: prints one JSON line. Also `env`, `checks`, `summary`."""
import json
import os
import statistics
import sys
import time

CASES = {  # name: (B, T, F, H), as benchmarks/common.py
    "small": (32, 64, 8, 64),
    "main": (64, 128, 32, 256),
    "long": (16, 1024, 8, 128),
    "tiny": (4, 8, 3, 8),  # smoke test only
}
LR = 1e-3
WARMUP = 3
TF32 = os.environ.get("TF32", "0") == "1"


def data(case):
    import numpy as np

    b, t, f, h = case
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((b, t, f), dtype=np.float32),
        rng.standard_normal((b, h), dtype=np.float32) * 0.1,
    )


def jax_setup():
    import jax

    jax.config.update("jax_default_matmul_precision", None if TF32 else "highest")
    return jax


def jax_train_step(apply, init, case):
    """A jitted Adam step of `apply(params, x) -> ys [B, T, H]`; returns (step(), compile_s)."""
    jax = jax_setup()
    import jax.numpy as jnp
    import optax

    x, y = (jnp.asarray(a) for a in data(case))
    params = init(jax.random.key(0), x)
    tx = optax.adam(LR)

    def loss_fn(p):
        return jnp.mean((apply(p, x)[:, -1] - y) ** 2)

    def train_step(p, s):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss

    t0 = time.perf_counter()
    compiled = jax.jit(train_step, donate_argnums=(0, 1)).lower(params, tx.init(params)).compile()
    compile_s = time.perf_counter() - t0
    state = [params, tx.init(params)]

    def step():
        p, s, loss = compiled(*state)
        state[:] = [p, s]
        loss.block_until_ready()

    return step, compile_s


def seqjax_peer(case, implementation):
    from seqjax.nn import LSTM

    layer = LSTM(case[3], implementation=implementation)
    return jax_train_step(lambda p, x: layer.apply(p, x)[1], layer.init, case)


def seqjax_engine_peer(case):
    """The cuDNN engine called directly (works before implementation="cudnn" is wired)."""
    import jax.numpy as jnp

    from seqjax.nn import LSTM
    from seqjax.nn.engines import cuda

    layer = LSTM(case[3], implementation="scan")
    b = case[0]

    def apply(p, x):
        carry = layer.initial_carry(b, x.dtype)
        _, hs = cuda.run_layer(layer, p["params"], carry, jnp.swapaxes(x, 0, 1), None)
        return jnp.swapaxes(hs, 0, 1)

    return jax_train_step(apply, layer.init, case)


def flax_peer(case):
    import flax.linen as nn

    model = nn.RNN(nn.OptimizedLSTMCell(case[3]))
    return jax_train_step(model.apply, model.init, case)


def torch_peer(case):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = TF32
    torch.backends.cudnn.allow_tf32 = TF32
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    b, t, f, h = case
    x, y = (torch.from_numpy(a).to(dev) for a in data(case))
    model = torch.nn.LSTM(f, h, batch_first=True).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        out, _ = model(x)
        ((out[:, -1] - y) ** 2).mean().backward()
        opt.step()
        if dev == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    step()
    step.device = "cuDNN" if dev == "cuda" else "CPU: torch has no CUDA here"
    return step, time.perf_counter() - t0


def matmul_peak_peer(case):
    """f32 matmul throughput (4096^2, at the same precision setting) for the compute limit."""
    jax = jax_setup()
    import jax.numpy as jnp

    n = 4096 if jax.default_backend() == "gpu" else 512
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    t0 = time.perf_counter()
    f = jax.jit(lambda a: a @ a).lower(a).compile()
    compile_s = time.perf_counter() - t0

    def step():
        f(a).block_until_ready()

    step.flops = 2 * n**3
    return step, compile_s


PEERS = {
    "seqjax-scan": ("seqjax LSTM (scan)", lambda c: seqjax_peer(c, "scan")),
    "seqjax-cudnn": ('seqjax LSTM (implementation="cudnn")', lambda c: seqjax_peer(c, "cudnn")),
    "seqjax-cudnn-engine": ("seqjax engines.cuda.run_layer (direct)", seqjax_engine_peer),
    "flax": ("Flax nn.RNN(OptimizedLSTMCell)", flax_peer),
    "pytorch": ("PyTorch nn.LSTM", torch_peer),
    "matmul-peak": ("f32 matmul peak (jnp.dot)", matmul_peak_peer),
}


def time_peer(peer, case_name, steps, round_):
    label, build = PEERS[peer]
    row = {"peer": peer, "label": label, "case": case_name, "round": round_, "tf32": TF32}
    try:
        step, row["compile_s"] = build(CASES[case_name])
        for _ in range(WARMUP):
            step()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        row["times_ms"] = [1e3 * s for s in times]
        if hasattr(step, "device"):
            row["label"] += f" ({step.device})"
        if hasattr(step, "flops"):
            row["flops"] = step.flops
    except Exception as exc:  # a peer that cannot run is reported, the others still run
        row["error"] = f"{type(exc).__name__}: {exc}"[:400]
    print(json.dumps(row), flush=True)


def env():
    import platform

    import jax

    info = {"python": platform.python_version(), "jax": jax.__version__, "backend": jax.default_backend()}
    info["devices"] = [str(d) for d in jax.devices()]
    try:
        import jaxlib

        info["jaxlib"] = jaxlib.__version__
    except Exception as exc:
        info["jaxlib"] = repr(exc)
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name(0)
            info["torch_cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:
        info["torch"] = repr(exc)
    try:
        from seqjax.nn.engines import cuda

        info["seqjax_cudnn_unavailable_reason"] = cuda.unavailable_reason()
    except Exception as exc:
        info["seqjax_cudnn_unavailable_reason"] = f"engine not importable: {exc!r}"
    info["tf32"] = TF32
    print(json.dumps(info))
    return info["backend"]


def checks():
    """bf16, vmap and sharding on the cuDNN path: what happens, one line each (not fatal)."""
    jax = jax_setup()
    import jax.numpy as jnp
    import numpy as np

    from seqjax.nn import LSTM

    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 5, 3)), jnp.float32)

    def attempt(name, fn):
        try:
            print(f"  {name}: ok: {fn()}")
        except Exception as exc:
            print(f"  {name}: {type(exc).__name__}: {str(exc)[:300]}")

    def apply(layer, x):
        variables = LSTM(4).init(jax.random.key(0), x)
        return layer.apply(variables, x)[1]

    def bf16():
        ys = apply(LSTM(4, implementation="cudnn", dtype=jnp.bfloat16), x)
        return f"ran, outputs {ys.dtype}"

    def vmap():
        ys = jax.vmap(lambda xi: apply(LSTM(4, implementation="cudnn"), xi))(jnp.stack([x, x]))
        ref = jax.vmap(lambda xi: apply(LSTM(4), xi))(jnp.stack([x, x]))
        return f"max |cudnn - scan| = {float(jnp.max(jnp.abs(ys - ref))):.2e}"

    def sharding():
        devices = jax.devices()
        if len(devices) < 2:
            return f"not checked: {len(devices)} device"
        from jax.sharding import NamedSharding, PartitionSpec

        mesh = jax.make_mesh((len(devices),), ("batch",))
        xs = jax.device_put(
            jnp.tile(x, (len(devices), 1, 1)), NamedSharding(mesh, PartitionSpec("batch"))
        )
        fn = jax.jit(lambda xi: apply(LSTM(4, implementation="cudnn"), xi))
        hlo = fn.lower(xs).compile().as_text()
        return f"all-gather in compiled HLO: {'all-gather' in hlo}"

    attempt('bf16 (dtype=bfloat16, implementation="cudnn")', bf16)
    attempt('vmap (implementation="cudnn")', vmap)
    attempt('sharding (batch-sharded input, implementation="cudnn")', sharding)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def summary(path):
    rows = [json.loads(line) for line in open(path) if line.startswith("{")]
    env_row = next((r for r in rows if "backend" in r), {})
    rows = [r for r in rows if "peer" in r]
    print(f"# LSTM training step on {env_row.get('torch_device') or env_row.get('devices')}\n")
    print(
        f"jax {env_row.get('jax')}, jaxlib {env_row.get('jaxlib')}, torch {env_row.get('torch')} "
        f"(cuDNN {env_row.get('torch_cudnn')}). TF32 {'ON' if TF32 else 'OFF'} for every peer. "
        f"Each peer in its own process, {max((r['round'] for r in rows), default=0)} interleaved "
        "rounds; median and p10-p90 over all timed steps of all rounds. ratio = time / PyTorch.\n"
    )
    peak = [t for r in rows if r["peer"] == "matmul-peak" for t in r.get("times_ms", [])]
    peak_flops_s = None
    if peak:
        flops = next(r["flops"] for r in rows if r["peer"] == "matmul-peak" and "flops" in r)
        peak_flops_s = flops / (statistics.median(peak) / 1e3)
        print(f"f32 matmul peak: {peak_flops_s / 1e12:.1f} TFLOP/s\n")
    print("| case (B, T, F, H) | implementation | median ms | p10-p90 | ratio to PyTorch | "
          "% of matmul peak | compile s | error |")
    print("|---|---|---:|---|---:|---:|---:|---|")
    for case_name in dict.fromkeys(r["case"] for r in rows):
        b, t, f, h = CASES[case_name]
        train_flops = 3 * 2 * b * t * (f + h) * 4 * h
        by_peer = {}
        for r in rows:
            if r["case"] == case_name and r["peer"] != "matmul-peak":
                by_peer.setdefault(r["peer"], []).append(r)
        med = {p: statistics.median(t for r in rs for t in r.get("times_ms", [])) for p, rs in by_peer.items() if any("times_ms" in r for r in rs)}
        for peer, rs in by_peer.items():
            times = [t for r in rs for t in r.get("times_ms", [])]
            errors = sorted({r["error"] for r in rs if "error" in r})
            cells = ["", "", "", "", ""]
            if times:
                m = med[peer]
                cells[0] = f"{m:.2f}"
                cells[1] = f"{pct(times, 0.1):.2f}-{pct(times, 0.9):.2f}"
                cells[2] = f"{m / med['pytorch']:.2f}" if "pytorch" in med else ""
                if peak_flops_s:
                    cells[3] = f"{100 * train_flops / (m / 1e3) / peak_flops_s:.1f}"
                cells[4] = f"{statistics.median(r['compile_s'] for r in rs if 'compile_s' in r):.1f}"
            print(f"| {case_name} {CASES[case_name]} | {rs[0]['label']} | " + " | ".join(cells)
                  + f" | {'; '.join(errors)[:200]} |")
    print("\nTarget (issue 12): the cuDNN path within 1.2x of PyTorch cuDNN at main.")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "env":
        sys.exit(0 if env() == "gpu" else 3)
    elif cmd == "checks":
        checks()
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        time_peer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
PY

echo "== environment"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
env_rc=0
python "$prog" env | tee "$jsonl" || env_rc=$?
if [ "$env_rc" -ne 0 ] && [ "$ALLOW_CPU" != "1" ]; then
  echo "JAX's default backend is not a GPU (see above); set ALLOW_CPU=1 for a smoke test." >&2
  exit 1
fi

if [ "$RUN_TESTS" = "1" ]; then
  echo "== tests/nn/test_cuda_engine.py (real cuDNN against the scan on a GPU)"
  python -m pytest -q -p no:cacheprovider tests/nn/test_cuda_engine.py || echo "!! engine tests FAILED"
fi

echo "== checks of the cuDNN path"
python "$prog" checks || echo "!! checks crashed"

echo "== timing: rounds=$ROUNDS steps=$STEPS cases=[$CASES] peers=[$PEERS] TF32=$TF32"
for round in $(seq 1 "$ROUNDS"); do
  for case in $CASES; do
    for peer in $PEERS; do
      line=$(python "$prog" time "$peer" "$case" "$STEPS" "$round" 2>"$prog.err" | tail -n 1) || true
      if [ -z "$line" ]; then  # the process died before printing its row
        line="{\"peer\": \"$peer\", \"label\": \"$peer\", \"case\": \"$case\", \"round\": $round, \"error\": \"process failed: $(tail -n 1 "$prog.err" | tr -d '"\\' | cut -c1-200)\"}"
      fi
      echo "$line" >>"$jsonl"
      echo "  round $round $case $peer: $(echo "$line" | cut -c1-160)"
    done
  done
done
python "$prog" summary "$jsonl" | tee "$table"
echo "== results: $jsonl, $table"

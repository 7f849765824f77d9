"""Deploy: the stateful LSTM of Microsoft's daily close, exported and served without seqjax.

1. Train the stateful batched LSTM through ``seqjax.train.fit`` (data and model of
   :mod:`experiments.online`: standardised daily log returns, chronological split, a
   ``Standardizer`` fitted on the training part).
2. Export it with ``seqjax.export.export_step`` (batch 1, one day per call, the Standardizer
   baked in: the service feeds raw log returns and gets raw predicted returns), lowered for
   ``export.platforms`` in one artifact.
3. Serve it in a fresh Python process where ``import seqjax`` is blocked, running
   ``seqjax/export/serve_script.py`` (jax and numpy only): every day of the series, one call per
   day, the carry threaded from call to call.
4. Check the served predictions (all days) and final carry against the in-library chunked
   evaluation, one ``model.apply`` over the whole series, within ``export.rtol`` (float32).
5. Report time per call and memory per call (Python heap by ``tracemalloc`` and resident set
   size after every call: constant once warm).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from experiments.online import load_average, load_returns, persistence_z, score, train_batched
from seqjax.export import SERVE_SCRIPT, export_step, to_plain

# Runs the serving script with `import seqjax` made impossible, checking that it is.
WITHOUT_SEQJAX = (
    "import runpy, sys\n"
    "sys.modules['seqjax'] = None\n"
    "try:\n    import seqjax\nexcept ImportError:\n    pass\n"
    "else:\n    raise SystemExit('seqjax is importable')\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def serve_without_seqjax(blob: bytes, inputs: np.ndarray, workdir: Path) -> dict[str, np.ndarray]:
    """Runs SERVE_SCRIPT on ``inputs [N, B, T, F]`` in a fresh process that cannot import
    seqjax; returns what it saved (predictions, final carry, seconds, memory per call)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "step.bin").write_bytes(blob)
        np.save(tmp / "inputs.npy", inputs)
        args = [str(SERVE_SCRIPT), str(tmp / "step.bin"), str(tmp / "inputs.npy")]
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_SEQJAX, *args, str(tmp / "out.npz")],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        (workdir / "serve.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            raise RuntimeError(f"the serving process failed:\n{done.stderr[-3000:]}")
        with np.load(tmp / "out.npz") as out:
            return {key: out[key] for key in out.files}


def _relative_error(served: np.ndarray, expected: np.ndarray) -> float:
    """max |served - expected| / max |expected| (relative to the values' scale)."""
    return float(np.max(np.abs(served - expected)) / max(np.max(np.abs(expected)), 1e-30))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(config.to_json_best_effort(indent=2))
    load_before = load_average()
    data = load_returns(config)
    model, params, train_seconds = train_batched(config, data, path / "batched")
    scaler = data["scaler"]

    platforms = tuple(p.strip() for p in config.export.platforms.split(","))
    blob = export_step(
        model,
        {"params": params},
        batch_size=1,
        time_steps=1,
        platforms=platforms,
        standardizer=scaler,
    )
    (path / "msft_lstm.step").write_bytes(blob)

    returns = data["returns"].astype(np.float32)
    served = serve_without_seqjax(blob, returns[:, None, None, None], path)  # one day per call
    served_r = served["predictions"][:, 0, 0, 0]  # entry t: predicted r[t + 1]

    # The in-library evaluation: one call over the whole series, the same float32 mapping back.
    carry, z_pred = jax.jit(model.apply)({"params": params}, data["z"][None, :, None])
    mean, scale = (np.asarray(v, np.float32) for v in (scaler.mean_, scaler.scale_))
    library_r = np.asarray(z_pred)[0, :, 0] * scale + mean
    carry_leaves = jax.tree.leaves(to_plain(carry))
    carry_errors = [
        _relative_error(served[f"carry_{i}"], np.asarray(leaf))
        for i, leaf in enumerate(carry_leaves)
    ]
    rtol = float(config.export.rtol)
    prediction_error = _relative_error(served_r, library_r)
    elementwise = bool(
        np.allclose(served_r, library_r, rtol=rtol, atol=rtol * np.max(np.abs(library_r)))
    )

    seconds, traced, rss = served["seconds"], served["traced_bytes"], served["rss_bytes"]
    warm = min(100, len(seconds) // 2)  # calls after the first compilation and warm-up
    calls = len(seconds) - warm
    half = len(seconds) // 2
    marks = [i for i in (1000, 2000, 4000, 6000) if i < len(seconds)]
    test = data["splits"]["test"]
    test_days = test[:-1] if test[-1] + 1 >= len(data["prices"]) else test
    results = {
        "days_served": int(len(seconds)),
        "train_seconds": train_seconds,
        "artifact_bytes": len(blob),
        "platforms": list(platforms),
        "seqjax_imported_by_server": bool(served["seqjax_imported"]),
        "max_relative_error_predictions": prediction_error,
        "max_relative_error_carry": max(carry_errors),
        "rtol": rtol,
        "equal_within_rtol": bool(elementwise and max(carry_errors) <= rtol),
        "first_call_seconds": float(seconds[0]),
        "per_call_seconds": {
            "median": float(np.median(seconds[warm:])),
            "p90": float(np.percentile(seconds[warm:], 90)),
            "p99": float(np.percentile(seconds[warm:], 99)),
        },
        "memory": {
            "traced_bytes_after_warmup": int(traced[warm]),
            "traced_bytes_last": int(traced[-1]),
            "traced_growth_per_call_bytes": float((traced[-1] - traced[warm]) / calls),
            "rss_bytes_after_warmup": int(rss[warm]),
            "rss_bytes_last": int(rss[-1]),
            "rss_growth_per_call_bytes": float((rss[-1] - rss[warm]) / calls),
            # The allocator's pools settle within a few thousand calls; then RSS is flat.
            "rss_growth_per_call_second_half_bytes": float(
                (rss[-1] - rss[half]) / (len(rss) - 1 - half)
            ),
            "rss_bytes_at_call": {
                int(i): int(rss[i]) for i in sorted({warm, *marks, len(rss) - 1})
            },
        },
        "test": {
            "served_lstm": score(
                data, (served_r[test_days - 1] - scaler.mean_) / scaler.scale_, test_days
            ),
            "persistence": score(data, persistence_z(data, test_days), test_days),
        },
        "load_before": load_before,
        "load_after": load_average(),
    }
    (path / "results.json").write_text(json.dumps(results, indent=2))
    return results


def summary(results: dict[str, Any]) -> str:
    call, memory = results["per_call_seconds"], results["memory"]
    return "\n".join(
        [
            f"served {results['days_served']} days one call each, without seqjax "
            f"(imported: {results['seqjax_imported_by_server']}); artifact "
            f"{results['artifact_bytes']} bytes for {results['platforms']}",
            f"equal to the in-library evaluation within rtol {results['rtol']:g}: "
            f"{results['equal_within_rtol']} (max relative error: predictions "
            f"{results['max_relative_error_predictions']:.2e}, carry "
            f"{results['max_relative_error_carry']:.2e})",
            f"time per call: median {1e6 * call['median']:.0f} us, p90 {1e6 * call['p90']:.0f} "
            f"us, p99 {1e6 * call['p99']:.0f} us (first call {results['first_call_seconds']:.2f} s)",
            f"memory per call: Python heap {memory['traced_growth_per_call_bytes']:+.1f} B/call, "
            f"RSS {memory['rss_growth_per_call_bytes']:+.1f} B/call after call {min(memory['rss_bytes_at_call'])}, "
            f"{memory['rss_growth_per_call_second_half_bytes']:+.1f} B/call over the second half "
            f"(RSS {memory['rss_bytes_last'] / 2**20:.0f} MiB)",
            f"test RMSE $: served LSTM {results['test']['served_lstm']['rmse']:.4f}, "
            f"persistence {results['test']['persistence']['rmse']:.4f}; load "
            f"{results['load_before']} -> {results['load_after']}",
        ]
    )

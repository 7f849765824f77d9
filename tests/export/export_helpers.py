"""Trained tiny models and a runner of the serving script in a process where seqjax is blocked."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax

from seqjax.export import SERVE_SCRIPT
from seqjax.nn import GRU, LSTM, StackedRNN
from seqjax.train import SequenceModel, create_train_state, train_step

FEATURES = 2
KINDS = ("lstm", "gru", "stacked")

# Runs SERVE_SCRIPT with `import seqjax` made impossible (sys.modules entry None) and checks it.
BLOCKED_RUNNER = """
import runpy, sys
sys.modules["seqjax"] = None
try:
    import seqjax
except ImportError:
    pass
else:
    raise SystemExit("seqjax was importable")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sine_stream(batch: int, time: int, *, phase: float = 0.0) -> np.ndarray:
    """``[batch, time, FEATURES]``: sines and cosines with a different phase per row."""
    t = np.arange(time)[None, :] * 0.3 + phase + np.arange(batch)[:, None]
    return np.stack([np.sin(t), 0.5 * np.cos(1.7 * t)], axis=-1).astype(np.float32)


def make_model(kind: str) -> SequenceModel:
    body = {
        "lstm": lambda: LSTM(6),
        "gru": lambda: GRU(5),
        "stacked": lambda: StackedRNN([LSTM(5), GRU(4)]),
    }[kind]()
    return SequenceModel(body, output_features=FEATURES)


@functools.cache
def trained(kind: str) -> tuple[SequenceModel, dict]:
    """A model trained for 15 stateful steps on next-step prediction of the sine stream."""
    model = make_model(kind)
    series = sine_stream(2, 15 * 8 + 1)
    state = create_train_state(model, optax.adam(1e-2), series[:, :8], seed=1)
    step = jax.jit(train_step)
    carry = model.initial_carry(2)
    for k in range(15):
        chunk = series[:, k * 8 : k * 8 + 9]
        batch = {"inputs": chunk[:, :-1], "targets": chunk[:, 1:]}
        state, carry, _ = step(state, carry, batch, state.base_key())
    return model, {"params": state.params}


def run_blocked(tmp_path: Path, blob: bytes, inputs: np.ndarray, resets=None) -> dict:
    """Runs SERVE_SCRIPT on ``inputs [N, B, (T,) F]`` in a fresh process without seqjax."""
    blob_path, inputs_path = tmp_path / "step.bin", tmp_path / "inputs.npy"
    out_path = tmp_path / "out.npz"
    blob_path.write_bytes(blob)
    np.save(inputs_path, inputs)
    args = [str(SERVE_SCRIPT), str(blob_path), str(inputs_path), str(out_path)]
    if resets is not None:
        np.save(tmp_path / "resets.npy", resets)
        args.append(str(tmp_path / "resets.npy"))
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUNNER, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: nothing there to import by accident
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out_path) as out:
        return {key: out[key] for key in out.files}

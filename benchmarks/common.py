"""Shared helpers: timing, CPU-load sampling, FLOP counts, environment description.

Device-agnostic: nothing here names a device; JAX runs on its default backend and torch on CUDA
when ``torch.cuda.is_available()``.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
# torch CPU: OpenMP workers that spin-wait steal the CPUs XLA needs in an interleaved run (measured:
# torch small LSTM 90 ms spinning vs 7.9 ms passive on this 2-CPU machine); see NOTES.md.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CASES = {
    # name: (B, T, F, H)
    "main": (64, 128, 32, 256),
    "small": (32, 64, 8, 64),
    "long": (16, 1024, 8, 128),
}
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def train_flops(b, t, f, h, g):
    """Training FLOPs of one step: 3 x forward matmul FLOPs (forward, input-grad, weight-grad)."""
    return 3 * 2 * b * t * (f + h) * g * h


def forward_flops(b, t, f, h, g):
    return 2 * b * t * (f + h) * g * h


def median(xs):
    return statistics.median(xs) if xs else float("nan")


class CpuLoad:
    """Fraction of all CPUs busy with *other* processes between start() and stop() (from /proc)."""

    def __init__(self):
        self.ok = os.path.exists("/proc/stat")

    @staticmethod
    def _total():
        with open("/proc/stat") as fh:
            parts = fh.readline().split()[1:]
        vals = [int(v) for v in parts]
        idle = vals[3] + vals[4]
        return sum(vals[:8]), idle

    @staticmethod
    def _self():
        with open("/proc/self/stat") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12])  # utime + stime of this process

    def start(self):
        if self.ok:
            self.t0, self.i0 = self._total()
            self.s0 = self._self()

    def stop(self):
        """Returns (other_load_cpus, own_cpus): CPUs' worth busy by others and by this process."""
        if not self.ok:
            return float("nan"), float("nan")
        t1, i1 = self._total()
        s1 = self._self()
        total = t1 - self.t0
        if total <= 0:
            return float("nan"), float("nan")
        ncpu = os.cpu_count() or 1
        busy = (total - (i1 - self.i0)) / total * ncpu
        own = (s1 - self.s0) / total * ncpu
        return max(busy - own, 0.0), own


def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def environment():
    import jax

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "LD_PRELOAD": os.environ.get("LD_PRELOAD", ""),
    }
    for mod in ("jaxlib", "flax", "optax", "keras", "torch", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as exc:  # a missing peer library only removes its rows
            info[mod] = f"unavailable ({type(exc).__name__})"
    try:
        import torch

        info["torch_device"] = "cuda" if torch.cuda.is_available() else "cpu"
        info["torch_threads"] = torch.get_num_threads()
    except Exception:
        pass
    return info


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *a):
        self.s = time.perf_counter() - self.t0

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
# No OMP_WAIT_POLICY here: each library runs in its own process (benchmarks.worker), so PyTorch
# keeps its own OpenMP defaults (issue 12: PASSIVE had been needed only because torch shared a
# process with XLA).

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
    """CPUs' worth busy with processes other than ``pids`` between start() and stop() (/proc)."""

    def __init__(self, pids=None):
        self.ok = os.path.exists("/proc/stat")
        self.pids = list(pids) if pids else [os.getpid()]

    @staticmethod
    def _total():
        with open("/proc/stat") as fh:
            parts = fh.readline().split()[1:]
        vals = [int(v) for v in parts]
        idle = vals[3] + vals[4]
        return sum(vals[:8]), idle

    def _ours(self):
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    parts = fh.read().rsplit(")", 1)[1].split()
                total += int(parts[11]) + int(parts[12])  # utime + stime
            except OSError:
                pass
        return total

    def start(self):
        if self.ok:
            self.t0, self.i0 = self._total()
            self.s0 = self._ours()

    def stop(self):
        """Returns (other_load_cpus, own_cpus): CPUs' worth busy by others and by ``pids``."""
        if not self.ok:
            return float("nan"), float("nan")
        t1, i1 = self._total()
        s1 = self._ours()
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
    info["isa"] = cpu_isa()
    try:
        from seqjax.nn.engines import cpu_build

        info["kernel_isas"] = cpu_build.supported_isas()
    except Exception as exc:
        info["kernel_isas"] = [f"unavailable ({type(exc).__name__})"]
    return info


def cpu_isa():
    """The vector ISA of this CPU in a few words, from /proc/cpuinfo's flags."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return platform.machine()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return platform.machine() + (" NEON" if "asimd" in flags else "")
    avx512 = [f for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq") if f in flags]
    parts = [
        "AVX-512 (" + "/".join(f[6:].upper() for f in avx512) + ")" if avx512 else "no AVX-512"
    ]
    parts += [name for name, flag in (("AVX2", "avx2"), ("FMA", "fma")) if flag in flags]
    return "x86-64, " + ", ".join(parts)


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


def time_runner(r, steps, warmup=2):
    """Median seconds of ``steps`` calls of ``r.step()`` after ``warmup`` calls."""
    for _ in range(warmup):
        r.step()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        r.step()
        ts.append(time.perf_counter() - t0)
    return median(ts)

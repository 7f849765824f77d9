"""Building and loading the CPU kernels' shared library: compiler, cache folder, registration.

No JAX maths here (that is :mod:`seqjax.nn.cpu_kernels`). The C++ source
(``seqjax/nn/csrc/recurrence_cpu.cc``) is compiled at first use with the system C++ compiler
(``$CXX`` or ``c++``/``g++``/``clang++``) against the XLA FFI headers that jaxlib ships, and cached
in ``$SEQJAX_CACHE_DIR`` (default ``~/.cache/seqjax``) under a hash of the source, compiler flags,
jaxlib version and CPU, so each machine builds it once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import jax

SOURCE = Path(__file__).parent.parent / "csrc" / "recurrence_cpu.cc"
_TARGETS = (
    "SeqjaxSrnFwd",
    "SeqjaxSrnBwd",
    "SeqjaxGruFwd",
    "SeqjaxGruBwd",
    "SeqjaxLstmFwd",
    "SeqjaxLstmBwd",
)
_FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-w")
_lock = threading.Lock()
_loaded: dict[str, object] = {}


class KernelUnavailableError(RuntimeError):
    """The CPU kernels could not be built (no C++ compiler, or it failed); the message says why."""


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_signature() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.machine() + platform.processor()


def cache_dir() -> Path:
    root = os.environ.get("SEQJAX_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seqjax"


def build() -> Path:
    """Compiles the kernels if this machine has no cached build yet; returns the library's path."""
    cxx = _compiler()
    if cxx is None:
        raise KernelUnavailableError(
            "seqjax CPU kernels need a C++ compiler (set $CXX, or install g++/clang++); "
            "use implementation='scan' instead."
        )
    include = jax.ffi.include_dir()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        b"\0".join(
            s.encode()
            for s in (
                SOURCE.read_text(),
                version,
                " ".join(_FLAGS),
                jax.__version__,
                _cpu_signature(),
            )
        )
    ).hexdigest()[:16]
    target = cache_dir() / f"recurrence_cpu-{key}.so"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    except OSError as exc:
        raise KernelUnavailableError(
            f"cannot write the seqjax kernel cache {target.parent} ({exc}); set $SEQJAX_CACHE_DIR "
            "to a writable folder."
        ) from exc
    os.close(fd)
    cmd = [cxx, *_FLAGS, f"-I{include}", str(SOURCE), "-o", tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise KernelUnavailableError(
            f"building the seqjax CPU kernels failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}"
        )
    os.replace(tmp, target)  # atomic: concurrent builders each write their own file
    return target


def load() -> None:
    """Builds (once per machine) and registers the kernels with XLA (once per process)."""
    with _lock:
        if "lib" in _loaded:
            return
        lib = ctypes.cdll.LoadLibrary(str(build()))
        for name in _TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        _loaded["lib"] = lib

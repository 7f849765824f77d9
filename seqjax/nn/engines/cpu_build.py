"""Building and loading the CPU kernels' shared library: ISA variant, compiler, cache, safe loading.

No JAX maths here (that is the CPU engine). The C++ source (``seqjax/nn/csrc/recurrence_cpu.cc``)
is compiled at first use with the system C++ compiler (``$CXX`` or ``c++``/``g++``/``clang++``)
against the XLA FFI headers that jaxlib ships, once per machine, for one instruction-set variant:

* ``"avx512"``: x86-64 with AVX-512 F/BW/VL/DQ (and AVX2, FMA): 64-byte vectors;
* ``"avx2"``: x86-64 with AVX2 and FMA: 32-byte vectors;
* ``"portable"``: the compiler's baseline for the machine (SSE2 on x86-64, NEON on aarch64).

The variant is the best one the CPU's flags (``/proc/cpuinfo``) allow, or ``$SEQJAX_CPU_ISA``
(``portable``, ``avx2`` or ``avx512``; a value the CPU cannot run raises). The C++ picks its vector
width and register blocks per variant, so the build is no longer tied to the building CPU
(``-march=native``) and a cached library is valid on any CPU with that ISA.

Cache: ``$SEQJAX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/seqjax`` or ``~/.cache/seqjax``), created
0700, one file per hash of (source, compiler version, flags, variant, jaxlib version). Native code
is loaded only from a place no other user can write:

* the library file must be a regular file (not a symbolic link) owned by this user (or root),
  not writable by group or others; it is opened with ``O_NOFOLLOW``, checked with ``fstat`` on
  the opened descriptor and loaded through that descriptor (``/proc/self/fd/N`` on Linux; a copy
  in a fresh private folder elsewhere), so the file checked is the file loaded;
* the cache folder must be owned by this user (or root) and not writable by group or others;
* every parent folder must be owned by this user or root, and not writable by group or others
  unless it has the sticky bit (``/tmp``: others cannot rename or delete what they do not own).

A cached file that fails its check is rebuilt over (the folder is ours). If the folder or a parent
fails, the library is built in a fresh private temporary folder, loaded, and the folder removed,
with a :class:`RuntimeWarning` that names the reason. Builders serialise on an ``flock`` of
``.lock`` in the cache folder, so concurrent processes (``pytest -n``) compile once; every build
runs in its own temporary folder, removed on success and failure alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
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
_BASE_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-w")
# Variant -> (compiler flags, /proc/cpuinfo flags the CPU needs), best first.
ISA_VARIANTS = {
    "avx512": (
        ("-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"),
        ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"),
    ),
    "avx2": (("-mavx2", "-mfma"), ("avx2", "fma")),
    "portable": ((), ()),
}
ISA_ENV = "SEQJAX_CPU_ISA"
_lock = threading.Lock()
_loaded: dict[str, object] = {}
_dlopen_count = itertools.count(1)  # loads in this process (each needs a name of its own)


class KernelUnavailableError(RuntimeError):
    """The CPU kernels cannot be built or loaded (no C++ compiler, a failed build, an ISA this CPU
    lacks, an unusable cache); the message says why."""


# ---- instruction set ---------------------------------------------------------------------------
def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "x86-64")


def supported_isas() -> list[str]:
    """The variants this CPU can run, best first; ``"portable"`` always.

    >>> supported_isas()[-1]
    'portable'
    """
    flags = _cpu_flags() if _is_x86() else set()
    return [
        name for name, (_, needs) in ISA_VARIANTS.items() if all(flag in flags for flag in needs)
    ]


def selected_isa() -> str:
    """The variant to build: ``$SEQJAX_CPU_ISA`` if set (checked), else the best one the CPU runs.

    >>> selected_isa() in ("avx512", "avx2", "portable")
    True
    """
    forced = os.environ.get(ISA_ENV, "").strip().lower()
    available = supported_isas()
    if not forced:
        return available[0]
    if forced not in ISA_VARIANTS:
        raise KernelUnavailableError(
            f"${ISA_ENV}={forced!r} is not a seqjax CPU kernel variant; valid values: "
            f"{', '.join(ISA_VARIANTS)} (this CPU runs: {', '.join(available)})."
        )
    if forced not in available:
        raise KernelUnavailableError(
            f"${ISA_ENV}={forced!r}: this CPU ({platform.machine()}) lacks "
            f"{', '.join(f for f in ISA_VARIANTS[forced][1] if f not in _cpu_flags())}; "
            f"valid values here: {', '.join(available)}."
        )
    return forced


def faster_than_the_scan() -> bool:
    """Whether the selected variant was measured faster than the scan (for ``implementation="auto"``).

    True for ``avx512`` and ``avx2`` (benchmarks/README.md); False for ``portable``: on x86-64 it
    is SSE2 without FMA and measured 1.2–2× slower than the scan, and on other CPUs (aarch64) it has
    not been measured. Raises :class:`KernelUnavailableError` like :func:`selected_isa`.

    >>> faster_than_the_scan() == (selected_isa() != "portable")
    True
    """
    return selected_isa() != "portable"


# ---- compiler and cache key --------------------------------------------------------------------
def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def cache_dir() -> Path:
    root = os.environ.get("SEQJAX_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seqjax"


def _flags(isa: str) -> tuple[str, ...]:
    return _BASE_FLAGS + ISA_VARIANTS[isa][0]


def _library_name(cxx: str, isa: str) -> str:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    parts = (SOURCE.read_text(), version, " ".join(_flags(isa)), isa, jax.__version__)
    key = hashlib.sha256(b"\0".join(s.encode() for s in parts)).hexdigest()[:16]
    return f"recurrence_cpu-{isa}-{key}.so"


# ---- who may write a path ----------------------------------------------------------------------
def _trusted_owner(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def _file_problem(st: os.stat_result) -> str | None:
    """Why a library file with this ``stat`` must not be loaded (None: it may)."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if not _trusted_owner(st.st_uid):
        return f"owned by another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _folder_problem(folder: Path) -> str | None:
    """Why native code in ``folder`` could be replaced by another user (None: it cannot).

    The folder itself must be owned by us or root and writable by nobody else; each parent must be
    owned by us or root and, if writable by group or others, sticky (as ``/tmp`` is).
    """
    real = Path(os.path.realpath(folder))
    for i, path in enumerate([real, *real.parents]):
        try:
            st = os.stat(path)
        except OSError as exc:
            return f"cannot check {path} ({exc})"
        if not _trusted_owner(st.st_uid):
            return f"{path} is owned by another user (uid {st.st_uid})"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and (i == 0 or not st.st_mode & stat.S_ISVTX):
            return f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o}" + (
                ")" if i == 0 else ", no sticky bit)"
            )
    return None


def _make_cache_dir(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KernelUnavailableError(
            f"cannot write the seqjax kernel cache {folder} ({exc}); set $SEQJAX_CACHE_DIR "
            "to a writable folder."
        ) from exc


@contextlib.contextmanager
def _build_lock(folder: Path):
    """An exclusive ``flock`` on ``folder/.lock`` (no-op where ``fcntl`` does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; builds stay atomic (os.replace)
        yield
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _compile(cxx: str, isa: str, target: Path) -> None:
    """Compiles into a fresh private folder next to ``target``, then renames onto ``target``."""
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        out = work / target.name
        cmd = [cxx, *_flags(isa), f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise KernelUnavailableError(
                f"building the seqjax CPU kernels failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}"
            )
        os.chmod(out, 0o644)  # the linker's mode follows the umask: never group/world-writable
        os.replace(out, target)  # atomic
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open_checked(path: Path) -> int | None:
    """A read-only descriptor of ``path`` if it is a library we may load, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    if _file_problem(os.fstat(fd)) is not None:
        os.close(fd)
        return None
    return fd


def _build_cached(cxx: str, isa: str) -> tuple[Path, int]:
    """Builds into the (safe) cache if needed: ``(path, checked open descriptor)``."""
    folder = cache_dir()
    _make_cache_dir(folder)
    problem = _folder_problem(folder)
    if problem is not None:
        raise _UnsafeCache(problem)
    target = folder / _library_name(cxx, isa)
    with _build_lock(folder):
        fd = _open_checked(target)
        if fd is None:  # absent, or failed its check: (re)build over it (the folder is ours)
            _compile(cxx, isa, target)
            fd = _open_checked(target)
            if fd is None:
                raise KernelUnavailableError(f"the freshly built {target} failed its safety check")
    return target, fd


class _UnsafeCache(Exception):
    pass


def _need_compiler() -> str:
    cxx = _compiler()
    if cxx is None:
        raise KernelUnavailableError(
            "seqjax CPU kernels need a C++ compiler (set $CXX, or install g++/clang++); "
            "use implementation='scan' instead."
        )
    return cxx


def build() -> Path:
    """Compiles the kernels (for :func:`selected_isa`) if the cache has no safe build yet; returns
    the library's path. Raises :class:`KernelUnavailableError` if that is not possible, including
    when the cache folder could be written by another user."""
    cxx = _need_compiler()
    try:
        path, fd = _build_cached(cxx, selected_isa())
    except _UnsafeCache as exc:
        raise KernelUnavailableError(
            f"the seqjax kernel cache {cache_dir()} is unsafe: {exc}; set $SEQJAX_CACHE_DIR to a "
            "folder only you can write."
        ) from None
    if fd is not None:
        os.close(fd)
    return path


def _dlopen(fd: int) -> ctypes.CDLL:
    """Loads the library open on ``fd`` (checked by the caller) without reopening it by name."""
    # glibc returns an already loaded object whose name matches the string passed, and descriptor
    # numbers are reused: a name no earlier load in this process used ("/proc/self/./fd/N", ...).
    opens = next(_dlopen_count)
    proc_fd = "/proc/self/" + "./" * opens + f"fd/{fd}"
    if sys.platform.startswith("linux") and os.path.exists(proc_fd):
        return ctypes.CDLL(proc_fd)
    private = tempfile.mkdtemp(prefix="seqjax-kernel-")
    try:
        copy = os.path.join(private, "recurrence_cpu.so")
        with os.fdopen(os.dup(fd), "rb") as src, open(copy, "wb") as dst:
            src.seek(0)
            shutil.copyfileobj(src, dst)
        return ctypes.CDLL(copy)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _load_library() -> ctypes.CDLL:
    cxx = _need_compiler()
    isa = selected_isa()
    try:
        _, fd = _build_cached(cxx, isa)
    except _UnsafeCache as exc:
        warnings.warn(
            f"seqjax: not using the kernel cache {cache_dir()} ({exc}); building in a private "
            "temporary folder for this process instead. Set $SEQJAX_CACHE_DIR to a folder only "
            "you can write to keep the build.",
            RuntimeWarning,
            stacklevel=3,
        )
        private = Path(tempfile.mkdtemp(prefix="seqjax-kernel-"))
        try:
            target = private / _library_name(cxx, isa)
            _compile(cxx, isa, target)
            private_fd = _open_checked(target)
            if private_fd is None:
                raise KernelUnavailableError(f"the freshly built {target} failed its safety check")
            try:
                return _dlopen(private_fd)
            finally:
                os.close(private_fd)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    try:
        return _dlopen(fd)
    finally:
        os.close(fd)


def load() -> None:
    """Builds (once per machine) and registers the kernels with XLA (once per process).

    Raises :class:`KernelUnavailableError` (with the reason) when they cannot be built or loaded.
    """
    with _lock:
        if "lib" in _loaded:
            return
        lib = _load_library()
        lib.SeqjaxIsa.restype = ctypes.c_char_p
        for name in _TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
        _loaded["lib"] = lib
        _loaded["isa"] = lib.SeqjaxIsa().decode()


def loaded_isa() -> str | None:
    """The variant of the library this process registered (None before :func:`load`).

    >>> loaded_isa() in (None, "avx512", "avx2", "portable")
    True
    """
    isa = _loaded.get("isa")
    return isa if isinstance(isa, str) else None

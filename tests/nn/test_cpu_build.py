"""Building and loading the CPU kernels (seqjax/nn/engines/cpu_build.py): ISA variants, the cache,
and the rule that native code is never loaded from a place another user can write.

Most tests build a tiny stand-in source (a constructor that appends to a marker file) instead of
the real kernels, so they take a second; the per-ISA tests build the real kernels (once per
machine, in $SEQJAX_CACHE_DIR) and run them in a subprocess per variant, because a process loads
the library once. These tests need a C++ compiler (CI's machine has g++); they do not skip without.
"""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import pytest

from seqjax.nn.engines import cpu_build

ROOT = Path(__file__).resolve().parents[2]

STAND_IN = """
#include <cstdio>
#include <cstdlib>
__attribute__((constructor)) static void seqjax_test_mark() {
  if (const char* p = std::getenv("SEQJAX_TEST_MARKER")) {
    if (FILE* f = std::fopen(p, "a")) { std::fputs("%s\\n", f); std::fclose(f); }
  }
}
extern "C" const char* SeqjaxIsa() { return "%s"; }
"""


def _source(folder: Path, tag: str) -> Path:
    path = folder / f"{tag}.cc"
    path.write_text(STAND_IN % (tag, tag))
    return path


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The build uses a stand-in source whose constructor writes "built" to a marker file; the
    cache is a fresh 0700 folder; temporary folders go under tmp_path/tmp."""
    monkeypatch.setattr(cpu_build, "SOURCE", _source(tmp_path, "built"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEQJAX_CACHE_DIR", str(cache))
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv("SEQJAX_TEST_MARKER", str(marker))
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return cache, marker, tmp


def _plant(tmp_path: Path, where: Path, mode: int = 0o644, uid: int | None = None) -> None:
    """A shared object at ``where`` whose constructor writes "planted" to the marker file."""
    src = _source(tmp_path, "planted")
    where.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["c++", "-shared", "-fPIC", str(src), "-o", str(where)], check=True)
    os.chmod(where, mode)
    if uid is not None:
        os.chown(where, uid, -1)


def _target() -> Path:
    cxx = cpu_build._compiler()
    return cpu_build.cache_dir() / cpu_build._library_name(cxx, cpu_build.selected_isa())


def _marks(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def _needs_root():
    if os.getuid() != 0:
        pytest.skip("chown to another user needs root (these tests run as root in CI)")


# ---- the cache ---------------------------------------------------------------------------------


def test_build_is_cached_per_machine(stand_in):
    cache, _, _ = stand_in
    first = cpu_build.build()
    assert first.parent == cache and first.exists()
    assert f"-{cpu_build.selected_isa()}-" in first.name
    stamp = first.stat().st_mtime_ns
    assert cpu_build.build() == first and first.stat().st_mtime_ns == stamp


def test_cache_folder_is_created_private(stand_in, monkeypatch):
    cache, _, _ = stand_in
    nested = cache / "a" / "b"
    monkeypatch.setenv("SEQJAX_CACHE_DIR", str(nested))
    library = cpu_build.build()
    assert stat.S_IMODE(nested.stat().st_mode) == 0o700
    assert not stat.S_IMODE(library.stat().st_mode) & 0o022


def test_compiler_errors_are_reported_and_leave_no_files(stand_in, tmp_path, monkeypatch):
    cache, _, tmp = stand_in
    broken = tmp_path / "broken.cc"
    broken.write_text("this is not C++\n")
    monkeypatch.setattr(cpu_build, "SOURCE", broken)
    with pytest.raises(cpu_build.KernelUnavailableError, match="broken.cc"):
        cpu_build.build()
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]  # no library, no temp folder
    assert not list(tmp.iterdir())


def test_no_temp_files_when_the_compiler_is_interrupted(stand_in, monkeypatch):
    cache, _, _ = stand_in

    def interrupted(*args, **kwargs):
        if "--version" in args[0]:
            return subprocess.CompletedProcess(args[0], 0, "c++ 1.0", "")
        Path(args[0][-1]).write_bytes(b"half a library")  # the output the compiler had begun
        raise KeyboardInterrupt

    monkeypatch.setattr(cpu_build.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cpu_build.build()
    assert sorted(p.name for p in cache.iterdir()) == [".lock"]


def test_unwritable_cache_is_reported(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("SEQJAX_CACHE_DIR", str(blocker / "cache"))  # a folder under a file
    with pytest.raises(cpu_build.KernelUnavailableError, match="SEQJAX_CACHE_DIR"):
        cpu_build.build()


def test_no_compiler_is_reported(monkeypatch):
    monkeypatch.setattr(cpu_build, "_compiler", lambda: None)
    with pytest.raises(cpu_build.KernelUnavailableError, match="C\\+\\+ compiler"):
        cpu_build.build()


def test_concurrent_builds_compile_once(stand_in, tmp_path):
    cache, _, _ = stand_in
    count = tmp_path / "compiles.txt"
    wrapper = tmp_path / "cxx"
    real = shutil.which("c++")
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *" -o "*) echo x >> ' + str(count) + "; sleep 1;; esac\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    script = textwrap.dedent(
        """
        import pathlib, sys
        from seqjax.nn.engines import cpu_build
        cpu_build.SOURCE = pathlib.Path(sys.argv[1])
        print(cpu_build.build())
        """
    )
    env = {**os.environ, "CXX": str(wrapper), "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(cpu_build.SOURCE)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[0][0] == outs[1][0]  # the same library
    assert count.read_text().split() == ["x"]  # compiled once


# ---- nothing is loaded from where another user can write ---------------------------------------


def test_good_cache_is_loaded(stand_in):
    _, marker, _ = stand_in
    lib = cpu_build._load_library()
    assert lib.SeqjaxIsa is not None and _marks(marker) == ["built"]


@pytest.mark.parametrize("mode", [0o666, 0o664], ids=["world-writable", "group-writable"])
def test_writable_cached_library_is_rebuilt_not_loaded(stand_in, tmp_path, mode):
    cache, marker, _ = stand_in
    target = _target()
    _plant(tmp_path, target, mode=mode)
    cpu_build._load_library()
    assert _marks(marker) == ["built"]  # the planted constructor never ran
    assert not stat.S_IMODE(target.stat().st_mode) & 0o022  # rebuilt over it


def test_cached_library_of_another_user_is_rebuilt_not_loaded(stand_in, tmp_path):
    _needs_root()
    _, marker, _ = stand_in
    target = _target()
    _plant(tmp_path, target, uid=65534)
    cpu_build._load_library()
    assert _marks(marker) == ["built"]
    assert target.stat().st_uid == os.getuid()


def test_symlinked_cached_library_is_not_followed(stand_in, tmp_path):
    _, marker, _ = stand_in
    elsewhere = tmp_path / "elsewhere.so"
    _plant(tmp_path, elsewhere)
    target = _target()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.symlink_to(elsewhere)
    cpu_build._load_library()
    assert _marks(marker) == ["built"] and not target.is_symlink()


def _unsafe_folder_case(stand_in, tmp_path, make_unsafe):
    cache, marker, tmp = stand_in
    target = _target()
    _plant(tmp_path, target)
    make_unsafe(cache)
    with pytest.warns(RuntimeWarning, match="private temporary folder"):
        cpu_build._load_library()
    assert _marks(marker) == ["built"]  # built and loaded privately; the planted one never ran
    assert not list(tmp.iterdir())  # the private folder is gone
    with pytest.raises(cpu_build.KernelUnavailableError, match="unsafe"):
        cpu_build.build()


def test_group_writable_cache_folder_is_not_used(stand_in, tmp_path):
    _unsafe_folder_case(stand_in, tmp_path, lambda cache: cache.chmod(0o770))


def test_cache_folder_of_another_user_is_not_used(stand_in, tmp_path):
    _needs_root()
    _unsafe_folder_case(stand_in, tmp_path, lambda cache: os.chown(cache, 65534, -1))


def test_world_writable_parent_without_sticky_bit_is_not_used(stand_in, tmp_path):
    _unsafe_folder_case(stand_in, tmp_path, lambda cache: cache.parent.chmod(0o777))


def test_sticky_world_writable_parent_is_fine(stand_in, tmp_path, monkeypatch):
    cache, marker, _ = stand_in
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o1777)  # like /tmp
    monkeypatch.setenv("SEQJAX_CACHE_DIR", str(parent / "mine"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cpu_build._load_library()
    assert _marks(marker) == ["built"]
    assert cpu_build._folder_problem(parent / "mine") is None
    assert "writable" in cpu_build._folder_problem(parent)  # the shared folder itself: not a cache


# ---- instruction-set variants ------------------------------------------------------------------

AVX512_FLAGS = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma", "sse2"}


@pytest.mark.parametrize(
    "flags, expected",
    [
        (AVX512_FLAGS, ["avx512", "avx2", "portable"]),
        ({"avx2", "fma", "sse2"}, ["avx2", "portable"]),
        ({"avx2", "sse2"}, ["portable"]),  # AVX2 without FMA
        (set(), ["portable"]),
    ],
)
def test_variants_follow_the_cpu_flags(flags, expected, monkeypatch):
    monkeypatch.setattr(cpu_build, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(cpu_build, "_is_x86", lambda: True)
    monkeypatch.delenv(cpu_build.ISA_ENV, raising=False)
    assert cpu_build.supported_isas() == expected
    assert cpu_build.selected_isa() == expected[0]


def test_non_x86_machines_get_the_portable_variant(monkeypatch):
    monkeypatch.setattr(cpu_build, "_cpu_flags", lambda: {"fp", "asimd", "avx2"})
    monkeypatch.setattr(cpu_build, "_is_x86", lambda: False)
    monkeypatch.delenv(cpu_build.ISA_ENV, raising=False)
    assert cpu_build.selected_isa() == "portable"


def test_unknown_forced_variant_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv(cpu_build.ISA_ENV, "sse9")
    with pytest.raises(
        cpu_build.KernelUnavailableError, match="sse9.*valid values: avx512, avx2, portable"
    ):
        cpu_build.selected_isa()


def test_forced_variant_the_cpu_lacks_raises(monkeypatch):
    monkeypatch.setattr(cpu_build, "_cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setattr(cpu_build, "_is_x86", lambda: True)
    monkeypatch.setenv(cpu_build.ISA_ENV, "avx512")
    with pytest.raises(cpu_build.KernelUnavailableError, match="lacks avx512f.*avx2, portable"):
        cpu_build.selected_isa()
    monkeypatch.setenv(cpu_build.ISA_ENV, "AVX2")  # case-insensitive
    assert cpu_build.selected_isa() == "avx2"


@pytest.mark.parametrize(
    "flags, forced, expected",
    [
        (AVX512_FLAGS, "", True),
        ({"avx2", "fma"}, "", True),
        ({"sse2"}, "", False),  # x86-64 without AVX2: the portable variant, slower than the scan
        (AVX512_FLAGS, "portable", False),
    ],
)
def test_only_measured_variants_count_as_faster_than_the_scan(flags, forced, expected, monkeypatch):
    monkeypatch.setattr(cpu_build, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(cpu_build, "_is_x86", lambda: True)
    monkeypatch.setenv(cpu_build.ISA_ENV, forced)
    assert cpu_build.faster_than_the_scan() is expected


def test_the_cache_key_holds_the_variant():
    cxx = cpu_build._compiler()
    names = {isa: cpu_build._library_name(cxx, isa) for isa in cpu_build.ISA_VARIANTS}
    assert len(set(names.values())) == 3
    assert all(f"-{isa}-" in name for isa, name in names.items())


KERNEL_VS_SCAN = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from seqjax.nn import GRU, LSTM, SimpleRNN
    from seqjax.nn.engines import cpu_build

    worst = 0.0
    rng = np.random.default_rng(0)
    # H=40: one full AVX-512 panel (16), partial panels and a scalar tail in every variant;
    # B=7 exercises the 6-row block and the remainder rows. H=72, B=420: the threaded path.
    for (b, t, f, h) in [(7, 5, 3, 40), (420, 3, 3, 72)]:
        x = jnp.asarray(rng.standard_normal((b, t, f)), jnp.float32)
        lengths = jnp.asarray(rng.integers(0, t + 1, size=b), jnp.int32)
        for cls in (LSTM, GRU, SimpleRNN):
            kernel, scan = cls(h, implementation="cpu_kernel"), cls(h, implementation="scan")
            variables = scan.init(jax.random.key(0), x)

            def loss(layer):
                def f(v, x):
                    carry, ys = layer.apply(v, x, seq_lengths=lengths)
                    w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
                    return jnp.sum(ys * w) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))
                return jax.jit(jax.value_and_grad(f, argnums=(0, 1)))

            got, want = loss(kernel)(variables, x), loss(scan)(variables, x)
            for a, e in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                scale = 1.0 + float(jnp.max(jnp.abs(e)))
                worst = max(worst, float(jnp.max(jnp.abs(a - e))) / scale)
    print(cpu_build.loaded_isa(), worst)
    """
)


@pytest.mark.parametrize("isa", list(cpu_build.ISA_VARIANTS))
def test_every_variant_this_cpu_runs_matches_the_scan(isa):
    if isa not in cpu_build.supported_isas():
        pytest.skip(f"this CPU cannot run the {isa} variant (flags: {cpu_build.supported_isas()})")
    env = {**os.environ, cpu_build.ISA_ENV: isa, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", KERNEL_VS_SCAN], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded, worst = proc.stdout.split()[-2:]
    assert loaded == isa  # the library built as the forced variant is the one that ran
    assert float(worst) < 1e-5

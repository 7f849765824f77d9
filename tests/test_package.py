"""The package: `import seqjax` is light; the built sdist and wheel hold what they must."""

import os
import pathlib
import subprocess
import sys
import tarfile
import textwrap
import zipfile


def test_import_needs_no_heavy_frameworks():
    code = textwrap.dedent(
        """
        import sys
        import seqjax, seqjax.nn, seqjax.data, seqjax.train
        heavy = [m for m in ("tensorflow", "keras", "torch") if m in sys.modules]
        assert not heavy, heavy
        assert seqjax.nn.LSTM is not None
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_example_runs():
    import jax
    import jax.numpy as jnp

    import seqjax

    x = jnp.ones((8, 100, 3))
    layer = seqjax.nn.LSTM(features=64)
    variables = layer.init(jax.random.key(0), x)
    carry, ys = layer.apply(variables, x)
    carry, ys = layer.apply(variables, x, initial_carry=carry)
    lengths = jnp.array([100, 50, 3, 100, 1, 0, 80, 99])
    carry, ys = layer.apply(variables, x, seq_lengths=lengths)
    assert ys.shape == (8, 100, 64)
    assert carry.cell.shape == carry.hidden.shape == (8, 64)


# ---- the built sdist and wheel ---------------------------------------------------------------
# Built as a user's `pip install .` would (an isolated build environment), then checked: metadata
# (twine), contents, and an install into fresh virtual environments outside the repository.

ROOT = pathlib.Path(__file__).resolve().parents[1]


def build_dists(out: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, f"python -m build failed:\n{build.stdout[-4000:]}{build.stderr}"
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def _source_files(folder: str) -> set[str]:
    """The files git tracks under ``folder`` (the repository's own, not build leftovers)."""
    listed = subprocess.run(
        ["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


def _check_twine_check_passes(dists):
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dists)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _check_wheel_holds_seqjax_only(dists):
    import seqjax

    wheel, _ = dists
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = f"seqjax-{seqjax.__version__}.dist-info"
        metadata = archive.read(f"{dist_info}/METADATA").decode()
        top_level = archive.read(f"{dist_info}/top_level.txt").decode().split()
    assert top_level == ["seqjax"]
    outside = sorted(n for n in names if not n.startswith(("seqjax/", f"{dist_info}/")))
    assert not outside, f"the wheel installs files outside seqjax/: {outside}"
    for folder in ("tests/", "benchmarks/", "experiments/", "docs/"):
        assert not any(folder in n for n in names), folder
    # Every Python module and the C++ source of the CPU engine, as tracked in the repository.
    sources = {f for f in _source_files("seqjax") if f.endswith((".py", ".cc", ".h", "py.typed"))}
    assert "seqjax/nn/csrc/recurrence_cpu.cc" in sources
    assert sources <= names, f"missing from the wheel: {sorted(sources - names)}"
    assert "seqjax/py.typed" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert f"Version: {seqjax.__version__}" in metadata.splitlines()
    assert "Apache-2.0" in metadata and "License-File: LICENSE" in metadata


def _check_sdist_holds_the_license_and_the_kernel_source(dists):
    _, sdist = dists
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in ("LICENSE", "README.md", "setup.cfg", "pyproject.toml"):
        assert needed in names, needed
    assert "seqjax/nn/csrc/recurrence_cpu.cc" in names
    assert "seqjax/py.typed" in names


def _venv(path: pathlib.Path, wheel: pathlib.Path, *, system_site_packages: bool) -> pathlib.Path:
    args = [sys.executable, "-m", "venv", "--without-pip", str(path)]
    if system_site_packages:
        args.insert(3, "--system-site-packages")
    subprocess.run(args, check=True)
    python = path / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    subprocess.run([*install, "--no-deps", "--no-index", str(wheel)], check=True)
    return python


def _run_outside(python: pathlib.Path, code: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True
    )


def _check_wheel_installs_seqjax_and_not_experiments(dists, tmp_path):
    wheel, _ = dists
    python = _venv(tmp_path / "bare", wheel, system_site_packages=False)
    elsewhere = tmp_path / "elsewhere"  # not the repository: its folders are not on the path
    elsewhere.mkdir()
    check = _run_outside(
        python,
        f"""
        import importlib.util, pathlib, sys
        import seqjax
        assert pathlib.Path(seqjax.__file__).is_relative_to({str(tmp_path / "bare")!r}), seqjax.__file__
        assert seqjax.__version__ == {__import__("seqjax").__version__!r}
        try:
            import experiments
        except ModuleNotFoundError:
            pass
        else:
            sys.exit(f"experiments is importable from the wheel: {{experiments.__file__}}")
        assert importlib.util.find_spec("benchmarks") is None
        """,
        elsewhere,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _check_installed_wheel_runs_a_layer_and_ships_the_kernel_source(dists, tmp_path):
    # With the system's jax/flax (--system-site-packages), the installed seqjax must work.
    wheel, _ = dists
    venv = tmp_path / "with-deps"
    python = _venv(venv, wheel, system_site_packages=True)
    check = _run_outside(
        python,
        f"""
        import pathlib
        import jax, jax.numpy as jnp
        import seqjax.nn
        here = pathlib.Path(seqjax.nn.__file__).parent
        assert here.is_relative_to({str(venv)!r}), here
        assert (here / "csrc" / "recurrence_cpu.cc").is_file()
        assert (here.parent / "py.typed").is_file()
        layer = seqjax.nn.LSTM(3)
        x = jnp.ones((2, 4, 1))
        carry, ys = layer.apply(layer.init(jax.random.key(0), x), x)
        assert ys.shape == (2, 4, 3), ys.shape
        """,
        tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_sdist_and_wheel_build_check_and_install(tmp_path):
    # One build (an isolated `python -m build`), then every check: under `pytest -n 2` they stay
    # in this one test, so the distributions are not built once per worker.
    dists = build_dists(tmp_path / "dist")
    _check_twine_check_passes(dists)
    _check_wheel_holds_seqjax_only(dists)
    _check_sdist_holds_the_license_and_the_kernel_source(dists)
    _check_wheel_installs_seqjax_and_not_experiments(dists, tmp_path)
    _check_installed_wheel_runs_a_layer_and_ships_the_kernel_source(dists, tmp_path)

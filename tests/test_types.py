"""The shipped annotations are true: mypy is clean over seqjax/ (configuration in pyproject.toml).

seqjax ships ``py.typed``, so its users' type checkers read these annotations. Libraries without
type information are named one by one in pyproject.toml (``ignore_missing_imports``); nothing in
seqjax itself is excluded.
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_is_clean_over_seqjax():
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert run.returncode == 0 and not errors, "mypy found:\n" + run.stdout + run.stderr


def test_mypy_checks_all_of_seqjax():
    config = (ROOT / "pyproject.toml").read_text()
    assert 'files = ["seqjax"]' in config
    assert "ignore_errors" not in config  # no module is let off
    assert (ROOT / "seqjax" / "py.typed").is_file()

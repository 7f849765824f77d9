"""The docstring examples run, and every public layer, loss, data function and trainer entry point
has one.

Every ``>>>`` example in seqjax's docstrings runs here (doctest, one test per module, nothing
skipped), so a documented call cannot drift from the code. The examples use tiny shapes: the whole
run takes seconds.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import importlib.util
import inspect
import io
import pathlib
from typing import Protocol

import flax.linen as nn
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted((ROOT / "seqjax").rglob("*.py")):
        if ">>>" in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def test_there_are_examples_to_run():
    assert len(MODULES) >= 10, MODULES


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    tests = [t for t in doctest.DocTestFinder().find(module, module_name) if t.examples]
    assert tests, f"{module_name} has '>>>' in its source but no docstring example was found"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, report.getvalue()


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, tuple) and hasattr(obj, "_fields")


def required_names() -> list[str]:
    """The public names that must show a runnable example, as ``module.name``."""
    import seqjax.data
    import seqjax.nn
    import seqjax.train

    names = []
    # Every layer (a Flax module) of seqjax.nn, but the abstract base of the recurrent ones.
    for name in seqjax.nn.__all__:
        obj = getattr(seqjax.nn, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, nn.Module)
            and obj is not seqjax.nn.RecurrentLayer
        ):
            names.append(f"seqjax.nn.{name}")
    # Every loss of seqjax.train.
    names += [
        f"seqjax.train.{name}"
        for name in seqjax.train.__all__
        if getattr(getattr(seqjax.train, name), "__module__", "") == "seqjax.train.losses"
    ]
    # Every data function and class (not the protocol, warning or result records they return).
    for name in seqjax.data.__all__:
        obj = getattr(seqjax.data, name)
        if inspect.isfunction(obj) or (
            isinstance(obj, type)
            and not issubclass(obj, Warning)
            and not _is_namedtuple(obj)
            and not dataclasses.is_dataclass(obj)
            and Protocol not in obj.__mro__
        ):
            names.append(f"seqjax.data.{name}")
    # The trainer's entry points.
    names += [
        f"seqjax.train.{name}"
        for name in ("fit", "train_step", "eval_step", "predict_step", "SequenceModel")
    ]
    # The diagnostics.
    names += ["seqjax.diagnostics.jacobian_norms", "seqjax.diagnostics.loss_gradient_norms"]
    names += ["seqjax.diagnostics.model_gradient_norms"]
    if importlib.util.find_spec("seqjax.export") is not None:
        names.append("seqjax.export.export_step")
    return names


def _has_example(qualified: str) -> bool:
    module_name, name = qualified.rsplit(".", 1)
    obj = getattr(importlib.import_module(module_name), name)
    return ">>>" in (inspect.getdoc(obj) or "")


def test_every_required_name_has_an_example():
    names = required_names()
    assert "seqjax.nn.LSTM" in names and "seqjax.data.windows" in names
    assert "seqjax.train.mse" in names and "seqjax.train.fit" in names
    missing = [name for name in names if not _has_example(name)]
    assert not missing, f"public names without a '>>>' docstring example: {missing}"

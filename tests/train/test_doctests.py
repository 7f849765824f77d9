"""The ``>>>`` examples of the trainer's entry points, the transfer partition functions, the
padded layouts and the containers' carries run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "seqjax.train.batches",
    "seqjax.train.carry",
    "seqjax.train.loop",
    "seqjax.train.models",
    "seqjax.train.state",
    "seqjax.train.steps",
    "seqjax.transfer",
    "seqjax.transfer.partition",
    "seqjax.data.examples",
    "seqjax.data.stateful",
    "seqjax.nn.bidirectional",
    "seqjax.nn.stack",
    "seqjax.models.classifier_head",
    "seqjax.models.mobilenet_v2",
    "experiments.configs",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_digits_docstring_examples():
    pytest.importorskip("sklearn")
    module = importlib.import_module("seqjax.data.digits")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0

"""``with_scan``: a copy of a Flax module whose recurrent layers all run the ``lax.scan``.

An exported artifact must not contain custom calls of seqjax's own compiled kernels (a process
without seqjax cannot load them, and they are not among ``jax.export``'s stable custom calls), so
:func:`seqjax.export.export_step` exports ``with_scan(model)``: the same function, the same
parameters (``implementation`` changes no parameter), only the loop's engine differs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn

_SKIPPED_FIELDS = ("parent", "name")


def _convert(value: Any) -> Any:
    if isinstance(value, nn.Module):
        return with_scan(value)
    if isinstance(value, tuple | list):
        converted = [_convert(v) for v in value]
        if all(new is old for new, old in zip(converted, value, strict=True)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
            return type(value)(*converted)
        return type(value)(converted)
    if isinstance(value, dict):
        converted_items = {k: _convert(v) for k, v in value.items()}
        if all(converted_items[k] is value[k] for k in value):
            return value
        return type(value)(converted_items)
    return value


def with_scan(module: nn.Module) -> nn.Module:
    """``module`` with ``implementation="scan"`` on itself and every nested recurrent layer.

    Walks the module's dataclass fields recursively (submodules, and tuples, lists and dicts of
    them, e.g. ``StackedRNN.layers`` or ``Bidirectional.layer``) and clones every module that has
    an ``implementation`` field with ``implementation="scan"``. The module is not modified; one
    that needs no change is returned as it is. Works on unbound modules.

    >>> from seqjax.nn import LSTM, GRU, StackedRNN
    >>> from seqjax.train import SequenceModel
    >>> model = SequenceModel(StackedRNN([LSTM(4, implementation="cpu_kernel"), GRU(3)]), 1)
    >>> [layer.implementation for layer in with_scan(model).recurrent.layers]
    ['scan', 'scan']
    >>> model.recurrent.layers[0].implementation  # the original is unchanged
    'cpu_kernel'
    """
    changes = {}
    for field in dataclasses.fields(module):
        if field.name in _SKIPPED_FIELDS or not field.init:
            continue
        value = getattr(module, field.name)
        new = _convert(value)
        if new is not value:
            changes[field.name] = new
    if getattr(module, "implementation", "scan") != "scan":
        changes["implementation"] = "scan"
    return module.clone(**changes) if changes else module

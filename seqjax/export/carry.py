"""The carry as plain containers (dicts, tuples, lists of arrays) for an exported signature.

A NamedTuple such as ``LSTMCarry`` in a ``jax.export`` signature must be registered for
serialization in the loading process too, which a process without seqjax cannot do. The exported
step therefore takes and returns the carry with every NamedTuple replaced by a dict of its fields
(``LSTMCarry(cell, hidden)`` -> ``{"cell": [B, H], "hidden": [B, H]}``); tuples (one entry per
layer of a ``StackedRNN``), lists and dicts stay as they are.
"""

from __future__ import annotations

from typing import Any


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def to_plain(carry: Any) -> Any:
    """``carry`` with every NamedTuple replaced by a dict of its fields (arrays untouched).

    >>> import numpy as np
    >>> from seqjax.nn import LSTMCarry
    >>> plain = to_plain((LSTMCarry(np.zeros((2, 3)), np.ones((2, 3))), np.zeros((2, 4))))
    >>> type(plain[0]).__name__, sorted(plain[0]), plain[1].shape
    ('dict', ['cell', 'hidden'], (2, 4))
    """
    if _is_namedtuple(carry):
        return {name: to_plain(value) for name, value in zip(carry._fields, carry, strict=True)}
    if isinstance(carry, tuple | list):
        return type(carry)(to_plain(value) for value in carry)
    if isinstance(carry, dict):
        return {key: to_plain(value) for key, value in carry.items()}
    return carry


def from_plain(template: Any, plain: Any) -> Any:
    """The inverse of :func:`to_plain`: rebuilds ``plain`` in the structure of ``template``.

    >>> import numpy as np
    >>> from seqjax.nn import LSTMCarry
    >>> template = LSTMCarry(np.zeros((2, 3)), np.zeros((2, 3)))
    >>> from_plain(template, {"cell": np.ones((2, 3)), "hidden": np.zeros((2, 3))}).cell[0, 0]
    np.float64(1.0)
    """
    if _is_namedtuple(template):
        return type(template)(
            *(
                from_plain(value, plain[name])
                for name, value in zip(template._fields, template, strict=True)
            )
        )
    if isinstance(template, tuple | list):
        return type(template)(from_plain(t, p) for t, p in zip(template, plain, strict=True))
    if isinstance(template, dict):
        return {key: from_plain(value, plain[key]) for key, value in template.items()}
    return plain

"""Experiment configs: ``get_config(arg)`` per file; ``arg`` is parsed by :func:`parse_arg`.

``parse_arg`` follows big_vision's ``configs.common.parse_arg``: the words after the colon of
``--config=experiments/configs/<name>.py:<arg>`` are comma-separated ``key`` or ``key=value``
items, each declared with its default; a word that is not declared raises, naming the valid ones
(a typo such as ``:tnyi`` must not silently run the full job).
"""

from __future__ import annotations

from typing import Any

import ml_collections

_TRUE = ("", "1", "true", "yes")
_FALSE = ("0", "false", "no")


def _convert(key: str, value: str, default: Any) -> Any:
    if isinstance(default, bool):
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(
            f"config variant {key!r} is a flag: give {key} or {key}=0/1, not {value!r}"
        )
    if value == "":
        raise ValueError(f"config variant {key!r} needs a value: {key}=<{type(default).__name__}>")
    try:
        return type(default)(value)
    except ValueError:
        raise ValueError(
            f"config variant {key}={value!r}: expected a {type(default).__name__}"
        ) from None


def parse_arg(arg: str | None, **spec: Any) -> ml_collections.ConfigDict:
    """The variant words of ``arg`` over the declared defaults ``spec``.

    >>> words = parse_arg("tiny,T=500", tiny=False, init=False, T=100)
    >>> words.tiny, words.init, words.T
    (True, False, 500)
    >>> parse_arg("tnyi", tiny=False, init=False)
    Traceback (most recent call last):
    ValueError: unknown config variant 'tnyi'; valid: init, tiny

    Args:
      arg: ``"word,key=value,..."`` (None or ``""``: all defaults).
      spec: every valid key with its default; the default's type (bool, int, float, str) types
        the value (a bool key given alone is True).

    Raises:
      ValueError: a key not in ``spec`` (naming the valid ones), a repeated key, or a value of
        the wrong type.
    """
    values = dict(spec)
    seen = set()
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in spec:
            raise ValueError(f"unknown config variant {key!r}; valid: {', '.join(sorted(spec))}")
        if key in seen:
            raise ValueError(f"config variant {key!r} given twice in {arg!r}")
        seen.add(key)
        values[key] = _convert(key, value.strip(), spec[key])
    return ml_collections.ConfigDict(values)

"""Labels and boolean masks for parameter pytrees, chosen by the parameters' paths.

A leaf's path is its keys joined with ``/``, e.g. ``"backbone/block_16_project/kernel"``. A
*pattern* is one of:

- ``str``: a glob (``fnmatch``, case-sensitive) on the whole path; ``*`` also crosses ``/``, so
  ``"backbone/*"`` is everything under ``backbone`` and ``"*_BN/*"`` every BatchNorm parameter;
- ``re.Pattern``: a regular expression searched in the path (anchor it with ``^``/``$``);
- a callable ``(path, leaf) -> bool``.

Rules are tried in order and the first match wins. A pattern that matches no path at all, or a
rule that only matches paths already claimed by earlier rules, raises ``ValueError``: a typo in
a pattern must not silently freeze (or train) the wrong parameters.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union

import jax

__all__ = ["Pattern", "label_params", "mask_params", "named_leaves", "path_of"]

Pattern = Union[str, "re.Pattern[str]", Callable[[str, Any], bool]]
Label = TypeVar("Label")


def path_of(keypath: Sequence[Any]) -> str:
    """``jax`` key path -> ``"a/b/0/c"``."""
    parts = []
    for key in keypath:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def named_leaves(tree: Any) -> list[tuple[str, Any]]:
    """``[(path, leaf), ...]`` in ``jax.tree`` leaf order."""
    return [(path_of(kp), leaf) for kp, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def _matcher(pattern: Pattern) -> Callable[[str, Any], bool]:
    if isinstance(pattern, str):
        return lambda path, _: fnmatch.fnmatchcase(path, pattern)
    if isinstance(pattern, re.Pattern):
        return lambda path, _: pattern.search(path) is not None
    if callable(pattern):
        return lambda path, leaf: bool(pattern(path, leaf))
    raise TypeError(f"a pattern is a glob str, a re.Pattern or a callable, got {pattern!r}")


def _describe(pattern: Pattern) -> str:
    if isinstance(pattern, re.Pattern):
        return f"re.compile({pattern.pattern!r})"
    if isinstance(pattern, str):
        return repr(pattern)
    return getattr(pattern, "__name__", repr(pattern))


def _examples(paths: Sequence[str], n: int = 6) -> str:
    shown = ", ".join(repr(p) for p in paths[:n])
    return shown + (f", ... ({len(paths)} in all)" if len(paths) > n else "")


def label_params(
    tree: Any,
    rules: Sequence[tuple[Pattern, Label]] | Mapping[Pattern, Label],
    *,
    default: Label | None = None,
) -> Any:
    """A pytree like ``tree`` whose leaves are the label of the first rule matching their path.

    Args:
        tree: parameters (any pytree; only the structure and paths are used).
        rules: ``[(pattern, label), ...]`` or an ordered mapping; first match wins.
        default: the label of leaves no rule matches; ``None`` means every leaf must match.

    Returns:
        The label pytree, e.g. for ``optax.partition``.

    Raises:
        ValueError: a rule matches no path, a rule matches only paths claimed by earlier rules,
            or (without ``default``) a leaf matches no rule.
    """
    items = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
    matchers = [_matcher(pattern) for pattern, _ in items]
    leaves = named_leaves(tree)
    paths = [path for path, _ in leaves]
    matched = [0] * len(items)
    won = [0] * len(items)
    labels = []
    unmatched = []
    for path, leaf in leaves:
        winner = None
        for i, match in enumerate(matchers):
            if match(path, leaf):
                matched[i] += 1
                if winner is None:
                    winner = i
        if winner is None:
            if default is None:
                unmatched.append(path)
            labels.append(default)
        else:
            won[winner] += 1
            labels.append(items[winner][1])
    for i, (pattern, label) in enumerate(items):
        if not matched[i]:
            raise ValueError(
                f"pattern {_describe(pattern)} (label {label!r}) matches no parameter; "
                f"paths look like {_examples(paths)}"
            )
        if not won[i]:
            raise ValueError(
                f"pattern {_describe(pattern)} (label {label!r}) only matches parameters that "
                f"earlier rules already claimed (first match wins): reorder the rules"
            )
    if unmatched:
        raise ValueError(f"no rule matches {_examples(unmatched)}; add a rule or a default")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree), labels)


def mask_params(tree: Any, patterns: Pattern | Sequence[Pattern]) -> Any:
    """A boolean pytree like ``tree``: ``True`` where any of ``patterns`` matches the path.

    The frozen mask of ``seqjax.train.fit(..., frozen=mask)``:

    >>> params = {"backbone": {"conv": {"kernel": 0.0}, "bn": {"scale": 1.0}}, "head": {"b": 0.0}}
    >>> mask_params(params, ["backbone/*"])
    {'backbone': {'bn': {'scale': True}, 'conv': {'kernel': True}}, 'head': {'b': False}}
    >>> mask_params(params, "Backbone/*")
    Traceback (most recent call last):
    ValueError: pattern 'Backbone/*' matches no parameter; paths look like 'backbone/bn/scale', 'backbone/conv/kernel', 'head/b'

    Raises:
        ValueError: if one of the patterns matches no path.
    """
    if isinstance(patterns, (str, re.Pattern)) or callable(patterns):
        patterns = [patterns]
    matchers = [_matcher(p) for p in patterns]
    leaves = named_leaves(tree)
    flags = []
    hits = [0] * len(matchers)
    for path, leaf in leaves:
        hit = False
        for i, match in enumerate(matchers):
            if match(path, leaf):
                hits[i] += 1
                hit = True
        flags.append(hit)
    for pattern, n in zip(patterns, hits, strict=True):
        if not n:
            raise ValueError(
                f"pattern {_describe(pattern)} matches no parameter; paths look like "
                f"{_examples([p for p, _ in leaves])}"
            )
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree), flags)

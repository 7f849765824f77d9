"""Freezing parameters with optax, done right.

``freeze(tx, frozen)`` is ``optax.partition({"trainable": tx, "frozen": optax.set_to_zero()})``:

- frozen leaves get exactly zero updates, so they stay bit-identical;
- the inner optimizer (``tx``) never sees them, so it holds no state (no Adam moments) for them
  and its weight decay does not touch them.

The alternatives get this wrong: ``optax.masked(tx, mask)`` alone passes the raw gradient
through for masked-out leaves (optax#159); zeroing gradients still lets AdamW decay the frozen
weights; ``optax.chain(tx, optax.transforms.freeze(mask))`` allocates state for every leaf.

Frozen masks are boolean pytrees like the parameters (``True`` = frozen), typically built with
:func:`seqjax.transfer.mask_params`. BatchNorm statistics are not parameters: keep the frozen
backbone in inference mode (see :mod:`seqjax.transfer.finetune`) and they are never updated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
import optax

from seqjax.models.mobilenet_v2 import BLOCKS, block_of
from seqjax.transfer.partition import named_leaves

__all__ = [
    "ModuleCount",
    "ParamSummary",
    "count_params",
    "freeze",
    "optimizer_state_size",
    "summarize",
    "unfreeze_top",
]

FrozenMask = Any  # pytree of bool like the params, True = frozen


def freeze(
    tx: optax.GradientTransformation, frozen: FrozenMask | Callable[[Any], FrozenMask]
) -> optax.GradientTransformation:
    """``tx`` on the trainable leaves, zero updates and no state for the frozen ones.

    Args:
        tx: the optimizer for trainable parameters (e.g. ``optax.adamw(1e-3)``).
        frozen: boolean pytree like the params (``True`` = frozen), or a function of the
            params returning one.

    Returns:
        An ``optax.GradientTransformation`` over the whole parameter tree.
    """

    def labels(params: Any) -> Any:
        mask = frozen(params) if callable(frozen) else frozen
        return jax.tree.map(lambda f: "frozen" if f else "trainable", mask)

    return optax.partition({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def unfreeze_top(frozen: FrozenMask, n: int, *, prefix: str = "backbone") -> FrozenMask:
    """Unfreeze the top ``n`` units of a MobileNetV2 backbone, for fine-tuning.

    The units, from the input up, are :data:`seqjax.models.mobilenet_v2.BLOCKS`: the stem
    ``Conv1``, ``expanded_conv``, ``block_1`` ... ``block_16`` and the last convolution
    ``Conv_1`` (19 in all), so ``n=1`` unfreezes ``Conv_1``/``Conv_1_bn`` and ``n=4`` also
    ``block_14`` to ``block_16``. A ``predictions`` layer, if any, counts as one more unit on top.

    Args:
        frozen: boolean mask pytree (``True`` = frozen) of the model's params.
        n: how many units to unfreeze, ``0 <= n <= 19``.
        prefix: path of the MobileNetV2 params inside the tree (``""`` if the tree is the
            MobileNetV2's own params).

    Returns:
        The mask with those units' leaves set to ``False``; other leaves unchanged.

    Raises:
        ValueError: ``n`` out of range, or a unit to unfreeze has no parameter under ``prefix``.
    """
    units = list(BLOCKS)
    if not 0 <= n <= len(units):
        raise ValueError(f"n must be in [0, {len(units)}], got {n}")
    top = set(units[len(units) - n :])
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    seen: set[str] = set()
    flags = []
    for path, flag in named_leaves(frozen):
        unit = None
        if path.startswith(head):
            layer = path[len(head) :].split("/", 1)[0]
            try:
                unit = block_of(layer)
            except ValueError:
                unit = None
        if unit in top:
            seen.add(unit)
            flags.append(False)
        else:
            flags.append(flag)
    missing = [u for u in units if u in top and u not in seen]
    if missing:
        raise ValueError(f"no MobileNetV2 parameters of {missing} under prefix {prefix!r}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(frozen), flags)


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree.leaves(tree)))


def optimizer_state_size(opt_state: Any) -> int:
    """Number of scalars an optimizer state holds, not counting step counters (0-d arrays).

    With :func:`freeze` around Adam this is ``2 * trainable parameters``.
    """
    return int(
        sum(
            np.prod(np.shape(leaf), dtype=np.int64)
            for leaf in jax.tree.leaves(opt_state)
            if np.ndim(leaf) > 0
        )
    )


@dataclass(frozen=True)
class ModuleCount:
    """Parameter counts of one module (a path prefix)."""

    module: str
    trainable: int
    frozen: int
    statistics: int = 0


@dataclass(frozen=True)
class ParamSummary:
    """Trainable/frozen parameter counts per module; ``str()`` renders a table."""

    rows: tuple[ModuleCount, ...]

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def frozen(self) -> int:
        return sum(r.frozen for r in self.rows)

    @property
    def statistics(self) -> int:
        return sum(r.statistics for r in self.rows)

    def __str__(self) -> str:
        width = max([len("module"), *(len(r.module) for r in self.rows)])
        lines = [f"{'module':<{width}} {'trainable':>12} {'frozen':>12} {'statistics':>12}"]
        for r in (*self.rows, ModuleCount("total", self.trainable, self.frozen, self.statistics)):
            lines.append(
                f"{r.module:<{width}} {r.trainable:>12,} {r.frozen:>12,} {r.statistics:>12,}"
            )
        return "\n".join(lines)


def summarize(
    params: Any, frozen: FrozenMask, *, batch_stats: Any = None, depth: int = 1
) -> ParamSummary:
    """Count trainable and frozen parameters per module.

    Args:
        params: the parameter pytree.
        frozen: boolean mask like ``params`` (``True`` = frozen).
        batch_stats: optional BatchNorm statistics, counted apart (never trained).
        depth: a module is the first ``depth`` path components, e.g. ``depth=2`` gives
            ``backbone/block_16_project``.

    Returns:
        A :class:`ParamSummary` with rows in first-seen order.
    """
    counts: dict[str, list[int]] = {}

    def module(path: str) -> str:
        return "/".join(path.split("/")[:depth])

    flags = [f for _, f in named_leaves(frozen)]
    leaves = named_leaves(params)
    if len(flags) != len(leaves):
        raise ValueError("the frozen mask does not have the structure of the params")
    for (path, leaf), is_frozen in zip(leaves, flags, strict=True):
        row = counts.setdefault(module(path), [0, 0, 0])
        row[1 if is_frozen else 0] += count_params(leaf)
    if batch_stats is not None:
        for path, leaf in named_leaves(batch_stats):
            counts.setdefault(module(path), [0, 0, 0])[2] += count_params(leaf)
    return ParamSummary(tuple(ModuleCount(m, *c) for m, c in counts.items()))

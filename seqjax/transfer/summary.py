"""Parameter counts for transfer learning: trainable and frozen per module, optimizer state size.

Freezing itself is ``optax.transforms.selective_transform(tx, freeze_mask=frozen)`` (frozen leaves
get zero updates, the inner optimizer holds no state for them and its weight decay never touches
them), which ``seqjax.train.fit(..., frozen=frozen)`` applies, computing no gradient for the frozen
leaves. Masks (``True`` = frozen) come from :func:`seqjax.transfer.mask_params`; the top blocks of
a MobileNetV2 from :func:`seqjax.models.unfreeze_top`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from seqjax.transfer.partition import named_leaves

__all__ = [
    "ModuleCount",
    "ParamSummary",
    "count_params",
    "optimizer_state_size",
    "summarize",
]

FrozenMask = Any  # pytree of bool like the params, True = frozen


def count_params(tree: Any) -> int:
    """Number of scalars in a pytree of arrays."""
    return int(sum(np.prod(np.shape(leaf), dtype=np.int64) for leaf in jax.tree.leaves(tree)))


def optimizer_state_size(opt_state: Any) -> int:
    """Number of scalars an optimizer state holds, not counting step counters (0-d arrays).

    With ``selective_transform`` around Adam this is ``2 * trainable parameters``.
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

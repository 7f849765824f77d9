"""Metrics to ``workdir/metrics.jsonl`` and TensorBoard event files (tensorboardX); averages.

Each line of ``metrics.jsonl`` is one JSON object ``{"step": s, "split": "train" | "val" |
"test", ...}`` (``step`` = optimiser updates done). The TensorBoard tags are ``split/name``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

UNWEIGHTED = frozenset({"grad_norm"})
"""Metrics averaged per step rather than per target."""


class Averager:
    """Averages step metrics over an epoch: weighted by ``count`` (targets per step), except
    :data:`UNWEIGHTED` (plain mean over steps); ``count`` itself is summed."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.weights: dict[str, float] = dict(state.get("weights", {}))

    def add(self, metrics: Mapping[str, float]) -> None:
        """Adds the host values of one step's metrics."""
        count = float(metrics.get("count", 1.0))
        for name, value in metrics.items():
            if name == "count":
                value, weight = float(value), 0.0
            elif name in UNWEIGHTED:
                value, weight = float(value), 1.0
            else:
                value, weight = float(value) * count, count
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.weights[name] = self.weights.get(name, 0.0) + weight

    def result(self) -> dict[str, float]:
        """The averages so far (``count`` summed)."""
        return {
            k: v if k == "count" else v / self.weights[k] if self.weights[k] else 0.0
            for k, v in self.sums.items()
        }

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot, to resume in the middle of an epoch."""
        return {"sums": dict(self.sums), "weights": dict(self.weights)}


def _jsonable(value: Any) -> Any:
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _summary_writer_class() -> Any:
    """``tensorboardX.SummaryWriter``, imported without PyTorch.

    ``tensorboardX`` imports ``torch`` when it is installed (seconds, for an optional feature we
    do not use: we log floats); unless the program already imported it, it is hidden meanwhile.
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    # A None entry makes `import torch` raise ImportError (documented import-system behaviour);
    # typeshed types sys.modules values as ModuleType only.
    sys.modules["torch"] = None  # type: ignore[assignment]  # None blocks the import, see above
    try:
        from tensorboardX import SummaryWriter
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return SummaryWriter


class MetricsWriter:
    """Appends metrics to ``workdir/metrics.jsonl`` and ``workdir/tensorboard``.

    Args:
      workdir: the run's directory.
      resume_step: when resuming from the checkpoint of this step, the lines written after it
        (by the interrupted run) are dropped from ``metrics.jsonl`` and purged from TensorBoard,
        so the files read like one uninterrupted run.
      tensorboard: also write TensorBoard event files.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        resume_step: int | None = None,
        tensorboard: bool = True,
    ) -> None:
        self.path = Path(workdir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            lines = self.path.read_text().splitlines()
            kept = [
                line
                for line in lines
                if line.strip()
                and (
                    (record := json.loads(line))["step"] < resume_step
                    or (record["step"] == resume_step and record.get("split") != "test")
                )
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            SummaryWriter = _summary_writer_class()
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=purge)

    def write(self, step: int, split: str, metrics: Mapping[str, float], **extra: Any) -> None:
        """Writes one record ``{"step", "split", **extra, **metrics}``."""
        record = {"step": int(step), "split": split, **extra}
        record.update({k: _jsonable(v) for k, v in metrics.items()})
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))

    def close(self) -> None:
        """Flushes and closes both outputs."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()

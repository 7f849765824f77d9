"""The run directory of an experiment: ``config.json``, ``results.json``, plots, and one
``seqjax.train.fit`` workdir per trained model (``<workdir>/<part>/``: its checkpoints,
``metrics.jsonl`` and TensorBoard files; a second run resumes each part from its checkpoints).

What the experiments add to ``fit``'s files: ``config.json`` and ``results.json`` (nested arrays
and non-finite floats made JSON-able). For a script that logs or checkpoints by itself (no
gradient step: evaluation, an online loop built on ``seqjax.train.train_step``), ``log``/
``metrics`` write and read ``<workdir>/metrics.jsonl`` and ``save``/``restore`` keep one
checkpoint per part under ``<workdir>/checkpoints/<part>``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.train import Checkpointer, MetricsWriter
from seqjax.train.checkpoint import check_finite

_NO_CARRY = np.zeros((), np.float32)  # the parts saved here keep no carry


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def latest_checkpoint_step(fit_workdir: str | os.PathLike) -> int:
    """The step of the newest checkpoint in a ``seqjax.train.fit`` workdir, 0 when it has none."""
    directory = Path(fit_workdir) / "checkpoints"
    if not directory.is_dir():
        return 0
    checkpointer = Checkpointer(directory)
    try:
        return checkpointer.latest_step() or 0
    finally:
        checkpointer.close()


class Workdir:
    """Files of one experiment run under ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._checkpointers: dict[str, Checkpointer] = {}
        self._writer: MetricsWriter | None = None  # created on the first log

    def part(self, name: str) -> Path:
        """The ``seqjax.train.fit`` workdir of one model or phase: ``<workdir>/<name>``."""
        return self.path / name

    def resumed_step(self, name: str) -> int:
        """The step a part's run resumes from (its newest checkpoint), 0 when it starts afresh."""
        return latest_checkpoint_step(self.part(name))

    # ---- config and results -----------------------------------------------------------------
    def write_config(self, config: Any) -> None:
        """``config.json`` (an ``ml_collections.ConfigDict`` or a mapping)."""
        data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.write_json("config.json", data)

    def write_results(self, results: Mapping[str, Any]) -> Path:
        """``results.json``: the final figures of the run."""
        self.write_json("results.json", results)
        return self.path / "results.json"

    def read_json(self, name: str) -> Any | None:
        path = self.path / name
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(_jsonable(data), indent=2) + "\n")

    # ---- metrics and checkpoints of parts that do not go through fit -------------------------
    def _checkpointer(self, part: str) -> Checkpointer:
        if part not in self._checkpointers:
            directory = self.path / "checkpoints" / part
            self._checkpointers[part] = Checkpointer(directory, max_to_keep=1)
        return self._checkpointers[part]

    def log(self, part: str, step: int, **metrics: float) -> None:
        """Writes ``{"step", "split": part, **metrics}`` to ``metrics.jsonl``; a non-finite value
        is an error. A workdir with checkpoints keeps the records up to the newest one."""
        check_finite(metrics, step=int(step), where=part)
        if self._writer is None:
            parts = self.path / "checkpoints"
            steps = [
                self._checkpointer(p.name).latest_step()
                for p in (sorted(parts.iterdir()) if parts.is_dir() else [])
                if p.is_dir()
            ]
            steps = [s for s in steps if s is not None]
            resume = max(steps) if steps else None
            self._writer = MetricsWriter(self.path, resume_step=resume, tensorboard=False)
        self._writer.write(int(step), part, metrics)

    def metrics(self, part: str | None = None) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl`` (of one part), last per ``(part, step)``, by step."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                latest[(record["split"], record["step"])] = record
        records = [r for (p, _), r in latest.items() if part is None or p == part]
        return sorted(records, key=lambda r: (r["split"], r["step"]))

    def save(self, part: str, step: int, tree: Any) -> None:
        """Saves ``tree`` (arrays only) as the checkpoint of ``part`` at ``step``."""
        self._checkpointer(part).save(int(step), tree, _NO_CARRY, {"part": part}, overwrite=True)

    def restore(self, part: str, like: Any) -> tuple[int, Any] | None:
        """``(step, tree)`` of the latest checkpoint of ``part`` shaped like ``like``, or None."""
        checkpointer = self._checkpointer(part)
        step = checkpointer.latest_step()
        if step is None:
            return None
        tree, _, _ = checkpointer.restore(like, _NO_CARRY, step)
        return step, jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), tree)

    def close(self) -> None:
        for checkpointer in self._checkpointers.values():
            checkpointer.close()
        self._checkpointers.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

"""The run directory: ``config.json``, ``metrics.jsonl``, ``results.json`` and checkpoints.

A run is resumable from its workdir: :class:`Workdir` appends metrics (one JSON object per line),
keeps orbax checkpoints per named part of the experiment (``checkpoints/<name>/<step>``) and writes
the final figures. Reading the metrics back keeps the last record of each ``(part, step)``, so the
lines a killed run wrote after its last checkpoint are superseded when the resumed run repeats
those steps.

(``seqjax.train`` has a ``MetricsWriter`` and a ``Checkpointer``; they were not committed when the
experiments were written, so this module is the minimum the experiments need.)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


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


class Workdir:
    """Files of one experiment run under ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._managers: dict[str, ocp.CheckpointManager] = {}

    # ---- config and results -----------------------------------------------------------------
    def write_config(self, config: Any) -> None:
        """``config.json`` (an ``ml_collections.ConfigDict`` or a mapping)."""
        data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        (self.path / "config.json").write_text(json.dumps(_jsonable(data), indent=2) + "\n")

    def write_results(self, results: Mapping[str, Any]) -> Path:
        """``results.json``: the final figures of the run."""
        path = self.path / "results.json"
        path.write_text(json.dumps(_jsonable(results), indent=2) + "\n")
        return path

    def read_json(self, name: str) -> Any | None:
        path = self.path / name
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(_jsonable(data), indent=2) + "\n")

    # ---- metrics ------------------------------------------------------------------------------
    def log(self, part: str, step: int, **metrics: Any) -> None:
        """Appends ``{"part", "step", **metrics}`` to ``metrics.jsonl``; NaN is an error."""
        record = {"part": part, "step": int(step), **_jsonable(metrics)}
        for key, value in metrics.items():
            if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
                raise FloatingPointError(f"{part} step {step}: {key} is {value}")
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def metrics(self, part: str | None = None) -> list[dict[str, Any]]:
        """The metrics records (of one part), last record per ``(part, step)``, in step order."""
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                latest[(record["part"], record["step"])] = record
        records = [r for (p, _), r in latest.items() if part is None or p == part]
        return sorted(records, key=lambda r: (r["part"], r["step"]))

    # ---- checkpoints --------------------------------------------------------------------------
    def _manager(self, part: str) -> ocp.CheckpointManager:
        if part not in self._managers:
            directory = (self.path / "checkpoints" / part).absolute()
            options = ocp.CheckpointManagerOptions(max_to_keep=1, create=True)
            self._managers[part] = ocp.CheckpointManager(directory, options=options)
        return self._managers[part]

    def save(self, part: str, step: int, tree: Any) -> None:
        """Saves ``tree`` (arrays only) as the checkpoint of ``part`` at ``step``."""
        manager = self._manager(part)
        manager.save(int(step), args=ocp.args.StandardSave(tree), force=True)
        manager.wait_until_finished()

    def restore(self, part: str, like: Any) -> tuple[int, Any] | None:
        """``(step, tree)`` of the latest checkpoint of ``part`` shaped like ``like``, or None."""
        manager = self._manager(part)
        step = manager.latest_step()
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return step, manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        for manager in self._managers.values():
            manager.close()
        self._managers.clear()

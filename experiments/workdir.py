"""The run directory of an experiment: ``config.json``, ``results.json``, plots, and one
``seqjax.train.fit`` workdir per trained model (``<workdir>/<part>/``: its checkpoints,
``metrics.jsonl`` and TensorBoard files; a second run resumes each part from its checkpoints).

What the experiments add to ``fit``'s files: ``config.json`` and ``results.json`` (nested arrays
and non-finite floats made JSON-able).
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

from seqjax.train import Checkpointer


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

    def part(self, name: str) -> Path:
        """The ``seqjax.train.fit`` workdir of one model or phase: ``<workdir>/<name>``."""
        return self.path / name

    def resumed_step(self, name: str) -> int:
        """The step a part's run resumes from (its newest checkpoint), 0 when it starts afresh."""
        directory = self.part(name) / "checkpoints"
        if not directory.is_dir():
            return 0
        checkpointer = Checkpointer(directory)
        try:
            return checkpointer.latest_step() or 0
        finally:
            checkpointer.close()

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

"""Checkpoints with orbax: the train state, the carry and the loop position; the NaN guard.

A checkpoint at step ``s`` (``s`` optimiser updates done) holds three items:

- ``state``: the :class:`~seqjax.train.TrainState` (params, optimiser state, step, rng);
- ``carry``: the streams' carry after step ``s``, so a run resumed in the middle of an epoch
  continues the streams exactly;
- ``loop``: JSON with the epoch, the batches of it done, the running epoch averages and the early
  stopping record.

**NaN guard.** The loop saves only after it has fetched the metrics of every step up to ``s`` and
found them finite (:func:`check_finite`); a non-finite loss raises :class:`NonFiniteError` naming
the step before anything later is saved, so the latest checkpoint is the last good one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from seqjax.train.carry import Carry
from seqjax.train.state import TrainState

_NO_CARRY = np.zeros((), np.float32)  # stands for the None carry of a model without one


def _storable(carry: Carry) -> Any:
    """orbax's StandardSave takes pytrees of arrays, not ``None`` or one bare array (the carry
    of a model without one, of a ``SimpleRNN``/``GRU``): those are wrapped in a dict."""
    if carry is None:
        return {"none": _NO_CARRY}
    if isinstance(carry, jax.Array | np.ndarray):
        return {"array": carry}
    return carry


def _unstored(template: Carry, restored: Any) -> Carry:
    if template is None:
        return None
    if isinstance(template, jax.Array | np.ndarray):
        return restored["array"]
    return restored


class NonFiniteError(FloatingPointError):
    """A loss (or gradient norm) became NaN or infinite; ``step`` is the offending step."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def check_finite(
    metrics: Mapping[str, float], *, step: int, where: str = "", last_good: int | None = None
) -> None:
    """Raises :class:`NonFiniteError` if a value of ``metrics`` (host floats) is not finite.

    ``step`` is the step index (updates done before it), ``last_good`` the latest checkpoint.
    """
    bad = {k: float(v) for k, v in metrics.items() if not math.isfinite(float(v))}
    if bad:
        kept = (
            f"the last good checkpoint (step {last_good}) is kept"
            if last_good is not None
            else "no checkpoint was saved yet"
        )
        raise NonFiniteError(
            f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at train step {step}"
            f"{' (' + where + ')' if where else ''}; stopping, {kept}. Lower the learning rate, "
            "clip the gradients (clip_norm) or check the inputs for NaN.",
            step,
        )


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpointer:
    """An orbax ``CheckpointManager`` over ``directory`` for ``(state, carry, loop)``.

    Args:
      directory: where the step folders go (``workdir/checkpoints`` in :func:`fit`).
      max_to_keep: the newest checkpoints kept.
      async_save: write in a background thread (orbax copies the arrays to host memory before
        ``save`` returns, so the donated buffers of the next step are safe).
    """

    def __init__(
        self, directory: str | os.PathLike, *, max_to_keep: int = 3, async_save: bool = True
    ) -> None:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save
        )
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(
        self,
        step: int,
        state: TrainState,
        carry: Carry,
        loop: Mapping[str, Any],
        *,
        overwrite: bool = False,
    ) -> None:
        """Saves the three items at ``step``. An existing checkpoint of that step is kept (the
        state is the same) unless ``overwrite`` (to record a later loop position)."""
        if step in self.manager.all_steps():
            if not overwrite:
                return
            self.manager.wait_until_finished()
            self.manager.delete(step)
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                carry=ocp.args.StandardSave(_storable(carry)),
                loop=ocp.args.JsonSave(dict(loop)),
            ),
        )

    def restore(
        self, state: TrainState, carry: Carry, step: int | None = None
    ) -> tuple[TrainState, Carry, dict[str, Any]]:
        """Restores ``step`` (the latest by default) into the structure, shapes and shardings of
        the templates ``state`` and ``carry``; returns ``(state, carry, loop)``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}.")
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(state)),
                carry=ocp.args.StandardRestore(_abstract(_storable(carry))),
                loop=ocp.args.JsonRestore(),
            ),
        )
        return restored.state, _unstored(carry, restored.carry), dict(restored.loop)

    def wait(self) -> None:
        """Blocks until background saves are written."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits and releases the manager."""
        self.manager.wait_until_finished()
        self.manager.close()

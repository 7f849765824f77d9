"""Periodic and sparse targets as dense target arrays plus masks.

Some targets exist only every ``k`` steps (one label per "day" of hourly inputs) or at
irregular steps. The training loop then computes a **masked** loss: dense ``targets`` of
shape ``[time, ...]`` with arbitrary ``fill_value`` where there is no label, and a boolean
``mask`` of shape ``[time]`` that is ``True`` exactly where a label exists::

    loss = sum(mask * per_step_loss) / max(sum(mask), 1)

Both arrays are aligned with the inputs (``targets[t]`` is the label for the input at
``t``), so they go through :func:`seqjax.data.stateful_layout` (or
``stateful_batches(..., targets=targets)``) exactly like the series.
"""

from __future__ import annotations

import numpy as np

from seqjax.data.checks import check_positive_int

__all__ = ["lengths_mask", "periodic_mask", "periodic_targets", "sparse_targets"]


def _phase(period: int, phase: int | None) -> int:
    if phase is None:
        return period - 1
    phase = check_positive_int("phase", phase, minimum=0)
    if phase >= period:
        raise ValueError(f"phase must be in [0, period) = [0, {period}), got {phase}")
    return phase


def periodic_mask(length: int, period: int, *, phase: int | None = None) -> np.ndarray:
    """``[length]`` bool: ``True`` at ``t = phase, phase + period, phase + 2 * period, ...``.

    ``phase`` defaults to ``period - 1``: the label of each period sits on its last step,
    once the whole period has been seen (``period=24`` on hourly data: t = 23, 47, ...).

    Example:
        >>> from seqjax.data import periodic_mask
        >>> periodic_mask(7, period=3)
        array([False, False,  True, False, False,  True, False])
        >>> periodic_mask(7, period=3, phase=0)
        array([ True, False, False,  True, False, False,  True])
    """
    length = check_positive_int("length", length)
    period = check_positive_int("period", period)
    phase = _phase(period, phase)
    mask = np.zeros(length, dtype=bool)
    mask[phase::period] = True
    return mask


def periodic_targets(
    labels: np.ndarray,
    period: int,
    *,
    length: int | None = None,
    phase: int | None = None,
    fill_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Places one label per period on the time axis.

    Args:
      labels: ``[num_periods, ...]``, label ``i`` belongs to step ``phase + i * period``.
      period: steps per period (e.g. 24 hours per day), >= 1.
      length: length of the time axis; default ``num_periods * period``. Must contain
        exactly ``num_periods`` label positions.
      phase: step of the label within each period, default ``period - 1``.
      fill_value: target value where there is no label (ignored by a masked loss).

    Returns:
      ``(targets, mask)``: ``targets`` ``[length, ...]`` with ``labels.dtype`` (promoted to
      hold ``fill_value``), ``mask`` ``[length]`` bool equal to
      ``periodic_mask(length, period, phase=phase)``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import periodic_targets
        >>> targets, mask = periodic_targets(np.array([7.0, 8.0]), period=3)   # one label every 3 steps
        >>> targets
        array([0., 0., 7., 0., 0., 8.])
        >>> mask
        array([False, False,  True, False, False,  True])
    """
    y = np.asarray(labels)
    if y.ndim < 1:
        raise ValueError(f"labels must have rank >= 1 ([num_periods, ...]), got shape {y.shape}")
    period = check_positive_int("period", period)
    length = y.shape[0] * period if length is None else length
    mask = periodic_mask(length, period, phase=phase)
    if int(mask.sum()) != y.shape[0]:
        raise ValueError(
            f"labels must have one entry per label position: a time axis of length {length} "
            f"with period {period} and phase {_phase(period, phase)} has {int(mask.sum())} "
            f"label positions, got {y.shape[0]} labels"
        )
    targets = np.full((length, *y.shape[1:]), fill_value, dtype=np.result_type(y, fill_value))
    targets[mask] = y
    return targets, mask


def sparse_targets(
    length: int, positions: np.ndarray, values: np.ndarray, *, fill_value: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Places labels at arbitrary, distinct time steps.

    Args:
      length: length of the time axis.
      positions: ``[n]`` distinct integer steps in ``[0, length)``.
      values: ``[n, ...]`` labels, ``values[i]`` at step ``positions[i]``.

    Returns:
      ``(targets [length, ...], mask [length] bool)``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import sparse_targets
        >>> targets, mask = sparse_targets(5, positions=np.array([1, 4]), values=np.array([0.5, 2.0]))
        >>> targets
        array([0. , 0.5, 0. , 0. , 2. ])
        >>> mask
        array([False,  True, False, False,  True])
    """
    length = check_positive_int("length", length)
    pos = np.asarray(positions)
    vals = np.asarray(values)
    if pos.ndim != 1 or pos.dtype.kind not in "iu":
        raise ValueError(
            f"positions must be a rank-1 integer array, got dtype {pos.dtype}, shape {pos.shape}"
        )
    if vals.ndim < 1 or vals.shape[0] != pos.shape[0]:
        raise ValueError(
            f"values must have one entry per position: expected {pos.shape[0]}, "
            f"got shape {vals.shape}"
        )
    if pos.size and (pos.min() < 0 or pos.max() >= length):
        bad = pos[(pos < 0) | (pos >= length)][0]
        raise ValueError(f"positions must lie in [0, {length}), got {int(bad)}")
    if np.unique(pos).size != pos.size:
        raise ValueError("positions must be distinct, got duplicates")
    targets = np.full((length, *vals.shape[1:]), fill_value, dtype=np.result_type(vals, fill_value))
    mask = np.zeros(length, dtype=bool)
    targets[pos] = vals
    mask[pos] = True
    return targets, mask


def lengths_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    """``[N, max_length]`` bool mask, ``True`` for ``t < lengths[n]`` (right padding).

    Example:
        >>> import numpy as np
        >>> from seqjax.data import lengths_mask
        >>> lengths_mask(np.array([3, 1]), max_length=4)
        array([[ True,  True,  True, False],
               [ True, False, False, False]])
    """
    lengths = np.asarray(lengths)
    max_length = check_positive_int("max_length", max_length, minimum=0)
    if lengths.size and (lengths.min() < 0 or lengths.max() > max_length):
        raise ValueError(
            f"lengths must lie in [0, max_length={max_length}], "
            f"got min {lengths.min()} and max {lengths.max()}"
        )
    return np.arange(max_length) < lengths[..., None]

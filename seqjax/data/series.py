"""Many independent series in stateful batches, reshuffled every epoch.

Each series is cut into chunks of ``timesteps`` steps that occupy **consecutive batches in
one row** (stream), so a stateful RNN carries its state from chunk to chunk *within* a
series. When a row's series ends, the next series of that row starts at the next batch,
with ``reset[k, j] = True``: the training step zeroes row ``j``'s state before batch ``k``,
so no state flows *across* series. Example with ``batch_size=2, timesteps=4`` and series
``a`` (9 pairs), ``b`` (3 pairs), ``c`` (5 pairs)::

                batch 0          batch 1          batch 2
    row 0     a[0:4]  reset    a[4:8]           a[8:9] + 3 pad
    row 1     b[0:3]+1 pad  R  c[0:4]  reset    c[4:5] + 3 pad

Every series starts at a batch boundary; the tail of its last chunk is right-padded with
zeros, ``seq_lengths[k, j]`` counts the valid steps of row ``j`` in batch ``k`` and
``mask[k, j, t] = t < seq_lengths[k, j]``. Rows that run out of series before the last
batch get empty chunks (``seq_lengths = 0``, ``series_index = -1``). Series are assigned,
in (shuffled) order, to the row with the fewest chunks so far, which keeps rows balanced.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from seqjax.data.checks import as_series, check_positive_int

__all__ = ["SeriesBatches", "series_batches"]


class SeriesBatches(NamedTuple):
    """One epoch of :func:`series_batches` (``n = num_batches, B = batch_size, S = timesteps``).

    Attributes:
      inputs: ``[n, B, S, F]``, zero-padded.
      targets: ``[n, B, S, K]``, zero-padded.
      mask: ``[n, B, S]`` bool, ``True`` on valid steps.
      seq_lengths: ``[n, B]`` int32, valid steps per row and batch (0..S).
      reset: ``[n, B]`` bool, ``True`` where the row starts a new series (or is empty):
        reset that row's state before the batch.
      series_index: ``[n, B]`` int32, index into the input list (``-1``: padding).
      start: ``[n, B]`` int32, time index within that series of the row's first step.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    seq_lengths: np.ndarray
    reset: np.ndarray
    series_index: np.ndarray
    start: np.ndarray


def _pairs(
    list_of_series: Sequence[np.ndarray],
    targets: Sequence[np.ndarray] | None,
    nan_policy: str,
) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(list_of_series, np.ndarray) and list_of_series.ndim != 3:
        raise ValueError(
            "list_of_series must be a list of [time] / [time, features] arrays or a rank 3 "
            f"array [num_series, time, features], got an array of shape {list_of_series.shape}"
        )
    if len(list_of_series) == 0:
        raise ValueError("list_of_series must contain at least one series, got 0")
    if targets is not None and len(targets) != len(list_of_series):
        raise ValueError(
            f"targets must have one array per series: expected {len(list_of_series)}, "
            f"got {len(targets)}"
        )
    pairs, features, kfeatures = [], None, None
    for i, s in enumerate(list_of_series):
        x = as_series(s, f"series[{i}]", nan_policy=nan_policy)
        x = x[:, None] if x.ndim == 1 else x
        if targets is None:
            if x.shape[0] < 2:
                raise ValueError(
                    f"series[{i}] is too short: needs at least 2 steps (one input and its "
                    f"next-step target), got {x.shape[0]}"
                )
            xi, yi = x[:-1], x[1:]
        else:
            y = as_series(targets[i], f"targets[{i}]", nan_policy=nan_policy)
            y = y[:, None] if y.ndim == 1 else y
            if y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"targets[{i}] must have the same length as series[{i}]: "
                    f"expected {x.shape[0]}, got {y.shape[0]}"
                )
            if x.shape[0] < 1:
                raise ValueError(f"series[{i}] is too short: needs at least 1 step, got 0")
            xi, yi = x, y
        if features is None:
            features, kfeatures = xi.shape[1], yi.shape[1]
        elif xi.shape[1] != features or yi.shape[1] != kfeatures:
            raise ValueError(
                f"all series must have the same number of features: series[0] has "
                f"{features} (targets {kfeatures}), series[{i}] has {xi.shape[1]} "
                f"(targets {yi.shape[1]})"
            )
        pairs.append((xi, yi))
    return pairs


def series_batches(
    list_of_series: Sequence[np.ndarray],
    batch_size: int,
    timesteps: int,
    *,
    targets: Sequence[np.ndarray] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    nan_policy: str = "raise",
) -> SeriesBatches:
    """Packs independent series of ragged lengths into stateful batches for one epoch.

    See the module docstring for the layout. Targets are next-step values within each
    series (never across series), or ``targets[i]`` aligned with ``list_of_series[i]``.

    Args:
      list_of_series: ``N`` arrays ``[time_i]`` or ``[time_i, features]`` (same features).
      batch_size: rows per batch ``B``, >= 1.
      timesteps: steps per chunk ``S``, >= 1.
      targets: optional ``N`` arrays ``[time_i]`` or ``[time_i, k]``, same lengths.
      shuffle: shuffle the order in which series are packed (a new order every epoch).
      seed, epoch: the order of epoch ``e`` is drawn from ``default_rng([seed, e])``, so
        each epoch differs and every epoch is reproducible.
      nan_policy: ``"raise"`` or ``"propagate"``.

    Returns:
      A :class:`SeriesBatches` of ``n`` batches (``n`` = the longest row, in chunks).

    Raises:
      ValueError: bad ``B``/``S``, an empty list, a series with fewer than 2 steps
        (1 with explicit targets), mismatched feature counts or target lengths, wrong
        rank, NaN/inf with ``nan_policy="raise"``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import series_batches
        >>> series = [np.arange(5.0), np.arange(3.0)]              # two series of ragged lengths
        >>> out = series_batches(series, batch_size=2, timesteps=2, shuffle=False)
        >>> out.inputs.shape                                       # [num_batches, batch, timesteps, features]
        (2, 2, 2, 1)
        >>> out.seq_lengths                                        # valid steps of each row, per batch
        array([[2, 2],
               [2, 0]], dtype=int32)
        >>> out.reset                                              # a row whose stream starts here
        array([[ True,  True],
               [False,  True]])
    """
    batch_size = check_positive_int("batch_size", batch_size)
    timesteps = check_positive_int("timesteps", timesteps)
    pairs = _pairs(list_of_series, targets, nan_policy)
    n_series = len(pairs)
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(n_series)
    else:
        order = np.arange(n_series)
    chunks = [-(-xi.shape[0] // timesteps) for xi, _ in pairs]
    heap = [(0, row) for row in range(batch_size)]
    rows: list[list[int]] = [[] for _ in range(batch_size)]
    for i in order:
        load, row = heapq.heappop(heap)
        rows[row].append(int(i))
        heapq.heappush(heap, (load + chunks[i], row))
    num_batches = max(load for load, _ in heap)

    features, kfeatures = pairs[0][0].shape[1], pairs[0][1].shape[1]
    xdtype = np.result_type(*[p[0].dtype for p in pairs], np.float32)
    ydtype = np.result_type(*[p[1].dtype for p in pairs], np.float32)
    inputs = np.zeros((num_batches, batch_size, timesteps, features), xdtype)
    targs = np.zeros((num_batches, batch_size, timesteps, kfeatures), ydtype)
    seq_lengths = np.zeros((num_batches, batch_size), np.int32)
    reset = np.ones((num_batches, batch_size), bool)
    series_index = np.full((num_batches, batch_size), -1, np.int32)
    start = np.zeros((num_batches, batch_size), np.int32)
    for row, members in enumerate(rows):
        k = 0
        for i in members:
            xi, yi = pairs[i]
            c, n = chunks[i], xi.shape[0]
            padded = c * timesteps
            xs = np.zeros((padded, features), xdtype)
            ys = np.zeros((padded, kfeatures), ydtype)
            xs[:n], ys[:n] = xi, yi
            inputs[k : k + c, row] = xs.reshape(c, timesteps, features)
            targs[k : k + c, row] = ys.reshape(c, timesteps, kfeatures)
            offsets = np.arange(c) * timesteps
            seq_lengths[k : k + c, row] = np.minimum(n - offsets, timesteps)
            reset[k + 1 : k + c, row] = False
            series_index[k : k + c, row] = i
            start[k : k + c, row] = offsets
            k += c
    mask = np.arange(timesteps) < seq_lengths[..., None]
    return SeriesBatches(inputs, targs, mask, seq_lengths, reset, series_index, start)

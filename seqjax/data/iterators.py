"""Host-side iterators that yield dict batches for a JAX training loop.

Every iterator yields plain ``dict[str, np.ndarray]`` batches (a pytree: pass it straight to
a jitted step; shapes are fixed within an iterator, so the step compiles once). Keys:

- ``inputs``: ``[B, S, F]`` (sequence batches) or ``[B, ...]`` (minibatches).
- ``targets``: ``[B, S, K]`` or ``[B, ...]``, zero where padded.
- ``mask``: bool with the leading axes of ``targets``: ``[B, S]`` valid steps of sequence
  batches, ``[B]`` valid rows of minibatches (or a given per-sample mask).
- ``seq_lengths``: ``[B]`` int32, valid steps per row (sequence batches).
- ``reset``: ``[B]`` bool, ``True``: zero this row's carried state *before* this batch.

``stateful_iterator`` and ``series_iterator`` yield all five keys (same structure, so one
training step serves both); ``minibatches`` yields the arrays it was given plus ``mask``.
A masked loss is ``sum(mask * loss) / max(sum(mask), 1)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import count

import numpy as np

from seqjax.data.checks import check_positive_int
from seqjax.data.series import series_batches
from seqjax.data.stateful import stateful_batches, stateful_layout

__all__ = ["minibatches", "series_iterator", "stateful_iterator"]

Batch = dict[str, np.ndarray]


def _epochs(num_epochs: int | None) -> Iterator[int]:
    if num_epochs is None:
        return count()
    return iter(range(check_positive_int("num_epochs", num_epochs)))


def _batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_epochs: int | None,
    drop_remainder: bool,
    what: str = "samples",
) -> Iterator[np.ndarray]:
    """Row indices of each mini-batch over ``n`` rows, epoch after epoch.

    Each epoch is a fresh order drawn from ``default_rng([seed, epoch])`` (or ``0..n-1`` without
    ``shuffle``); the last batch is shorter than ``batch_size`` unless ``drop_remainder``.
    """
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"drop_remainder=True needs at least batch_size = {batch_size} {what}, got {n}"
        )
    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    for epoch in _epochs(num_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        for b in range(num_batches):
            yield order[b * batch_size : (b + 1) * batch_size]


def stateful_iterator(
    series: np.ndarray,
    batch_size: int,
    timesteps: int,
    *,
    targets: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    num_epochs: int | None = 1,
    drop: str = "end",
    nan_policy: str = "raise",
    warn: bool = True,
) -> Iterator[Batch]:
    """Yields the batches of :func:`seqjax.data.stateful_batches` in order, epoch after epoch.

    Batches must be consumed in order (row ``j`` continues across batches), so there is
    no shuffling; ``reset`` is ``True`` for every row at the first batch of each epoch.

    Args:
      series, batch_size, timesteps, targets, drop, nan_policy, warn: as in
        :func:`seqjax.data.stateful_batches`.
      mask: optional ``[time]`` bool, aligned with the inputs: ``mask[t]`` says whether the
        target belonging to input step ``t`` counts (e.g. from
        :func:`seqjax.data.periodic_targets`). Default: every step counts.
      num_epochs: number of passes, ``None`` for an endless iterator.

    Yields:
      ``{"inputs": [B, S, F], "targets": [B, S, K], "mask": [B, S] bool,
      "seq_lengths": [B] int32 (all S; fewer on the padding of ``drop="pad"``),
      "reset": [B] bool}``. ``drop="pad"`` keeps every step (validation and test): the
      padded targets are masked and ``seq_lengths`` hold the carry through the padding.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import stateful_iterator
        >>> batches = list(stateful_iterator(np.arange(13.0), batch_size=2, timesteps=3))
        >>> len(batches), sorted(batches[0])
        (2, ['inputs', 'mask', 'reset', 'seq_lengths', 'targets'])
        >>> batches[1]["inputs"][:, :, 0]                          # row j goes on from batch 0's row j
        array([[ 3.,  4.,  5.],
               [ 9., 10., 11.]])
    """
    laid = stateful_batches(
        series,
        batch_size,
        timesteps,
        targets=targets,
        drop=drop,
        nan_policy=nan_policy,
        warn=warn,
    )
    if isinstance(laid, dict):  # drop="pad"
        inputs, targs = laid["inputs"], laid["targets"]
        valid, lengths = laid["mask"].astype(bool), laid["seq_lengths"]
    else:
        inputs, targs = laid
        valid, lengths = np.ones(inputs.shape[:3], bool), None
    if mask is None:
        laid_mask = valid
    else:
        m = np.asarray(mask, dtype=bool)
        length = np.asarray(series).shape[0]
        if m.shape != (length,):
            raise ValueError(f"mask must have shape [time] = ({length},), got {m.shape}")
        laid_mask = (
            stateful_layout(m if targets is not None else m[:-1], batch_size, timesteps, drop=drop)
            & valid
        )
    if lengths is None:
        lengths = np.full(inputs.shape[:2], timesteps, np.int32)
    for _ in _epochs(num_epochs):
        for k in range(inputs.shape[0]):
            yield {
                "inputs": np.ascontiguousarray(inputs[k]),
                "targets": np.ascontiguousarray(targs[k]),
                "mask": np.ascontiguousarray(laid_mask[k]),
                "seq_lengths": lengths[k].copy(),
                "reset": np.full(batch_size, k == 0),
            }


def series_iterator(
    list_of_series: Sequence[np.ndarray],
    batch_size: int,
    timesteps: int,
    *,
    targets: Sequence[np.ndarray] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    nan_policy: str = "raise",
) -> Iterator[Batch]:
    """Yields the batches of :func:`seqjax.data.series_batches`, reshuffled every epoch.

    Epoch ``e`` uses ``series_batches(..., seed=seed, epoch=e)``; the number of batches may
    differ slightly between epochs (it is the longest row of that epoch's packing).

    Yields:
      ``{"inputs": [B, S, F], "targets": [B, S, K], "mask": [B, S] bool,
      "seq_lengths": [B] int32, "reset": [B] bool}``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import series_iterator
        >>> series = [np.arange(5.0), np.arange(3.0)]
        >>> batches = list(series_iterator(series, batch_size=2, timesteps=2, shuffle=False))
        >>> len(batches), batches[0]["inputs"].shape
        (2, (2, 2, 1))
        >>> [b["seq_lengths"].tolist() for b in batches]
        [[2, 2], [2, 0]]
    """
    for epoch in _epochs(num_epochs):
        sb = series_batches(
            list_of_series,
            batch_size,
            timesteps,
            targets=targets,
            shuffle=shuffle,
            seed=seed,
            epoch=epoch,
            nan_policy=nan_policy,
        )
        for k in range(sb.inputs.shape[0]):
            yield {
                "inputs": sb.inputs[k],
                "targets": sb.targets[k],
                "mask": sb.mask[k],
                "seq_lengths": sb.seq_lengths[k],
                "reset": sb.reset[k],
            }


def minibatches(
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    drop_remainder: bool = False,
) -> Iterator[Batch]:
    """Yields random minibatches of independent samples (windows, synthetic sequences).

    Args:
      arrays: e.g. ``{"inputs": [N, ...], "targets": [N, ...]}``; all with the same ``N``.
        An existing ``"mask"`` (e.g. ``[N, T]`` from padded sequences) is kept and ANDed
        with row validity.
      batch_size: ``B``, >= 1.
      shuffle: a new permutation every epoch, drawn from ``default_rng([seed, epoch])``.
      num_epochs: number of passes, ``None`` for an endless iterator.
      drop_remainder: drop the last incomplete batch; otherwise it is zero-padded to ``B``
        rows (fixed shapes, one compilation) with ``mask`` ``False`` on the padding.

    Yields:
      ``{key: [B, ...] for key in arrays}`` plus ``"mask"``: ``[B]`` bool row validity (or
      the given mask's shape).

    Example:
        >>> import numpy as np
        >>> from seqjax.data import minibatches
        >>> arrays = {"inputs": np.zeros((5, 4, 1)), "targets": np.zeros((5, 1))}
        >>> [batch["inputs"].shape for batch in minibatches(arrays, batch_size=2, seed=0)]
        [(2, 4, 1), (2, 4, 1), (2, 4, 1)]
    """
    batch_size = check_positive_int("batch_size", batch_size)
    data = {k: np.asarray(v) for k, v in arrays.items()}
    if not data:
        raise ValueError("arrays must contain at least one array, got none")
    lengths = {k: (v.shape[0] if v.ndim else None) for k, v in data.items()}
    n = next(iter(lengths.values()))
    if any(v != n for v in lengths.values()) or n is None:
        raise ValueError(f"all arrays must have the same leading length, got {lengths}")
    for idx in _batch_indices(
        n,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
    ):
        valid = np.zeros(batch_size, bool)
        valid[: len(idx)] = True
        batch = {}
        for key, value in data.items():
            out = np.zeros((batch_size, *value.shape[1:]), value.dtype)
            out[: len(idx)] = value[idx]
            batch[key] = out
        if "mask" in batch:
            m = batch["mask"].astype(bool)
            batch["mask"] = m & valid.reshape(-1, *([1] * (m.ndim - 1)))
        else:
            batch["mask"] = valid
        yield batch

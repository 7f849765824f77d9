"""Stateful batch layout: one long series cut into streams that continue across batches.

A stateful RNN carries its final state of batch ``k`` into batch ``k + 1``. That only makes
sense if row ``j`` of batch ``k + 1`` continues row ``j`` of batch ``k``. For a series
``s[0..T)`` with ``batch_size=B`` and ``timesteps=S`` the layout is (``n = num_batches``)::

               batch 0              batch 1                  ...  batch n-1
    row 0   s[0      : S]        s[S       : 2S]             ...  s[(n-1)S : nS]
    row 1   s[nS     : nS+S]     s[nS+S    : nS+2S]          ...  s[(2n-1)S : 2nS]
    ...
    row B-1 s[(B-1)nS: ...]      ...                          ...  s[BnS - S : BnS]

i.e. the series is cut into ``B`` contiguous streams of ``n * S`` steps, and each stream
into ``n`` consecutive chunks of ``S`` steps. ``batch_size=1`` is the layout of the lecture
(Keras' ``(1, T, features)`` reshaped into ``(T / S, S, features)``, one chunk per batch).

Remainder: the ``T' - B * n * S`` steps that do not fill a whole chunk in every stream are
**dropped** (``T' = T - 1`` for next-step targets, ``T`` with explicit targets), from the
end by default (``drop="start"`` keeps the most recent data instead), and a
:class:`RemainderWarning` says how many. Dropping keeps every batch full and every row a
true continuation, so no mask is needed; :func:`stateful_restore` puts per-batch predictions
back on the original time axis and fills the dropped steps with NaN. The warning is issued once
per split (the same length and layout), not every epoch that lays the split out again.

``drop="pad"`` keeps every step, for validation and test: ``num_batches = ceil(T' / (B * S))``
and the end of the series is padded with zeros to ``num_batches * B * S`` steps. Then
:func:`stateful_batches` returns a dict (a stacked source for ``seqjax.train.fit``) with a
``mask`` that is 0 on the padded targets and ``seq_lengths`` (the valid steps of each chunk) that
hold the carry through the padding.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np

from seqjax.data.checks import as_series, check_positive_int, check_same_length

_WARNED: set[tuple] = set()  # the splits (layout and content) already warned about

__all__ = [
    "RemainderWarning",
    "stateful_batches",
    "stateful_layout",
    "stateful_restore",
]

_DROPS = ("end", "start", "pad")


class RemainderWarning(UserWarning):
    """Steps that do not fill a whole stateful chunk were dropped."""


def _check_drop(drop: str) -> None:
    if drop not in _DROPS:
        raise ValueError(f"drop must be 'end', 'start' or 'pad', got {drop!r}")


def _layout_counts(
    length: int, batch_size: int, timesteps: int, drop: str = "end"
) -> tuple[int, int]:
    """``(num_batches, steps laid out)``; with ``"pad"`` the steps include the padding."""
    if drop == "pad":
        num_batches = -(-length // (batch_size * timesteps))
    else:
        num_batches = (length // batch_size) // timesteps
    return num_batches, num_batches * batch_size * timesteps


def stateful_layout(
    array: np.ndarray, batch_size: int, timesteps: int, *, drop: str = "end"
) -> np.ndarray:
    """Lays out a ``[time, ...]`` array in the stateful layout, without any shift.

    Use it for arrays aligned with the inputs (per-step masks, periodic targets):
    ``stateful_layout(mask, B, S)[k, j]`` covers the same time steps as
    ``stateful_layout(series, B, S)[k, j]``.

    Args:
      array: ``[time, ...]``; no rank or finiteness check (masks and labels are welcome).
      batch_size: number of streams ``B`` (rows per batch), >= 1.
      timesteps: steps per chunk ``S``, >= 1.
      drop: drop the remainder from the ``"end"`` (default) or the ``"start"``, or ``"pad"``
        the end with zeros (nothing dropped).

    Returns:
      A read-only view (a copy only if ``array`` is not contiguous, or padded) of shape
      ``[num_batches, B, S, ...]`` with ``num_batches = (time // B) // S`` (``ceil(time /
      (B * S))`` with ``"pad"``). No warning is issued here for the remainder
      (``time - num_batches * B * S`` steps).

    Raises:
      ValueError: ``B`` or ``S`` below 1, or ``time < B * S``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import stateful_layout
        >>> laid = stateful_layout(np.arange(12), batch_size=2, timesteps=3)   # no target shift
        >>> laid.shape                                             # [batches, streams, timesteps]
        (2, 2, 3)
        >>> laid[1]
        array([[ 3,  4,  5],
               [ 9, 10, 11]])
    """
    batch_size = check_positive_int("batch_size", batch_size)
    timesteps = check_positive_int("timesteps", timesteps)
    _check_drop(drop)
    a = np.asarray(array)
    if a.ndim < 1:
        raise ValueError(f"array must have a time axis, got a scalar of shape {a.shape}")
    length = a.shape[0]
    num_batches, used = _layout_counts(length, batch_size, timesteps, drop)
    if drop == "pad":
        if length == 0:
            raise ValueError("array must have at least one time step")
        a = np.concatenate([a, np.zeros((used - length,) + a.shape[1:], a.dtype)])
        length = used
    if num_batches == 0:
        raise ValueError(
            f"series is too short for the stateful layout: needs at least batch_size * "
            f"timesteps = {batch_size} * {timesteps} = {batch_size * timesteps} steps, "
            f"got {length}"
        )
    kept = a[:used] if drop == "end" else a[length - used :]
    rest = a.shape[1:]
    out = kept.reshape(batch_size, num_batches, timesteps, *rest).swapaxes(0, 1)
    out = out.view()
    out.flags.writeable = False
    return out


def stateful_batches(
    series: np.ndarray,
    batch_size: int,
    timesteps: int,
    *,
    targets: np.ndarray | None = None,
    drop: str = "end",
    nan_policy: str = "raise",
    warn: bool = True,
) -> tuple[np.ndarray, np.ndarray] | dict[str, np.ndarray]:
    """Cuts one long series into stateful batches ``(inputs, targets)``.

    >>> series = np.arange(11.0)
    >>> inputs, targets = stateful_batches(series, 2, 2, warn=False)   # 10 steps, 8 kept
    >>> inputs[:, :, :, 0].tolist()
    [[[0.0, 1.0], [4.0, 5.0]], [[2.0, 3.0], [6.0, 7.0]]]
    >>> padded = stateful_batches(series, 2, 2, drop="pad")            # all 10 kept
    >>> padded["inputs"][:, :, :, 0].tolist()
    [[[0.0, 1.0], [6.0, 7.0]], [[2.0, 3.0], [8.0, 9.0]], [[4.0, 5.0], [0.0, 0.0]]]
    >>> padded["seq_lengths"].tolist(), padded["mask"][2].tolist()
    ([[2, 2], [2, 2], [2, 0]], [[1.0, 1.0], [0.0, 0.0]])

    Row ``j`` of batch ``k + 1`` continues row ``j`` of batch ``k`` exactly (see the
    module docstring for the drawn layout)::

        inputs[k, j, t]  = s[j * n * S + k * S + t]        # n = num_batches, S = timesteps
        targets[k, j, t] = s[j * n * S + k * S + t + 1]    # next-step value

    With ``targets=`` the targets are taken from that array at the *same* index as the
    inputs (no shift: shift it yourself, or pass periodic targets from
    :func:`seqjax.data.periodic_targets` and lay their mask out with
    :func:`stateful_layout`).

    Args:
      series: ``[time]`` or ``[time, features]``; a ``[time]`` series gets ``features=1``.
      batch_size: number of streams ``B``, >= 1 (``1`` is the lecture's layout).
      timesteps: steps per chunk ``S``, >= 1.
      targets: optional ``[time]`` or ``[time, k]`` array, same length as ``series``.
      drop: the remainder (module docstring) is dropped from the ``"end"`` or ``"start"``, or
        ``"pad"``: nothing is dropped, the end is padded (validation and test).
      nan_policy: ``"raise"`` (default) or ``"propagate"``.
      warn: issue a :class:`RemainderWarning` when steps are dropped (once per split).

    Returns:
      ``inputs``: ``[num_batches, B, S, features]``; ``targets``: ``[num_batches, B, S, k]``
      (``k = features`` for next-step targets, ``k = 1`` for ``[time]`` targets). Both are
      read-only views of the inputs when those are contiguous. With ``drop="pad"``: the dict
      ``{"inputs", "targets", "mask": [num_batches, B, S] float32 (0 on padding),
      "seq_lengths": [num_batches, B] int32}``.

    Raises:
      ValueError: ``B`` or ``S`` below 1, a series shorter than ``B * S + 1`` steps
        (``B * S`` with explicit targets), rank other than 1 or 2, a ``targets`` length
        mismatch, or NaN/inf with ``nan_policy="raise"``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import stateful_batches
        >>> series = np.arange(13.0)                               # 12 steps plus one target step
        >>> inputs, targets = stateful_batches(series, batch_size=2, timesteps=3)
        >>> inputs.shape                                           # [batches, streams, timesteps, features]
        (2, 2, 3, 1)
        >>> inputs[0, :, :, 0]                                     # batch 0: streams 0 and 1
        array([[0., 1., 2.],
               [6., 7., 8.]])
        >>> inputs[1, :, :, 0]                                     # batch 1 continues each row
        array([[ 3.,  4.,  5.],
               [ 9., 10., 11.]])
        >>> targets[0, 0, :, 0]                                    # the next step of each input
        array([1., 2., 3.])
    """
    batch_size = check_positive_int("batch_size", batch_size)
    timesteps = check_positive_int("timesteps", timesteps)
    _check_drop(drop)
    x = as_series(series, "series", nan_policy=nan_policy)
    x = x[:, None] if x.ndim == 1 else x
    if targets is None:
        inputs_src, targets_src = x[:-1], x[1:]
        need = batch_size * timesteps + 1
        what = "batch_size * timesteps + 1 (one next-step target)"
    else:
        y = as_series(targets, "targets", nan_policy=nan_policy)
        check_same_length(x, y, "series", "targets")
        inputs_src, targets_src = x, (y[:, None] if y.ndim == 1 else y)
        need = batch_size * timesteps
        what = "batch_size * timesteps"
    if drop == "pad":
        need = 2 if targets is None else 1
        what = "one step and its target"
    if x.shape[0] < need:
        raise ValueError(
            f"series is too short for stateful_batches: needs at least {what} = "
            f"{batch_size} * {timesteps}{' + 1' if targets is None else ''} = {need} "
            f"steps, got {x.shape[0]}"
        )
    length = inputs_src.shape[0]
    if drop == "pad":
        valid = stateful_layout(np.ones(length, np.float32), batch_size, timesteps, drop="pad")
        return {
            "inputs": stateful_layout(inputs_src, batch_size, timesteps, drop="pad"),
            "targets": stateful_layout(targets_src, batch_size, timesteps, drop="pad"),
            "mask": valid,
            "seq_lengths": valid.sum(-1).astype(np.int32),
        }
    num_batches, used = _layout_counts(length, batch_size, timesteps)
    fingerprint = hashlib.blake2b(np.ascontiguousarray(inputs_src).tobytes(), digest_size=8)
    key = (length, used, batch_size, timesteps, drop, fingerprint.hexdigest())
    if warn and used < length and key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(
            RemainderWarning(
                f"stateful_batches dropped {length - used} of {length} steps at the {drop} "
                f"(kept {num_batches} batches x {batch_size} streams x {timesteps} steps); "
                "drop='pad' keeps them (for validation and test)"
            ),
            stacklevel=2,
        )
    return (
        stateful_layout(inputs_src, batch_size, timesteps, drop=drop),
        stateful_layout(targets_src, batch_size, timesteps, drop=drop),
    )


def stateful_restore(
    batched: np.ndarray,
    series_length: int | None = None,
    *,
    shift: int = 1,
    drop: str = "end",
    fill_value: float = np.nan,
) -> np.ndarray:
    """Inverse of the stateful layout: maps ``[num_batches, B, S, ...]`` back onto time.

    Args:
      batched: per-batch values (e.g. predictions) of shape ``[num_batches, B, S, ...]``.
      series_length: length ``T`` of the original series. ``None`` returns just the kept
        steps, ``[num_batches * B * S, ...]``, in time order.
      shift: time index of ``batched[0, 0, 0]`` when ``drop="end"``: ``1`` (default) for
        next-step targets/predictions of ``stateful_batches(series, ...)``, ``0`` for inputs,
        explicit ``targets=`` and arrays laid out with :func:`stateful_layout`.
      drop: the ``drop`` used to build the layout (``"pad"``: the padding is cut off).
      fill_value: value for the time steps without a prediction (the first ``shift`` steps
        and the dropped remainder).

    Returns:
      ``[T, ...]`` (or ``[num_batches * B * S, ...]``) where ``out[t]`` is the value
      predicted for ``series[t]``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import stateful_batches, stateful_restore
        >>> series = np.arange(13.0)
        >>> inputs, targets = stateful_batches(series, batch_size=2, timesteps=3)
        >>> stateful_restore(targets)[:, 0]                       # back on the time axis: steps 1..12
        array([ 1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12.])
    """
    _check_drop(drop)
    b = np.asarray(batched)
    if b.ndim < 3:
        raise ValueError(
            f"batched must have rank >= 3 ([num_batches, batch_size, timesteps, ...]), "
            f"got rank {b.ndim} with shape {b.shape}"
        )
    flat = b.swapaxes(0, 1).reshape(-1, *b.shape[3:])
    if series_length is None:
        return flat
    series_length = check_positive_int("series_length", series_length)
    shift = check_positive_int("shift", shift, minimum=0)
    if drop == "pad":  # the padding sits after the last real step
        flat = flat[: series_length - shift]
    used = flat.shape[0]
    if series_length - shift < used:
        raise ValueError(
            f"series_length - shift must be >= num_batches * batch_size * timesteps = {used}, "
            f"got {series_length} - {shift} = {series_length - shift}"
        )
    out = np.full(
        (series_length, *flat.shape[1:]),
        fill_value,
        dtype=np.result_type(flat.dtype, np.min_scalar_type(fill_value)),
    )
    start = shift if drop == "end" else series_length - used
    out[start : start + used] = flat
    return out

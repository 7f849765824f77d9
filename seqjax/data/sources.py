"""Adapters from random-access data sources (TFDS, Grain, lists) to seqjax batches.

A *data source* is anything with ``len(source)`` and ``source[i]`` returning a dict of
arrays (a record): ``tfds.data_source(...)`` / ``tfds.builder(...).as_data_source()``
(``array_record`` files, no TensorFlow needed), a Grain source, or a plain list of dicts.
Your own TFDS dataset works the same way. Records are read by index, one batch at a time,
so the whole dataset never has to fit in memory (except for :func:`source_series`).

Two shapes of data:

- **records that are whole series** (``seqjax_msft``, a dataset of many sensor
  recordings...): ``source_series(src, "values")`` returns the series as a list, ready for
  :func:`seqjax.data.stateful_iterator` (one long series) or
  :func:`seqjax.data.series_iterator` (many independent series).
- **records that are samples** (``seqjax_adding_problem``, windows...):
  :func:`source_minibatches` yields shuffled dict batches, padding variable-length
  sequence features and adding ``seq_lengths`` and ``mask``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from seqjax.data.checks import check_positive_int
from seqjax.data.iterators import _batch_indices

__all__ = ["DataSource", "source_minibatches", "source_series"]


class DataSource(Protocol):
    """Random access to records: ``len(source)`` and ``source[i] -> dict``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Mapping[str, Any]: ...


def _read(source: DataSource, indices: Sequence[int] | np.ndarray) -> list[Mapping[str, Any]]:
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems([int(i) for i in indices]))
    return [source[int(i)] for i in indices]


def source_series(
    source: DataSource, feature: str = "values", *, indices: Sequence[int] | None = None
) -> list[np.ndarray]:
    """Reads feature ``feature`` of every record (or of ``indices``) as a list of series.

    Returns:
      ``[np.ndarray]``, one ``[time_i, ...]`` array per record.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import source_series
        >>> source = [{"values": np.arange(3.0)}, {"values": np.arange(5.0)}]   # any len() + [i] -> dict
        >>> [s.shape for s in source_series(source)]
        [(3,), (5,)]
    """
    idx = range(len(source)) if indices is None else indices
    out = []
    for i, record in zip(idx, _read(source, list(idx)), strict=True):
        if feature not in record:
            raise ValueError(f"record {i} has no feature {feature!r}; it has {sorted(record)}")
        out.append(np.asarray(record[feature]))
    return out


def source_minibatches(
    source: DataSource,
    batch_size: int,
    *,
    features: Mapping[str, str] | Sequence[str] | None = None,
    sequence_features: Sequence[str] = (),
    pad_to: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    num_epochs: int | None = 1,
    drop_remainder: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """Yields shuffled dict minibatches read from a random-access data source.

    Args:
      source: a data source (module docstring).
      batch_size: ``B``, >= 1.
      features: which record features to emit, as ``{batch_key: record_key}`` (e.g.
        ``{"inputs": "inputs", "targets": "target"}``) or a list of keys kept as they are;
        default: all features of the records.
      sequence_features: batch keys whose leading axis has a variable length. They are
        right-padded with zeros to ``pad_to`` (give it for fixed shapes under ``jit``) or
        else to the longest in the batch; ``"seq_lengths"`` ``[B]`` int32 holds the
        lengths of the first one.
      shuffle, seed, num_epochs, drop_remainder: as in :func:`seqjax.data.minibatches`
        (epoch ``e`` is shuffled with ``default_rng([seed, e])``; the last incomplete batch
        is zero-padded unless dropped).

    Yields:
      ``{key: [B, ...]}`` plus ``"mask"``: ``[B, T]`` valid steps when ``"targets"`` is a
      sequence feature, else ``[B]`` valid rows; plus ``"seq_lengths"`` when there are
      sequence features.

    Raises:
      ValueError: a missing feature, a ragged feature not listed in ``sequence_features``,
        or a sequence longer than ``pad_to``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import source_minibatches
        >>> source = [{"x": np.full(2, i, np.float32), "y": np.float32(i)} for i in range(5)]
        >>> batches = list(source_minibatches(source, batch_size=2, shuffle=False))
        >>> [b["x"].shape for b in batches]
        [(2, 2), (2, 2), (2, 2)]
        >>> batches[0]["y"]
        array([0., 1.], dtype=float32)
    """
    batch_size = check_positive_int("batch_size", batch_size)
    if pad_to is not None:
        pad_to = check_positive_int("pad_to", pad_to)
    n = len(source)
    if n == 0:
        raise ValueError("source must contain at least one record, got 0")
    if features is None:
        keys = {k: k for k in _read(source, [0])[0]}
    elif isinstance(features, Mapping):
        keys = dict(features)
    else:
        keys = {k: k for k in features}
    unknown = [k for k in sequence_features if k not in keys]
    if unknown:
        raise ValueError(f"sequence_features {unknown} are not among the batch keys {list(keys)}")
    for idx in _batch_indices(
        n,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        drop_remainder=drop_remainder,
        what="records",
    ):
        records = _read(source, idx)
        yield _collate(records, idx, keys, sequence_features, pad_to, batch_size)


def _collate(records, idx, keys, sequence_features, pad_to, batch_size):
    rows = len(records)
    batch: dict[str, np.ndarray] = {}
    lengths = None
    for out_key, rec_key in keys.items():
        values = []
        for i, record in zip(idx, records, strict=True):
            if rec_key not in record:
                raise ValueError(f"record {i} has no feature {rec_key!r}; it has {sorted(record)}")
            values.append(np.asarray(record[rec_key]))
        if out_key in sequence_features:
            lens = np.array([v.shape[0] for v in values], np.int32)
            width = int(lens.max()) if pad_to is None else pad_to
            if lens.max() > width:
                raise ValueError(
                    f"feature {out_key!r} of record {idx[int(lens.argmax())]} has length "
                    f"{lens.max()}, longer than pad_to={pad_to}"
                )
            out = np.zeros((batch_size, width, *values[0].shape[1:]), values[0].dtype)
            for r, v in enumerate(values):
                out[r, : v.shape[0]] = v
            if lengths is None:
                lengths = np.zeros(batch_size, np.int32)
                lengths[:rows] = lens
        else:
            shapes = {v.shape for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"feature {out_key!r} has different shapes across records {sorted(shapes)}; "
                    "name it in sequence_features= to pad it"
                )
            out = np.zeros((batch_size, *values[0].shape), values[0].dtype)
            out[:rows] = np.stack(values)
        batch[out_key] = out
    valid = np.arange(batch_size) < rows
    if lengths is not None:
        batch["seq_lengths"] = lengths
    if "targets" in sequence_features:
        width = batch["targets"].shape[1]
        target_lengths = np.zeros(batch_size, np.int32)
        target_lengths[:rows] = [np.asarray(r[keys["targets"]]).shape[0] for r in records]
        batch["mask"] = np.arange(width) < target_lengths[:, None]
    else:
        batch["mask"] = valid
    return batch

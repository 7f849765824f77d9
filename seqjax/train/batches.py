"""The batch format of the train steps, and the batches of one epoch.

A **batch** is a dict of arrays (``B`` rows = streams, ``T`` steps, ``F`` input features):

- ``inputs`` ``[B, T, F]`` float, required.
- ``targets`` required: ``[B, T, O]`` many-to-many or ``[B, O]`` many-to-one; class labels
  ``[B, T]`` / ``[B]`` (integers) or one-hot.
- ``mask`` optional, ``[B, T]`` / ``[B]``: 1 where a target exists (periodic targets, padding);
  0 leaves the example out of the loss.
- ``seq_lengths`` optional, ``[B]`` int: valid steps of right-padded rows. Steps past a row's
  length do not advance its carry and have no loss.
- ``reset`` optional, ``[B]`` bool: row ``b`` starts from a zero carry (a new stream begins in
  this row, e.g. the previous series ended).

A **data source** for :func:`seqjax.train.fit` is one of:

- a dict of arrays with a leading ``num_batches`` axis, ``{"inputs": [N, B, T, F], ...}`` (the
  layout of ``seqjax.data``'s stateful batches: batch ``i + 1`` continues batch ``i`` row by row);
- a sequence of batch dicts;
- a callable ``epoch -> iterable of batches`` (generated data, custom shuffling).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

Batch = Mapping[str, Any]
BatchSource = Mapping[str, Any] | Sequence[Batch] | Callable[[int], Iterable[Batch]]
BATCH_KEYS = ("inputs", "targets", "mask", "seq_lengths", "reset")


def check_batch(batch: Batch) -> int:
    """Checks the keys and the leading shapes of a batch; returns its batch size ``B``."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"a batch is a dict with keys {BATCH_KEYS}; got {type(batch).__name__}.")
    missing = [k for k in ("inputs", "targets") if k not in batch]
    if missing:
        raise ValueError(f"the batch lacks {missing}; it has keys {sorted(batch)}.")
    unknown = sorted(set(batch) - set(BATCH_KEYS))
    if unknown:
        raise ValueError(f"unknown batch keys {unknown}; known: {BATCH_KEYS}.")
    shape = np.shape(batch["inputs"])
    if len(shape) != 3:
        raise ValueError(f"batch['inputs'] must be [batch, time, features]; got shape {shape}.")
    size = shape[0]
    for key in ("targets", "mask", "seq_lengths", "reset"):
        if key in batch and np.shape(batch[key])[:1] != (size,):
            raise ValueError(
                f"batch[{key!r}] must have {size} rows like batch['inputs']; got shape "
                f"{np.shape(batch[key])}."
            )
    for key in ("seq_lengths", "reset"):
        if key in batch and np.ndim(batch[key]) != 1:
            raise ValueError(f"batch[{key!r}] must have shape [batch]; got {np.shape(batch[key])}.")
    return size


def batch_size(batch: Batch) -> int:
    """The number of rows ``B`` of a batch."""
    return int(np.shape(batch["inputs"])[0])


def num_batches(data: BatchSource) -> int | None:
    """Batches per epoch, or None for a callable source (unknown until iterated)."""
    if isinstance(data, Mapping):
        return int(np.shape(data["inputs"])[0])
    if callable(data):
        return None
    return len(data)


def _shuffled_rows(data: Mapping[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Permutes the rows of all ``N * B`` examples of a stacked source and regroups them."""
    arrays = {k: np.asarray(v) for k, v in data.items()}
    n, b = arrays["inputs"].shape[:2]
    order = rng.permutation(n * b)
    return {
        k: v.reshape((n * b,) + v.shape[2:])[order].reshape((n, b) + v.shape[2:])
        for k, v in arrays.items()
    }


def epoch_batches(
    data: BatchSource,
    epoch: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    start: int = 0,
) -> Iterator[Batch]:
    """The batches of one epoch, in order, from batch ``start`` on (to resume mid-epoch).

    With ``shuffle`` a stacked source has its ``N * B`` rows permuted and a sequence its batch
    order, by ``numpy.random.default_rng([seed, epoch])``: the same order when resumed.
    A callable source is asked for ``data(epoch)`` and shuffles itself.
    """
    if isinstance(data, Mapping):
        if shuffle:
            data = _shuffled_rows(data, np.random.default_rng([seed, epoch]))
        count = int(np.shape(data["inputs"])[0])
        return ({k: v[i] for k, v in data.items()} for i in range(start, count))
    if callable(data):
        if shuffle:
            raise ValueError("shuffle=True needs arrays or a list of batches; a callable shuffles.")
        return itertools.islice(iter(data(epoch)), start, None)
    order = np.arange(len(data))
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(data))
    return (data[int(i)] for i in order[start:])


def first_batch(data: BatchSource) -> Batch:
    """The first batch of epoch 0 (to build the parameters and the carry)."""
    return jax.tree.map(np.asarray, next(iter(epoch_batches(data, 0))))

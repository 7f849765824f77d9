"""The batch format of the train steps, and the batches of one epoch.

A **batch** is a dict of arrays (``B`` rows = streams, ``T`` steps, ``F`` input features):

- ``inputs`` ``[B, T, F]`` float, required; or images ``[B, H, W, C]`` for a model without
  carry (then ``seq_lengths`` and ``reset`` do not apply).
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
- a callable ``epoch -> iterable of batches`` (generated data, custom shuffling), such as
  :class:`FreshBatches`: a new batch for every step, a pure function of the step.
"""

from __future__ import annotations

import dataclasses
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
    if len(shape) not in (3, 4):
        raise ValueError(
            "batch['inputs'] must be [batch, time, features] (sequences) or [batch, height, "
            f"width, channels] (images); got shape {shape}."
        )
    if len(shape) == 4:
        sequence_only = sorted({"seq_lengths", "reset"} & set(batch))
        if sequence_only:
            raise ValueError(
                f"batch keys {sequence_only} need sequences [batch, time, features]; got images "
                f"of shape {shape}."
            )
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


@dataclasses.dataclass(frozen=True)
class FreshBatches:
    """A training source that draws a new batch for every step (synthetic tasks).

    ``make_batch(step)`` must be a pure function of the global step (e.g. seeded with
    ``numpy.random.default_rng([seed, step])``), so that a resumed run sees the same batches. An
    "epoch" is ``steps_per_epoch`` steps: :func:`seqjax.train.fit` validates, checkpoints and
    checks early stopping after each, so it is the evaluation interval of a step budget
    (``fit(..., num_steps=...)``).

    >>> source = FreshBatches(lambda step: {"inputs": np.full((1, 1, 1), step)}, steps_per_epoch=3)
    >>> [int(b["inputs"][0, 0, 0]) for b in source(1)]   # the steps of epoch 1
    [3, 4, 5]
    """

    make_batch: Callable[[int], Batch]
    steps_per_epoch: int

    def __post_init__(self) -> None:
        if int(self.steps_per_epoch) < 1:
            raise ValueError(f"steps_per_epoch must be >= 1; got {self.steps_per_epoch}.")

    def __call__(self, epoch: int) -> Iterator[Batch]:
        first = epoch * self.steps_per_epoch
        return (self.make_batch(first + i) for i in range(self.steps_per_epoch))


def num_batches(data: BatchSource) -> int | None:
    """Batches per epoch, or None for a callable source (unknown until iterated)."""
    if isinstance(data, Mapping):
        return int(np.shape(data["inputs"])[0])
    if isinstance(data, FreshBatches):
        return int(data.steps_per_epoch)
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
    if isinstance(data, FreshBatches):  # skip to ``start`` without drawing the skipped batches
        if shuffle:
            raise ValueError(
                "shuffle=True needs arrays or a list of batches; FreshBatches are new."
            )
        first = epoch * data.steps_per_epoch
        return (data.make_batch(first + i) for i in range(start, data.steps_per_epoch))
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

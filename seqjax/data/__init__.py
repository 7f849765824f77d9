"""Data preparation for sequence learning, NumPy on the host (no TensorFlow needed).

Modules (one concept each):

- ``windows``: sliding windows ``(inputs, targets)`` for 1D CNNs / forecasters.
- ``stateful``: one long series in the stateful layout ``[batches, streams, timesteps, F]``.
- ``series``: many independent series in stateful batches with resets and lengths.
- ``iterators``: dict batches for a JAX training loop.
- ``examples``: independent examples (images, windows) in padded batches with a mask.
- ``digits``: scikit-learn's digits as upsampled images, a transfer-learning task (needs
  scikit-learn; import ``seqjax.data.digits`` explicitly).
- ``synthetic``: the adding problem (Hochreiter & Schmidhuber 1997), copy task, random walk.
- ``real``: real series shipped by pmdarima/statsmodels (extra ``seqjax[datasets]``, lazy).
- ``sources``: random-access data sources (TFDS ``data_source``, lists) -> seqjax batches.
- ``tfds_builders``: TFDS builders (extra ``seqjax[tfds]``; import it explicitly).
- ``normalize``: per-batch standardisation, a train-only ``Standardizer``.
- ``splits``: chronological train/val/test for series, seeded random for samples.
- ``targets``: periodic/sparse targets with masks for masked losses.
- ``missing``: filling NaN gaps.
- ``checks``: input validation (``ValueError`` naming expected and actual).
"""

from seqjax.data.checks import as_series, check_finite
from seqjax.data.examples import padded_batches
from seqjax.data.iterators import minibatches, series_iterator, stateful_iterator
from seqjax.data.missing import interpolate_missing
from seqjax.data.normalize import Standardizer, standardize_batch
from seqjax.data.real import (
    REAL_DATASETS,
    TimeSeries,
    load_co2,
    load_msft,
    load_nile,
    load_series,
    load_sunspots,
)
from seqjax.data.series import SeriesBatches, series_batches
from seqjax.data.sources import DataSource, source_minibatches, source_series
from seqjax.data.splits import chronological_split, random_split, split_points
from seqjax.data.stateful import (
    RemainderWarning,
    stateful_batches,
    stateful_layout,
    stateful_restore,
)
from seqjax.data.synthetic import adding_problem, copy_task, random_walk
from seqjax.data.targets import lengths_mask, periodic_mask, periodic_targets, sparse_targets
from seqjax.data.windows import num_windows, windows

__all__ = [
    "DataSource",
    "REAL_DATASETS",
    "RemainderWarning",
    "SeriesBatches",
    "Standardizer",
    "TimeSeries",
    "adding_problem",
    "as_series",
    "check_finite",
    "chronological_split",
    "copy_task",
    "interpolate_missing",
    "lengths_mask",
    "load_co2",
    "load_msft",
    "load_nile",
    "load_series",
    "load_sunspots",
    "minibatches",
    "num_windows",
    "padded_batches",
    "periodic_mask",
    "periodic_targets",
    "random_split",
    "random_walk",
    "series_batches",
    "series_iterator",
    "source_minibatches",
    "source_series",
    "sparse_targets",
    "split_points",
    "standardize_batch",
    "stateful_batches",
    "stateful_iterator",
    "stateful_layout",
    "stateful_restore",
    "windows",
]

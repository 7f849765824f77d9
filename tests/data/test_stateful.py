import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import (
    RemainderWarning,
    stateful_batches,
    stateful_iterator,
    stateful_layout,
    stateful_restore,
)
from seqjax.data import stateful as stateful_module

SETTINGS = settings(max_examples=50, deadline=None)


@pytest.fixture(autouse=True)
def _fresh_warning_registry():
    """The remainder warning is issued once per split and process; each test starts afresh."""
    stateful_module._WARNED.clear()


@SETTINGS
@given(
    length=st.integers(2, 120),
    batch_size=st.integers(1, 6),
    timesteps=st.integers(1, 12),
    features=st.sampled_from([None, 1, 3]),
)
def test_pad_keeps_every_step_masks_the_padding_and_holds_lengths(
    length, batch_size, timesteps, features
):
    shape = (length,) if features is None else (length, features)
    series = np.arange(1, np.prod(shape) + 1, dtype=np.float64).reshape(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, nothing to warn about
        laid = stateful_batches(series, batch_size, timesteps, drop="pad")
    x = series.reshape(length, -1)
    used = length - 1  # next-step targets
    n = -(-used // (batch_size * timesteps))
    assert laid["inputs"].shape == (n, batch_size, timesteps, x.shape[1])
    # The reference layout, element by element (a NumPy loop over the drawn formula).
    for k in range(n):
        for j in range(batch_size):
            for t in range(timesteps):
                index = j * n * timesteps + k * timesteps + t
                valid = index < used
                assert laid["mask"][k, j, t] == float(valid)
                expected = x[index] if valid else 0.0
                np.testing.assert_array_equal(laid["inputs"][k, j, t], expected)
                np.testing.assert_array_equal(
                    laid["targets"][k, j, t], x[index + 1] if valid else 0.0
                )
    np.testing.assert_array_equal(laid["seq_lengths"], laid["mask"].sum(-1))
    assert laid["mask"].sum() == used  # every step scored once
    restored = stateful_restore(laid["targets"], length, drop="pad")
    np.testing.assert_array_equal(restored[1:], x[1:])


def test_the_remainder_warning_is_issued_once_per_split_not_per_epoch():
    series = np.arange(23.0)
    with pytest.warns(RemainderWarning, match="drop='pad' keeps them") as record:
        for _ in range(3):  # three epochs over the same split
            list(stateful_iterator(series, 2, 3))
    assert len([w for w in record if issubclass(w.category, RemainderWarning)]) == 1
    with pytest.warns(RemainderWarning):  # another split warns again
        stateful_batches(np.arange(23.0) + 1, 2, 3)


def test_stateful_iterator_pads_with_masks_and_lengths():
    series = np.arange(23.0)  # 22 pairs; B=2, S=3: 4 batches, 24 slots, 2 padded
    batches = list(stateful_iterator(series, 2, 3, drop="pad"))
    assert len(batches) == 4
    assert sum(b["mask"].sum() for b in batches) == 22
    assert batches[-1]["seq_lengths"].tolist() == [3, 1]
    assert batches[0]["reset"].all() and not batches[1]["reset"].any()


@SETTINGS
@given(
    length=st.integers(2, 200),
    batch_size=st.integers(1, 6),
    timesteps=st.integers(1, 12),
    features=st.sampled_from([None, 1, 2]),
    drop=st.sampled_from(["end", "start"]),
)
def test_rows_continue_streams_and_rebuild_series(length, batch_size, timesteps, features, drop):
    shape = (length,) if features is None else (length, features)
    series = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    if length < batch_size * timesteps + 1:
        with pytest.raises(ValueError, match="batch_size \\* timesteps \\+ 1"):
            stateful_batches(series, batch_size, timesteps)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RemainderWarning)
        inputs, targets = stateful_batches(series, batch_size, timesteps, drop=drop)
    num_batches = inputs.shape[0]
    feat = 1 if features is None else features
    assert inputs.shape == targets.shape == (num_batches, batch_size, timesteps, feat)
    series2 = series.reshape(length, feat)
    used = num_batches * batch_size * timesteps
    offset = 0 if drop == "end" else (length - 1) - used
    # Row j over consecutive batches rebuilds stream j ...
    streams = [
        np.concatenate([inputs[k, j] for k in range(num_batches)]) for j in range(batch_size)
    ]
    stream_len = num_batches * timesteps
    for j, stream in enumerate(streams):
        start = offset + j * stream_len
        np.testing.assert_array_equal(stream, series2[start : start + stream_len])
    # ... and the streams together rebuild the series minus the documented remainder.
    np.testing.assert_array_equal(np.concatenate(streams), series2[offset : offset + used])
    assert (length - 1) - used < batch_size * timesteps
    # Targets are the next-step values.
    np.testing.assert_array_equal(
        stateful_restore(targets), series2[offset + 1 : offset + used + 1]
    )
    # The inverse puts them back on the time axis.
    restored = stateful_restore(targets, length, shift=1, drop=drop)
    valid = ~np.isnan(restored[:, 0])
    assert valid.sum() == used
    np.testing.assert_array_equal(restored[valid], series2[valid])


def test_lecture_layout_batch_size_one():
    series = np.arange(13.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 13 steps = 12 pairs: nothing dropped
        inputs, targets = stateful_batches(series, 1, 4)
    assert inputs.shape == (3, 1, 4, 1)
    np.testing.assert_array_equal(inputs[:, 0, :, 0], np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(targets[:, 0, :, 0], np.arange(1, 13).reshape(3, 4))


def test_remainder_warning_and_drop_start():
    series = np.arange(23.0)
    with pytest.warns(RemainderWarning, match="dropped 4 of 22 steps at the end"):
        inputs, _ = stateful_batches(series, 2, 3)
    assert inputs[0, 0, 0, 0] == 0
    with pytest.warns(RemainderWarning, match="at the start"):
        inputs, targets = stateful_batches(series, 2, 3, drop="start")
    assert targets[-1, -1, -1, 0] == 22  # the most recent value is kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stateful_batches(series, 2, 3, warn=False)


def test_zero_copy_and_read_only():
    series = np.random.default_rng(0).normal(size=(1001, 3)).astype(np.float32)
    inputs, targets = stateful_batches(series, 4, 25)
    assert np.shares_memory(inputs, series) and np.shares_memory(targets, series)
    assert not inputs.flags.writeable


def test_explicit_targets_and_layout_of_mask():
    series = np.arange(24.0)
    labels = -np.arange(24)
    mask = np.arange(24) % 4 == 3
    inputs, targets = stateful_batches(series, 2, 4, targets=labels)
    laid_mask = stateful_layout(mask, 2, 4)
    assert targets.shape == (3, 2, 4, 1) and laid_mask.shape == (3, 2, 4)
    np.testing.assert_array_equal(targets[..., 0], -inputs[..., 0])
    np.testing.assert_array_equal(laid_mask, inputs[..., 0] % 4 == 3)
    restored = stateful_restore(targets, 24, shift=0)
    np.testing.assert_array_equal(restored[:, 0], labels)
    with pytest.raises(ValueError, match="targets must have the same length.*expected 24, got 23"):
        stateful_batches(series, 2, 4, targets=labels[:-1])


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 4), "batch_size must be an integer >= 1, got 0"),
        ((2, 0), "timesteps must be an integer >= 1, got 0"),
        ((4, 3), "batch_size \\* timesteps \\+ 1 .* = 13 steps, got 12"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        stateful_batches(np.arange(12.0), *args)


def test_nan_and_rank_errors():
    series = np.ones((30, 2))
    series[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN at index \\(7, 1\\)"):
        stateful_batches(series, 2, 3)
    with pytest.raises(ValueError, match="rank 1 \\(\\[time\\]\\) or rank 2"):
        stateful_batches(np.ones((4, 5, 6)), 1, 2)
    with pytest.raises(ValueError, match="drop must be"):
        stateful_batches(np.ones(30), 1, 2, drop="middle")

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import RemainderWarning, stateful_batches, stateful_layout, stateful_restore

SETTINGS = settings(max_examples=50, deadline=None)


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

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import (
    interpolate_missing,
    lengths_mask,
    periodic_mask,
    periodic_targets,
    sparse_targets,
    stateful_batches,
    stateful_layout,
)

SETTINGS = settings(max_examples=50, deadline=None)


@SETTINGS
@given(periods=st.integers(1, 30), period=st.integers(1, 30), data=st.data())
def test_masks_match_periodic_targets(periods, period, data):
    phase = data.draw(st.none() | st.integers(0, period - 1))
    labels = np.arange(1, periods + 1, dtype=np.float32)
    targets, mask = periodic_targets(labels, period, phase=phase)
    p = period - 1 if phase is None else phase
    assert targets.shape == mask.shape == (periods * period,)
    np.testing.assert_array_equal(np.flatnonzero(mask), p + period * np.arange(periods))
    np.testing.assert_array_equal(targets[mask], labels)
    assert (targets[~mask] == 0).all()
    np.testing.assert_array_equal(mask, periodic_mask(periods * period, period, phase=phase))


def test_one_label_per_day_through_the_stateful_layout():
    hours = 24 * 10
    series = np.random.default_rng(0).normal(size=(hours, 3))
    daily = np.arange(10.0)
    targets, mask = periodic_targets(daily, 24)
    inputs, laid_targets = stateful_batches(series, 2, 12, targets=targets)
    laid_mask = stateful_layout(mask, 2, 12)
    assert laid_mask.shape == laid_targets.shape[:-1] == (10, 2, 12)
    assert laid_mask.sum() == 10
    np.testing.assert_array_equal(np.sort(laid_targets[..., 0][laid_mask]), daily)


def test_periodic_targets_errors():
    with pytest.raises(
        ValueError, match="30 with period 7 and phase 6 has 4 label positions, got 5"
    ):
        periodic_targets(np.ones(5), 7, length=30)
    with pytest.raises(ValueError, match="phase must be in .* = \\[0, 7\\), got 7"):
        periodic_mask(30, 7, phase=7)
    with pytest.raises(ValueError, match="period must be an integer >= 1"):
        periodic_mask(30, 0)


def test_sparse_targets():
    targets, mask = sparse_targets(10, np.array([7, 2]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert targets.shape == (10, 2)
    np.testing.assert_array_equal(np.flatnonzero(mask), [2, 7])
    np.testing.assert_array_equal(targets[7], [1.0, 2.0])
    with pytest.raises(ValueError, match="positions must lie in \\[0, 10\\), got 10"):
        sparse_targets(10, np.array([10]), np.ones(1))
    with pytest.raises(ValueError, match="distinct"):
        sparse_targets(10, np.array([1, 1]), np.ones(2))
    with pytest.raises(ValueError, match="expected 2, got shape \\(3,\\)"):
        sparse_targets(10, np.array([1, 2]), np.ones(3))


def test_lengths_mask():
    np.testing.assert_array_equal(
        lengths_mask(np.array([0, 2, 3]), 3), [[0, 0, 0], [1, 1, 0], [1, 1, 1]]
    )
    with pytest.raises(ValueError, match="max_length=3"):
        lengths_mask(np.array([4]), 3)


def test_interpolate_missing():
    x = np.array([np.nan, 1.0, np.nan, 3.0, np.nan])
    np.testing.assert_array_equal(interpolate_missing(x), [1, 1, 2, 3, 3])
    np.testing.assert_array_equal(interpolate_missing(x, "ffill"), [1, 1, 1, 3, 3])
    assert np.isnan(x[0])  # the input is not modified
    two = np.c_[x, np.arange(5.0)]
    np.testing.assert_array_equal(interpolate_missing(two)[:, 0], [1, 1, 2, 3, 3])
    with pytest.raises(ValueError, match="feature 0 is NaN at every step"):
        interpolate_missing(np.full(3, np.nan))

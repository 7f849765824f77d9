import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import num_windows, windows

SETTINGS = settings(max_examples=50, deadline=None)


def naive_windows(series, window, horizon, stride):
    xs, ys = [], []
    i = 0
    while i * stride + window + horizon - 1 < len(series):
        xs.append(series[i * stride : i * stride + window])
        ys.append(series[i * stride + window + horizon - 1])
        i += 1
    return np.array(xs), np.array(ys)


@SETTINGS
@given(
    length=st.integers(2, 60),
    window=st.integers(1, 10),
    horizon=st.integers(1, 5),
    stride=st.integers(1, 4),
    features=st.sampled_from([None, 1, 3]),
)
def test_windows_equals_naive_loop(length, window, horizon, stride, features):
    shape = (length,) if features is None else (length, features)
    series = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    if length < window + horizon:
        with pytest.raises(ValueError, match="window \\+ horizon"):
            windows(series, window, horizon, stride)
        return
    inputs, targets = windows(series, window, horizon, stride)
    want_x, want_y = naive_windows(series, window, horizon, stride)
    np.testing.assert_array_equal(inputs, want_x)
    np.testing.assert_array_equal(targets, want_y)
    assert len(inputs) == num_windows(length, window, horizon, stride)


def test_docstring_example():
    inputs, targets = windows(np.arange(7), window=3, horizon=2)
    np.testing.assert_array_equal(inputs, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(targets, [4, 5, 6])


def test_next_step_target_is_not_inside_window():
    inputs, targets = windows(np.arange(10), window=4)
    np.testing.assert_array_equal(targets, inputs[:, -1] + 1)


def test_zero_copy_views():
    series = np.random.default_rng(0).normal(size=(10_000, 4))
    inputs, targets = windows(series, window=500)
    assert inputs.shape == (9_500, 500, 4)
    assert np.shares_memory(inputs, series) and np.shares_memory(targets, series)
    assert not inputs.flags.writeable and not targets.flags.writeable


def test_explicit_targets():
    series = np.arange(20.0).reshape(10, 2)
    labels = np.arange(10) * 10
    inputs, targets = windows(series, 3, targets=labels)
    np.testing.assert_array_equal(targets, labels[3:])
    with pytest.raises(ValueError, match="expected 10, got 9"):
        windows(series, 3, targets=labels[:9])


def test_nan_policies():
    series = np.arange(12.0)
    series[5] = np.nan
    with pytest.raises(ValueError, match="NaN at index 5"):
        windows(series, 3)
    inputs, targets = windows(series, 3, nan_policy="propagate")
    assert np.isnan(targets[2])
    inputs, targets = windows(series, 3, nan_policy="omit")
    assert np.isfinite(inputs).all() and np.isfinite(targets).all()
    np.testing.assert_array_equal(targets, [3, 4, 9, 10, 11])
    series[5] = np.inf
    with pytest.raises(ValueError, match="inf at index 5"):
        windows(series, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(window=0), "window must be an integer >= 1, got 0"),
        (dict(window=2, horizon=0), "horizon must be an integer >= 1"),
        (dict(window=2, stride=0), "stride must be an integer >= 1"),
        (dict(window=2.5), "window must be an integer"),
        (dict(window=9, horizon=2), "at least window \\+ horizon = 9 \\+ 2 = 11 steps, got 10"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        windows(np.arange(10.0), **kwargs)


def test_bad_rank():
    with pytest.raises(ValueError, match="got rank 3 with shape \\(4, 2, 2\\)"):
        windows(np.zeros((4, 2, 2)), 2)

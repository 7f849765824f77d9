import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import series_batches

SETTINGS = settings(max_examples=50, deadline=None)


def make_series(lengths, features):
    out = []
    for i, n in enumerate(lengths):
        s = 1000.0 * (i + 1) + np.arange(n, dtype=np.float64)
        out.append(s if features is None else np.repeat(s[:, None], features, axis=1))
    return out


@SETTINGS
@given(
    lengths=st.lists(st.integers(2, 40), min_size=1, max_size=12),
    batch_size=st.integers(1, 5),
    timesteps=st.integers(1, 9),
    features=st.sampled_from([None, 2]),
    epoch=st.integers(0, 3),
)
def test_each_series_is_one_row_run_with_state_reset_between(
    lengths, batch_size, timesteps, features, epoch
):
    data = make_series(lengths, features)
    sb = series_batches(data, batch_size, timesteps, seed=7, epoch=epoch)
    n, b, s, f = sb.inputs.shape
    assert (b, s, f) == (batch_size, timesteps, features or 1)
    assert sb.targets.shape == sb.inputs.shape and sb.mask.shape == (n, b, s)
    np.testing.assert_array_equal(sb.mask, np.arange(s) < sb.seq_lengths[..., None])
    assert (sb.inputs[~sb.mask] == 0).all()
    seen = []
    for j in range(b):
        k = 0
        while k < n:
            i = sb.series_index[k, j]
            assert sb.reset[k, j]  # a new series (or padding) starts with a reset
            if i < 0:
                assert sb.seq_lengths[k, j] == 0
                k += 1
                continue
            run = [k]
            while k + 1 < n and sb.series_index[k + 1, j] == i and not sb.reset[k + 1, j]:
                k += 1
                run.append(k)
            k += 1
            rebuilt_x = np.concatenate([sb.inputs[r, j, : sb.seq_lengths[r, j]] for r in run])
            rebuilt_y = np.concatenate([sb.targets[r, j, : sb.seq_lengths[r, j]] for r in run])
            full = data[i].reshape(lengths[i], -1)
            np.testing.assert_array_equal(rebuilt_x, full[:-1])
            np.testing.assert_array_equal(rebuilt_y, full[1:])
            np.testing.assert_array_equal(sb.start[run, j], np.arange(len(run)) * timesteps)
            seen.append(int(i))
    assert sorted(seen) == list(range(len(lengths)))  # every series exactly once per epoch


def test_reshuffled_every_epoch_and_reproducible():
    data = make_series(range(2, 40), None)
    a0 = series_batches(data, 4, 5, seed=1, epoch=0)
    a0_again = series_batches(data, 4, 5, seed=1, epoch=0)
    a1 = series_batches(data, 4, 5, seed=1, epoch=1)
    np.testing.assert_array_equal(a0.series_index, a0_again.series_index)
    assert not np.array_equal(a0.series_index[0], a1.series_index[0])
    fixed = series_batches(data, 4, 5, shuffle=False)
    assert list(fixed.series_index[0]) == [0, 1, 2, 3]


def test_explicit_targets():
    data = [np.arange(5.0), np.arange(3.0)]
    labels = [np.arange(5) * 2, np.arange(3) * 2]
    sb = series_batches(data, 2, 4, targets=labels, shuffle=False)
    np.testing.assert_array_equal(sb.targets[..., 0], 2 * sb.inputs[..., 0])
    assert sb.seq_lengths.sum() == 8
    with pytest.raises(
        ValueError, match="targets\\[1\\] must have the same length as series\\[1\\]"
    ):
        series_batches(data, 2, 4, targets=[labels[0], labels[1][:2]])
    with pytest.raises(ValueError, match="one array per series: expected 2, got 1"):
        series_batches(data, 2, 4, targets=labels[:1])


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        ([np.arange(5.0)], dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        ([np.arange(5.0)], dict(timesteps=-1), "timesteps must be an integer >= 1, got -1"),
        ([], {}, "at least one series"),
        ([np.arange(5.0), np.ones(1)], {}, "series\\[1\\] is too short: needs at least 2 steps"),
        ([np.ones((5, 2)), np.ones((5, 3))], {}, "series\\[0\\] has 2 .* series\\[1\\] has 3"),
        ([np.ones((5, 2, 2))], {}, "series\\[0\\] must have rank 1"),
        (
            [np.array([1.0, np.inf, 2.0])],
            {},
            "series\\[0\\] must be finite, but contains inf at index 1",
        ),
    ],
)
def test_bad_input(data, kwargs, match):
    args = dict(batch_size=2, timesteps=3) | kwargs
    with pytest.raises(ValueError, match=match):
        series_batches(data, **args)

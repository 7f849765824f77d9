import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from seqjax.data import chronological_split, random_split, split_points

SETTINGS = settings(max_examples=50, deadline=None)


@st.composite
def fractions(draw):
    a = draw(st.integers(1, 98))
    b = draw(st.integers(1, 99 - a))
    return a / 100, b / 100, (100 - a - b) / 100


@SETTINGS
@given(length=st.integers(3, 5000), fr=fractions())
def test_chronological_splits_never_overlap_and_cover(length, fr):
    try:
        parts = chronological_split(np.arange(length), *fr)
    except ValueError as e:
        assert "too short" in str(e)
        return
    np.testing.assert_array_equal(np.concatenate(parts), np.arange(length))
    assert all(len(p) > 0 for p in parts)


@SETTINGS
@given(n=st.integers(3, 5000), fr=fractions(), seed=st.integers(0, 2**31))
def test_random_splits_never_overlap_and_cover(n, fr, seed):
    try:
        parts = random_split(n, *fr, seed=seed)
    except ValueError:
        assume(False)
    joined = np.concatenate(parts)
    assert len(joined) == n and len(np.unique(joined)) == n
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))


def test_default_split_is_75_15_10():
    train, val, test = chronological_split(np.arange(1000))
    assert (len(train), len(val), len(test)) == (750, 150, 100)
    assert train[-1] < val[0] and val[-1] < test[0]


def test_random_split_is_seeded():
    a = random_split(100, seed=3)
    b = random_split(100, seed=3)
    c = random_split(100, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_gap():
    train, val, test = split_points(100, 0.7, 0.2, 0.1, gap=5)
    assert (train, val, test) == (slice(0, 70), slice(75, 90), slice(95, 100))


@pytest.mark.parametrize(
    "args, match",
    [
        ((100, 0.8, 0.15, 0.1), "sum to 1"),
        ((100, -0.1, 1.0, 0.1), "train must be a fraction"),
        ((5, 0.8, 0.1, 0.1), "too short to split: val=0.1 of 5 steps"),
    ],
)
def test_bad_splits(args, match):
    with pytest.raises(ValueError, match=match):
        split_points(*args)

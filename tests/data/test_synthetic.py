import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.data import adding_problem, copy_task, lengths_mask, random_walk

SETTINGS = settings(max_examples=50, deadline=None)


def is_x1_x2(x1, x2, T):
    """X1 among the first ten; X2 among the first T/2 - 1 pairs still unmarked."""
    candidates = [t for t in range(T) if t != x1][: T // 2 - 1]
    return x1 < 10 and x2 in candidates


def check_adding(inputs, targets, lengths, T, variable_length):
    n = len(targets)
    t_max = T + T // 10 if variable_length else T
    assert inputs.shape == (n, t_max, 2) and inputs.dtype == np.float32
    assert targets.shape == (n,) and targets.dtype == np.float32
    assert lengths.shape == (n,) and lengths.dtype == np.int32
    assert ((lengths >= T) & (lengths <= t_max)).all()
    values, markers = inputs[..., 0], inputs[..., 1]
    valid = lengths_mask(lengths, t_max)
    assert (inputs[~valid] == 0).all()  # right padding
    assert (np.abs(values) <= 1).all()
    assert set(np.unique(markers)) <= {-1.0, 0.0, 1.0}
    assert ((markers == 1.0).sum(axis=1) == 2).all()  # exactly two marked pairs
    for i in range(n):
        pos = np.flatnonzero(markers[i] == 1.0)
        assert any(is_x1_x2(a, b, T) for a, b in (pos, pos[::-1]))
        last = lengths[i] - 1
        assert markers[i, last] == -1.0  # last pair: -1, never marked
        minus = np.flatnonzero(markers[i] == -1.0)
        if 0 in pos:
            assert values[i, 0] == 0.0  # the paper's "X1 is set to zero"
            np.testing.assert_array_equal(minus, [last])
        else:
            np.testing.assert_array_equal(minus, [0, last])
        want = 0.5 + values[i, pos].astype(np.float64).sum() / 4.0
        np.testing.assert_allclose(targets[i], want, rtol=1e-6)
    assert ((targets >= 0) & (targets <= 1)).all()


@SETTINGS
@given(
    T=st.integers(11, 300),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    variable_length=st.booleans(),
)
def test_adding_problem_matches_paper_definition(T, n, seed, variable_length):
    inputs, targets, lengths = adding_problem(n, T, seed=seed, variable_length=variable_length)
    check_adding(inputs, targets, lengths, T, variable_length)


def test_adding_problem_distributions():
    T = 100
    inputs, targets, lengths = adding_problem(20_000, T, rng=np.random.default_rng(0))
    check_adding(inputs[:300], targets[:300], lengths[:300], T, True)
    # lengths uniform over {100, ..., 110}
    counts = np.bincount(lengths - T, minlength=11)
    assert len(counts) == 11 and counts.min() > 20_000 / 11 * 0.85
    markers = inputs[..., 1]
    # positions: first marker among the first 10; second among the first T/2 - 1 unmarked
    marked = markers == 1.0
    assert marked[:, : T // 2].sum() == 2 * 20_000
    assert marked[:, :10].any(axis=1).all()
    assert marked[:, T // 2 - 1].any()  # reachable: X1 < T/2 - 1 frees one more slot
    # the rare case "first pair gets marked" happens (~ 1/10 + 1/49) and is handled
    first_marked = marked[:, 0].mean()
    assert 0.09 < first_marked < 0.15
    assert (inputs[marked[:, 0], 0, 0] == 0).all()
    # the target spreads over [0, 1] around 0.5
    assert abs(targets.mean() - 0.5) < 0.01 and targets.min() < 0.1 and targets.max() > 0.9


def test_adding_problem_rng_and_errors():
    a = adding_problem(5, 20, seed=3)
    b = adding_problem(5, 20, seed=3)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="either rng= or seed="):
        adding_problem(5, 20, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(ValueError, match="length must be an integer >= 11, got 10"):
        adding_problem(5, 10, seed=0)
    with pytest.raises(ValueError, match="num_sequences must be an integer >= 1, got 0"):
        adding_problem(0, 100, seed=0)


def test_copy_task():
    inputs, targets, mask = copy_task(50, num_symbols=5, delay=20, alphabet_size=8, seed=0)
    assert inputs.shape == targets.shape == mask.shape == (50, 30)
    np.testing.assert_array_equal(targets[:, 25:], inputs[:, :5])
    assert ((inputs[:, :5] >= 1) & (inputs[:, :5] <= 8)).all()
    assert (inputs[:, 24] == 9).all()
    assert (np.delete(inputs, [0, 1, 2, 3, 4, 24], axis=1) == 0).all()
    assert (targets[:, :25] == 0).all() and mask[:, 25:].all() and not mask[:, :25].any()


def test_random_walk():
    prices = random_walk(1000, seed=0, volatility=0.02)
    assert prices.shape == (1000,) and prices[0] == 100.0 and (prices > 0).all()
    log_returns = np.diff(np.log(prices))
    assert abs(log_returns.std() - 0.02) < 0.003
    many = random_walk(50, num_series=4, seed=0)
    assert many.shape == (4, 50)
    with pytest.raises(ValueError, match="start must be > 0"):
        random_walk(10, start=0.0)

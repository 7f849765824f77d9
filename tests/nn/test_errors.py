"""Bad input raises ValueError in Python, naming the expected and the actual value."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.nn import GRU, LSTM, Bidirectional, LSTMCarry, SimpleRNN, StackedRNN, TemporalConv

X = np.zeros((2, 5, 3), np.float32)


@pytest.fixture(scope="module")
def lstm_vars():
    return LSTM(4).init(jax.random.key(0), X)


def test_rank(lstm_vars):
    with pytest.raises(ValueError, match=r"rank 3.*got shape \(5, 3\)"):
        LSTM(4).apply(lstm_vars, X[0])


def test_integer_inputs(lstm_vars):
    with pytest.raises(ValueError, match="floating point.*int32"):
        LSTM(4).apply(lstm_vars, X.astype(np.int32))


def test_feature_mismatch(lstm_vars):
    with pytest.raises(ValueError, match="7 features but the parameters were built for 3"):
        LSTM(4).apply(lstm_vars, np.zeros((2, 5, 7), np.float32))


def test_carry_structure(lstm_vars):
    h = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="LSTMCarry"):
        LSTM(4).apply(lstm_vars, X, initial_carry=(h, h))
    gru_vars = GRU(4).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="hidden array"):
        GRU(4).apply(gru_vars, X, initial_carry=LSTMCarry(h, h))


@pytest.mark.parametrize("shape", [(3, 4), (2, 5), (2,)])
def test_carry_shape(lstm_vars, shape):
    bad = np.zeros(shape, np.float32)
    good = np.zeros((2, 4), np.float32)
    with pytest.raises(
        ValueError, match=rf"initial_carry.cell must have shape .*\(2, 4\).*got \({shape[0]}"
    ):
        LSTM(4).apply(lstm_vars, X, initial_carry=LSTMCarry(cell=bad, hidden=good))
    srn_vars = SimpleRNN(4).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        SimpleRNN(4).apply(srn_vars, X, initial_carry=bad)


@pytest.mark.parametrize(
    "lengths, message",
    [
        (np.array([5, 1, 2]), r"shape \[batch\] = \(2,\); got shape \(3,\)"),
        (np.array([[5, 1]]), r"got shape \(1, 2\)"),
        (np.array([6, 1]), r"\[0, 5\].*row 0 has length 6"),
        (np.array([2, -1]), r"row 1 has length -1"),
        (np.array([2.0, 1.0]), "integers"),
    ],
)
def test_seq_lengths(lstm_vars, lengths, message):
    with pytest.raises(ValueError, match=message):
        LSTM(4).apply(lstm_vars, X, seq_lengths=lengths)


def test_errors_come_before_tracing_under_jit(lstm_vars):
    with pytest.raises(ValueError, match="features"):
        jax.jit(LSTM(4).apply)(lstm_vars, np.zeros((2, 5, 2), np.float32))


def test_hidden_offsets_shape(lstm_vars):
    with pytest.raises(ValueError, match=r"hidden_offsets must have shape \(2, 5, 4\)"):
        LSTM(4).apply(lstm_vars, X, hidden_offsets=jnp.zeros((2, 5, 3)))


def test_composites():
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="avg").init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="reverse=True"):
        Bidirectional(LSTM(2, reverse=True)).init(jax.random.key(0), X)
    stack = StackedRNN([LSTM(2), LSTM(2)])
    v = stack.init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="one carry per layer \\(2\\); got 1"):
        stack.apply(v, X, initial_carry=(None,))
    with pytest.raises(ValueError, match="one dilation per layer"):
        TemporalConv([2, 2], dilations=[1]).init(jax.random.key(0), X)


def test_learned_initial_carry_needs_bound_layer():
    with pytest.raises(ValueError, match="method='initial_carry'"):
        LSTM(4, learn_initial_carry=True).initial_carry(2)

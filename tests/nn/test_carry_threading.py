"""T steps at once equal k chunks with the carry passed along: the contract of stateful training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nn_reference import random_params

from seqjax.nn import GRU, LSTM, SimpleRNN, StackedRNN

LAYERS = {
    "simple_rnn": lambda: SimpleRNN(4),
    "lstm": lambda: LSTM(4, use_peepholes=True),
    "gru": lambda: GRU(4),
    "stack": lambda: StackedRNN([LSTM(4), GRU(3), SimpleRNN(2)]),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("chunks", [[12], [6, 6], [1, 4, 7], [3, 3, 3, 3]])
def test_chunks_with_carry_equal_one_pass(name, chunks):
    layer = LAYERS[name]()
    x = np.random.default_rng(0).standard_normal((3, 12, 2)).astype(np.float32)
    variables = random_params(layer.init(jax.random.key(0), x))
    carry_all, ys_all = layer.apply(variables, x)

    carry, pieces, start = None, [], 0
    for size in chunks:
        carry, ys = layer.apply(variables, x[:, start : start + size], carry)
        pieces.append(ys)
        start += size
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), ys_all, atol=1e-6)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_all), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_reverse_chunks_thread_backwards():
    """A reverse layer processes the last chunk first; its carry then flows to the earlier chunk."""
    layer = LSTM(4, reverse=True)
    x = np.random.default_rng(1).standard_normal((2, 10, 3)).astype(np.float32)
    variables = random_params(layer.init(jax.random.key(0), x))
    carry_all, ys_all = layer.apply(variables, x)
    carry, ys_late = layer.apply(variables, x[:, 6:])
    carry, ys_early = layer.apply(variables, x[:, :6], carry)
    np.testing.assert_allclose(np.concatenate([ys_early, ys_late], 1), ys_all, atol=1e-6)
    np.testing.assert_allclose(carry.cell, carry_all.cell, atol=1e-6)


def test_jit_equals_no_jit():
    layer = GRU(4)
    x = np.random.default_rng(2).standard_normal((3, 5, 2)).astype(np.float32)
    lengths = jnp.array([5, 2, 4])
    variables = random_params(layer.init(jax.random.key(0), x))
    eager = layer.apply(variables, x, seq_lengths=lengths)
    jitted = jax.jit(layer.apply)(variables, x, seq_lengths=lengths)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)

"""Gradients by finite differences (jax.test_util.check_grads), forward and reverse mode, float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from nn_reference import random_params

from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN

LAYERS = {
    "simple_rnn": lambda: SimpleRNN(3),
    "lstm": lambda: LSTM(3),
    "lstm_peepholes": lambda: LSTM(3, use_peepholes=True),
    "gru": lambda: GRU(3),
    "lstm_reverse": lambda: LSTM(3, reverse=True),
    "gru_remat": lambda: GRU(3, remat=True),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_check_grads(name, with_lengths):
    with jax.enable_x64(True):
        layer = LAYERS[name]().clone(param_dtype=jnp.float64)
        x = np.random.default_rng(0).standard_normal((2, 4, 2))
        variables = random_params(layer.init(jax.random.key(0), x), seed=1)
        lengths = jnp.array([4, 2]) if with_lengths else None

        def f(params, inputs):
            carry, ys = layer.apply({"params": params}, inputs, seq_lengths=lengths)
            return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

        check_grads(f, (variables["params"], x), order=1, modes=["fwd", "rev"], eps=1e-6)


def test_check_grads_bidirectional():
    with jax.enable_x64(True):
        layer = Bidirectional(GRU(2, param_dtype=jnp.float64), merge_mode="sum")
        x = np.random.default_rng(2).standard_normal((2, 3, 2))
        variables = random_params(layer.init(jax.random.key(0), x), seed=2)
        f = lambda p, inputs: jnp.sum(
            layer.apply({"params": p}, inputs, seq_lengths=jnp.array([3, 1]))[1] ** 2
        )
        check_grads(f, (variables["params"], x), order=1, modes=["rev"], eps=1e-6)


def test_check_grads_initial_carry_and_learned_state():
    with jax.enable_x64(True):
        layer = LSTM(3, learn_initial_carry=True, param_dtype=jnp.float64)
        x = np.random.default_rng(3).standard_normal((2, 3, 2))
        variables = random_params(layer.init(jax.random.key(0), x), seed=3)
        f = lambda p: jnp.sum(layer.apply({"params": p}, x)[1] ** 2)
        check_grads(f, (variables["params"],), order=1, modes=["rev"], eps=1e-6)
        grads = jax.grad(f)(variables["params"])
        assert np.abs(grads["initial_hidden"]).sum() > 0
        assert np.abs(grads["initial_cell"]).sum() > 0

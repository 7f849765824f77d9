"""Right-padded batches: padding changes nothing and gets no gradient; reverse and bidirectional."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nn_reference import random_params

from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN

LAYERS = {
    "simple_rnn": lambda: SimpleRNN(4),
    "lstm": lambda: LSTM(4),
    "gru": lambda: GRU(4),
    "lstm_reverse": lambda: LSTM(4, reverse=True),
    "bidirectional": lambda: Bidirectional(LSTM(4)),
}
LENGTHS = np.array([6, 3, 1, 0], np.int32)


def _setup(name, time=6, seed=0):
    layer = LAYERS[name]()
    x = np.random.default_rng(seed).standard_normal((4, time, 3)).astype(np.float32)
    variables = random_params(layer.init(jax.random.key(0), x), seed=seed)
    return layer, x, variables


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_padding_changes_neither_outputs_nor_carry(name):
    layer, x, variables = _setup(name)
    carry, ys = layer.apply(variables, x, seq_lengths=LENGTHS)
    garbage = x.copy()
    for b, n in enumerate(LENGTHS):
        garbage[b, n:] = 1e3
    longer = np.concatenate([garbage, np.full((4, 5, 3), -7.0, np.float32)], axis=1)
    carry2, ys2 = layer.apply(variables, longer, seq_lengths=LENGTHS)
    np.testing.assert_allclose(ys2[:, :6], ys, atol=1e-6)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for b, n in enumerate(LENGTHS):
        assert np.all(np.asarray(ys2)[b, n:] == 0), "outputs past a row's length must be zero"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_padded_inputs_get_no_gradient(name):
    layer, x, variables = _setup(name, seed=1)

    def loss(inputs):
        carry, ys = layer.apply(variables, inputs, seq_lengths=LENGTHS)
        return jnp.sum(ys**2) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    grad = np.asarray(jax.grad(loss)(x))
    for b, n in enumerate(LENGTHS):
        assert np.all(grad[b, n:] == 0)
        if n:
            assert np.any(grad[b, :n] != 0)


@pytest.mark.parametrize("name", ["simple_rnn", "lstm", "gru"])
def test_each_row_equals_its_unpadded_sequence(name):
    layer, x, variables = _setup(name, seed=2)
    for reverse in (False, True):
        lay = layer.clone(reverse=reverse)
        carry, ys = lay.apply(variables, x, seq_lengths=LENGTHS)
        for b, n in enumerate(LENGTHS[:3]):
            c_b, ys_b = lay.apply(variables, x[b : b + 1, :n])
            np.testing.assert_allclose(ys[b, :n], ys_b[0], atol=1e-6)
            for a, want in zip(jax.tree.leaves(carry), jax.tree.leaves(c_b), strict=True):
                np.testing.assert_allclose(a[b], want[0], atol=1e-6)


def test_reverse_without_lengths_is_the_forward_layer_on_flipped_time():
    layer, x, variables = _setup("lstm", seed=3)
    carry_r, ys_r = layer.clone(reverse=True).apply(variables, x)
    carry_f, ys_f = layer.apply(variables, x[:, ::-1])
    np.testing.assert_allclose(ys_r, np.asarray(ys_f)[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(carry_r.hidden, carry_f.hidden, atol=1e-6)


@pytest.mark.parametrize("merge", ["concat", "sum", "mean", "mul", None])
def test_bidirectional_is_forward_and_padding_aware_backward(merge):
    x = np.random.default_rng(4).standard_normal((4, 6, 3)).astype(np.float32)
    bi = Bidirectional(GRU(4), merge_mode=merge)
    variables = random_params(bi.init(jax.random.key(0), x), seed=4)
    (c_f, c_b), ys = bi.apply(variables, x, seq_lengths=LENGTHS)
    fwd = {"params": variables["params"]["forward_rnn"]}
    bwd = {"params": variables["params"]["backward_rnn"]}
    for b, n in enumerate(LENGTHS[:3]):
        row = x[b : b + 1, :n]
        hf, yf = GRU(4).apply(fwd, row)
        hb, yb = GRU(4).apply(bwd, row[:, ::-1])
        yb = np.asarray(yb)[:, ::-1]
        want = {
            "concat": np.concatenate([yf, yb], -1),
            "sum": yf + yb,
            "mean": (yf + yb) / 2,
            "mul": yf * yb,
            None: None,
        }[merge]
        if merge is None:
            np.testing.assert_allclose(ys[0][b, :n], yf[0], atol=1e-6)
            np.testing.assert_allclose(ys[1][b, :n], yb[0], atol=1e-6)
        else:
            np.testing.assert_allclose(ys[b, :n], want[0], atol=1e-6)
        np.testing.assert_allclose(c_f[b], hf[0], atol=1e-6)
        np.testing.assert_allclose(c_b[b], hb[0], atol=1e-6)

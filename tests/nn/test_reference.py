"""Each layer equals a NumPy loop of its equations (float32 vs float64, within 1e-5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nn_reference import as_numpy, gru, lstm, random_params, simple_rnn

from seqjax.nn import GRU, LSTM, LSTMCarry, SimpleRNN

ATOL = 1e-5
B, T, F, H = 3, 7, 4, 5


def _inputs(seed=0, shape=(B, T, F)):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _build(layer, x, seed=0):
    variables = random_params(layer.init(jax.random.key(0), x), seed=seed)
    return variables, as_numpy(variables["params"])


@pytest.mark.parametrize("activation", [jnp.tanh, jax.nn.relu], ids=["tanh", "relu"])
def test_simple_rnn_matches_numpy(activation):
    x = _inputs()
    layer = SimpleRNN(H, activation=activation)
    variables, p = _build(layer, x)
    carry, ys = layer.apply(variables, x)
    np_act = np.tanh if activation is jnp.tanh else (lambda v: np.maximum(v, 0))
    ref_h, ref_ys = simple_rnn(p, x, act=np_act)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)
    np.testing.assert_allclose(carry, ref_h, atol=ATOL)


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize(
    "g, h_act",
    [
        ((jnp.tanh, np.tanh), (jnp.tanh, np.tanh)),
        ((jax.nn.sigmoid, lambda v: 1 / (1 + np.exp(-v))), (lambda v: v, lambda v: v)),
    ],
    ids=["tanh-tanh", "sigmoid-identity"],
)
def test_lstm_matches_numpy(peepholes, g, h_act):
    x = _inputs(1)
    layer = LSTM(H, use_peepholes=peepholes, cell_activation=g[0], output_activation=h_act[0])
    variables, p = _build(layer, x, seed=1)
    assert ("peepholes" in p) == peepholes
    carry, ys = layer.apply(variables, x)
    (ref_c, ref_h), ref_ys = lstm(p, x, g=g[1], h_act=h_act[1])
    assert isinstance(carry, LSTMCarry)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)
    np.testing.assert_allclose(carry.cell, ref_c, atol=ATOL)
    np.testing.assert_allclose(carry.hidden, ref_h, atol=ATOL)


def test_gru_matches_numpy():
    x = _inputs(2)
    layer = GRU(H)
    variables, p = _build(layer, x, seed=2)
    carry, ys = layer.apply(variables, x)
    ref_h, ref_ys = gru(p, x)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)
    np.testing.assert_allclose(carry, ref_h, atol=ATOL)


def test_initial_carry_matches_numpy():
    x = _inputs(3)
    rng = np.random.default_rng(3)
    c0, h0 = rng.standard_normal((2, B, H)).astype(np.float32)
    layer = LSTM(H, use_peepholes=True)
    variables, p = _build(layer, x, seed=3)
    carry, ys = layer.apply(variables, x, initial_carry=LSTMCarry(cell=c0, hidden=h0))
    (ref_c, ref_h), ref_ys = lstm(p, x, c0=c0, h0=h0)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)
    np.testing.assert_allclose(carry.cell, ref_c, atol=ATOL)

    gru_layer = GRU(H)
    variables, p = _build(gru_layer, x, seed=4)
    carry, ys = gru_layer.apply(variables, x, initial_carry=h0)
    ref_h, ref_ys = gru(p, x, h0=h0)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "make, ref",
    [(lambda: SimpleRNN(H), simple_rnn), (lambda: LSTM(H), lstm), (lambda: GRU(H), gru)],
    ids=["simple_rnn", "lstm", "gru"],
)
def test_lengths_and_reverse_match_numpy(make, ref, reverse):
    x = _inputs(5)
    lengths = np.array([T, 3, 0], np.int32)
    layer = make().clone(reverse=reverse)
    variables, p = _build(layer, x, seed=5)
    carry, ys = layer.apply(variables, x, seq_lengths=lengths)
    ref_carry, ref_ys = ref(p, x, lengths=list(lengths), reverse=reverse)
    np.testing.assert_allclose(ys, ref_ys, atol=ATOL)
    for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(ref_carry), strict=True):
        np.testing.assert_allclose(got, want, atol=ATOL)


def test_time_major_equals_batch_major():
    x = _inputs(6)
    layer = LSTM(H)
    variables, _ = _build(layer, x, seed=6)
    carry_bm, ys_bm = layer.apply(variables, x)
    carry_tm, ys_tm = LSTM(H, time_major=True).apply(variables, np.swapaxes(x, 0, 1))
    np.testing.assert_allclose(np.swapaxes(ys_tm, 0, 1), ys_bm, atol=1e-6)
    np.testing.assert_allclose(carry_tm.hidden, carry_bm.hidden, atol=1e-6)


@pytest.mark.parametrize("unroll, remat", [(1, True), (3, False), (4, True)])
def test_unroll_and_remat_do_not_change_results(unroll, remat):
    x = _inputs(7)
    base = LSTM(H)
    variables, _ = _build(base, x, seed=7)
    layer = LSTM(H, unroll=unroll, remat=remat)

    def loss(v, lay):
        return jnp.sum(lay.apply(v, x)[1] ** 2)

    np.testing.assert_allclose(loss(variables, layer), loss(variables, base), rtol=1e-6)
    g0 = jax.grad(loss)(variables, base)
    g1 = jax.grad(loss)(variables, layer)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "make", [lambda: SimpleRNN(H), lambda: LSTM(H, use_peepholes=True), lambda: GRU(H)]
)
def test_hoisted_and_per_step_projection_are_the_same_function(make, reverse):
    x = _inputs(8)
    lengths = np.array([T, 4, 1], np.int32)
    per_step = make().clone(reverse=reverse, input_projection="per_step")
    hoisted = per_step.clone(input_projection="hoisted")
    variables, _ = _build(per_step, x, seed=8)

    def run(layer, v):
        carry, ys = layer.apply(v, x, seq_lengths=lengths)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry)), (carry, ys)

    (loss_a, out_a), grad_a = jax.value_and_grad(run, argnums=1, has_aux=True)(per_step, variables)
    (loss_b, out_b), grad_b = jax.value_and_grad(run, argnums=1, has_aux=True)(hoisted, variables)
    for a, b in zip(
        jax.tree.leaves((out_a, grad_a)), jax.tree.leaves((out_b, grad_b)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_input_projection_raises():
    x = _inputs()
    with pytest.raises(ValueError, match="input_projection must be 'hoisted' or 'per_step'"):
        LSTM(H, input_projection="fused").init(jax.random.key(0), x)

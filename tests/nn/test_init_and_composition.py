"""Initialisation (forget bias, chrono, per-gate orthogonal), learned state, stack, dropout, CNN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nn_reference import random_params

from seqjax.nn import GRU, LSTM, SimpleRNN, StackedRNN, TemporalConv

X = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)


def test_default_init_glorot_orthogonal_zero_bias_and_forget_bias_one():
    p = LSTM(8).init(jax.random.key(0), X)["params"]
    bias = np.asarray(p["bias"])
    np.testing.assert_array_equal(bias[8:16], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[8:16]), 0.0)
    u = np.asarray(p["recurrent_kernel"])
    for k in range(4):
        block = u[:, 8 * k : 8 * (k + 1)]
        np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)
    limit = np.sqrt(6 / (3 + 32))
    assert np.abs(p["kernel"]).max() <= limit


def test_forget_bias_option():
    p = LSTM(4, forget_bias=3.0).init(jax.random.key(0), X)["params"]
    np.testing.assert_array_equal(np.asarray(p["bias"])[4:8], 3.0)
    p = LSTM(4, forget_bias=None).init(jax.random.key(0), X)["params"]
    np.testing.assert_array_equal(np.asarray(p["bias"]), 0.0)


def test_chrono_init():
    t_max = 100
    p = LSTM(256, chrono_max_time=t_max).init(jax.random.key(0), X)["params"]
    bias = np.asarray(p["bias"])
    b_i, b_f = bias[:256], bias[256:512]
    assert np.all(b_f >= 0) and np.all(b_f <= np.log(t_max - 1) + 1e-6)
    np.testing.assert_array_equal(b_i, -b_f)
    # log of a uniform: its exponential is spread over [1, T_max - 1]
    assert np.exp(b_f).min() < 10 and np.exp(b_f).max() > 80
    np.testing.assert_array_equal(bias[512:], 0.0)


def test_learned_initial_carry_is_used_and_trainable():
    layer = GRU(4, learn_initial_carry=True)
    variables = layer.init(jax.random.key(0), X)
    variables = jax.tree.map(lambda a: a + 0.5, variables)
    carry0 = layer.apply(variables, 2, method="initial_carry")
    np.testing.assert_allclose(carry0, np.full((2, 4), 0.5))
    _, ys = layer.apply(variables, X)
    _, ys_zero = GRU(4).apply(
        {"params": {k: v for k, v in variables["params"].items() if k != "initial_hidden"}}, X
    )
    assert not np.allclose(ys, ys_zero)


def test_stack_equals_layers_applied_in_turn_and_dropout_needs_rng():
    stack = StackedRNN([LSTM(5), SimpleRNN(4)], dropout_rate=0.5)
    variables = random_params(stack.init(jax.random.key(0), X))
    (c1, c2), ys = stack.apply(variables, X)
    p = variables["params"]
    c1_ref, h = LSTM(5).apply({"params": p["layers_0"]}, X)
    c2_ref, ys_ref = SimpleRNN(4).apply({"params": p["layers_1"]}, h)
    np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
    np.testing.assert_allclose(c2, c2_ref, atol=1e-6)
    _, ys_drop = stack.apply(variables, X, deterministic=False, rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(ys_drop, ys)


def test_temporal_conv_is_causal_and_matches_numpy():
    conv = TemporalConv([4, 2], kernel_size=3, dilations=[1, 2], activate_last=False)
    variables = random_params(conv.init(jax.random.key(0), X))
    ys = np.asarray(conv.apply(variables, X))
    assert ys.shape == (2, 6, 2)
    # NumPy reference: left-padded dilated convolution
    p = jax.tree.map(np.asarray, variables["params"])

    def conv1d(x, kernel, bias, dilation):
        k = kernel.shape[0]
        pad = (k - 1) * dilation
        xp = np.pad(x, ((0, 0), (pad, 0), (0, 0)))
        out = np.zeros(x.shape[:2] + (kernel.shape[2],))
        for t in range(x.shape[1]):
            for j in range(k):
                out[:, t] += xp[:, t + j * dilation] @ kernel[j]
        return out + bias

    h = np.maximum(conv1d(X, p["conv_0"]["kernel"], p["conv_0"]["bias"], 1), 0)
    ref = conv1d(h, p["conv_1"]["kernel"], p["conv_1"]["bias"], 2)
    np.testing.assert_allclose(ys, ref, atol=1e-5)
    # causality: changing the future leaves the past alone
    x2 = X.copy()
    x2[:, 4:] += 10
    ys2 = np.asarray(conv.apply(variables, x2))
    np.testing.assert_allclose(ys2[:, :4], ys[:, :4], atol=1e-6)


@pytest.mark.parametrize("cls", [SimpleRNN, LSTM, GRU])
def test_hidden_offsets_give_dl_dh(cls):
    # hidden_offsets exist on the scan (auto runs it for them): zeros must change nothing, bit
    # for bit, so both calls run the scan (the kernel equals it to rounding: test_cpu_kernels).
    layer = cls(3, implementation="scan")
    variables = random_params(layer.init(jax.random.key(0), X))
    zeros = jnp.zeros((2, 6, 3))
    _, ys = layer.apply(variables, X)
    _, ys0 = layer.apply(variables, X, hidden_offsets=zeros)
    np.testing.assert_allclose(ys, ys0)
    # dL/dh_t for L = sum(h_T): at t = T-1 it is exactly one
    grad = jax.grad(lambda o: jnp.sum(layer.apply(variables, X, hidden_offsets=o)[1][:, -1]))(zeros)
    np.testing.assert_allclose(grad[:, -1], 1.0)
    assert np.all(np.abs(grad[:, 0]) > 0)

"""Gradient flow over time: the simple RNN's geometric decay and growth, the LSTM's flat curve."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.diagnostics import jacobian_norms, loss_gradient_norms, model_gradient_norms
from seqjax.nn import LSTM, SimpleRNN
from seqjax.train import SequenceModel, mse

B, T, F, H = 2, 12, 3, 4


def _scaled_rnn(scale: float):
    """A SimpleRNN whose recurrent matrix is ``scale`` times an orthogonal one."""
    layer = SimpleRNN(H)
    variables = layer.init(jax.random.key(0), jnp.zeros((B, T, F)))
    params = dict(variables["params"])
    params["recurrent_kernel"] = scale * params["recurrent_kernel"]
    return layer, {"params": params}


@pytest.mark.parametrize("scale", [0.9, 1.2])
def test_simple_rnn_jacobian_decays_or_grows_geometrically(scale):
    # Zero inputs and state: tanh' = 1 throughout, so dh_T/dh_t = (scale * Q^T)^(T-1-t) exactly,
    # of Frobenius norm scale^(T-1-t) * sqrt(H): the lecture's 0.9 * 0.9 * 0.9 ...
    layer, variables = _scaled_rnn(scale)
    norms = np.asarray(jacobian_norms(layer, variables, jnp.zeros((B, T, F))))
    expected = scale ** np.arange(T - 1, -1, -1) * np.sqrt(H)
    np.testing.assert_allclose(norms, expected, rtol=1e-4)
    # A loss on the last step sees the same factor per step back.
    w = jnp.arange(1.0, H + 1)
    grads = np.asarray(
        loss_gradient_norms(
            layer, variables, jnp.zeros((B, T, F)), lambda ys: jnp.sum(ys[:, -1] @ w)
        )
    )
    np.testing.assert_allclose(grads[:-1] / grads[1:], scale, rtol=1e-4)


def test_lstm_curve_is_flat_where_the_simple_rnn_vanishes():
    x = jax.random.normal(jax.random.key(1), (B, T, F))
    rnn, rnn_vars = _scaled_rnn(0.9)
    lstm = LSTM(H, forget_bias=5.0)
    lstm_vars = lstm.init(jax.random.key(0), x)
    rnn_norms = np.asarray(jacobian_norms(rnn, rnn_vars, x))
    lstm_norms = np.asarray(jacobian_norms(lstm, lstm_vars, x))
    # The first step's influence on h_T relative to the step before the last.
    rnn_ratio = rnn_norms[0] / rnn_norms[-2]
    lstm_ratio = lstm_norms[0] / lstm_norms[-2]
    assert rnn_ratio < 0.9 ** (T - 2)  # at least geometric decay (tanh' <= 1)
    assert lstm_ratio > 0.3 and lstm_ratio > 20 * rnn_ratio


def test_model_gradient_norms_probe_the_recurrent_layer_of_a_model():
    model = SequenceModel(LSTM(H), output_features=1, return_sequences=False)
    x = jax.random.normal(jax.random.key(2), (B, T, F))
    y = jax.random.normal(jax.random.key(3), (B, 1))
    variables = model.init(jax.random.key(0), x)
    got = model_gradient_norms(model, variables, {"inputs": x, "targets": y})
    head = variables["params"]["head"]
    layer_vars = {"params": variables["params"]["recurrent"]}
    loss_fn = lambda ys: mse(ys[:, -1] @ head["kernel"] + head["bias"], y)
    expected = loss_gradient_norms(LSTM(H), layer_vars, x, loss_fn)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)
    assert got.shape == (T,) and got[-1] > 0 and np.all(np.isfinite(got))
    with pytest.raises(ValueError, match="no seqjax recurrent layer named 'nope'"):
        model_gradient_norms(model, variables, {"inputs": x, "targets": y}, layer="nope")


def test_kernel_layers_are_measured_through_their_scan():
    # implementation="cpu_kernel" takes no hidden_offsets; the diagnostics use the same layer on
    # its scan (same parameters, same function), so the curves are identical.
    x = jax.random.normal(jax.random.key(3), (B, T, F))
    scan_layer = LSTM(H)
    kernel_layer = LSTM(H, implementation="cpu_kernel")
    variables = scan_layer.init(jax.random.key(0), x)
    loss = lambda ys: jnp.sum(ys[:, -1] ** 2)
    np.testing.assert_allclose(
        loss_gradient_norms(kernel_layer, variables, x, loss),
        loss_gradient_norms(scan_layer, variables, x, loss),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        jacobian_norms(kernel_layer, variables, x), jacobian_norms(scan_layer, variables, x)
    )

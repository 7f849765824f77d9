"""Online learning, TBPTT(1, k): k=1 equals train_step on T=1 chunks with the carry threaded;
for k>1 each update is the gradient of the newest loss through the window (a direct reference);
the held carry advances by one observation; it learns an AR(1) series better than zero."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.nn import GRU, LSTM, StackedRNN
from seqjax.train import (
    SequenceModel,
    create_online_state,
    online_fit,
    online_step,
    train_step,
)


def stream(n: int, batch: int = 2, features: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None] * 0.4 + rng.uniform(0, 6, (1, batch, features))
    return (np.sin(t) + 0.1 * rng.normal(size=t.shape)).astype(np.float32)  # [N, B, F]


def close(a, b, tol=1e-5):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=1e-6), a, b)


def test_window_one_equals_train_step_on_one_step_chunks():
    """Same parameters, carry and loss after every step, dropout included."""
    model = SequenceModel(LSTM(5), output_features=2, dropout_rate=0.3)
    tx = optax.adam(0.05)
    xs = stream(9)
    state = create_online_state(model, tx, batch_size=2, features=2, window=1, seed=3)
    reference, carry = state.train, model.initial_carry(2)
    step, ref_step, rng = jax.jit(online_step), jax.jit(train_step), jax.random.key(7)
    for t in range(8):
        state, _, metrics = step(state, xs[t], xs[t + 1], rng)
        batch = {"inputs": xs[t][:, None], "targets": xs[t + 1][:, None]}
        reference, carry, ref_metrics = ref_step(reference, carry, batch, rng)
        close(state.train.params, reference.params)
        close(state.carry, carry)
        np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-5)


@pytest.mark.parametrize("layer", [lambda: LSTM(4), lambda: StackedRNN([GRU(3), LSTM(4)])])
def test_gradient_is_the_newest_loss_through_the_window(layer):
    """With SGD(1), ``params_before - params_after`` is the gradient; it equals jax.grad of the
    newest step's MSE over the window ``x[t-k+1..t]`` from the held carry (while the window
    fills: over ``x[0..t]`` from zeros). The held carry moves one observation per step."""
    k = 4
    model = SequenceModel(layer(), output_features=2)
    xs = stream(12, seed=1)
    state = create_online_state(model, optax.sgd(1.0), batch_size=2, features=2, window=k)
    step, rng = jax.jit(online_step), jax.random.key(0)
    for t in range(10):
        before = state
        state, prediction, _ = step(state, xs[t], xs[t + 1], rng)
        start = max(0, t - k + 1)
        window = jnp.asarray(np.swapaxes(xs[start : t + 1], 0, 1))  # [B, <=k, F]

        def newest_loss(params, carry=before.carry, window=window, target=xs[t + 1]):
            _, ys = model.apply({"params": params}, window, carry)
            return jnp.mean(jnp.mean((ys[:, -1] - target) ** 2, axis=-1))

        expected = jax.grad(newest_loss)(before.train.params)
        actual = jax.tree.map(lambda a, b: a - b, before.train.params, state.train.params)
        close(actual, expected, tol=2e-4)
        _, ys = model.apply({"params": before.train.params}, window, before.carry)
        np.testing.assert_allclose(prediction, ys[:, -1], rtol=1e-5, atol=1e-6)
        if t >= k - 1:  # full: the held carry moves past the window's first observation
            moved, _ = model.apply({"params": before.train.params}, window[:, :1], before.carry)
            close(state.carry, moved)
        else:
            close(state.carry, before.carry)
    assert int(state.filled) == k


def test_learns_an_ar1_series_better_than_predicting_zero():
    """x_{t+1} = 0.8 x_t + noise: the best MSE is 0.36 var(x); zero scores var(x)."""
    rng = np.random.default_rng(0)
    x = np.zeros(2001, np.float32)
    for t in range(2000):
        x[t + 1] = 0.8 * x[t] + 0.6 * rng.normal()
    inputs, targets = x[:-1, None, None], x[1:, None, None]
    for k in (1, 8):
        state = create_online_state(
            SequenceModel(GRU(8), 1), optax.adam(3e-3), batch_size=1, features=1, window=k
        )
        fit = jax.jit(online_fit)
        state, predictions, losses = fit(state, inputs, targets, jax.random.key(0))
        late = slice(1000, None)  # prequential: each prediction made before its update
        mse = np.mean((predictions[late, 0, 0] - targets[late, 0, 0]) ** 2)
        zero = np.mean(targets[late, 0, 0] ** 2)
        assert mse < 0.6 * zero, (k, mse, zero)
        assert np.isfinite(losses).all()


def test_online_fit_equals_a_loop_of_steps():
    model = SequenceModel(GRU(3), output_features=2)
    xs = stream(7)
    state = create_online_state(model, optax.adam(0.01), batch_size=2, features=2, window=3)
    rng = jax.random.key(1)
    fitted, predictions, _ = jax.jit(online_fit)(state, xs[:-1], xs[1:], rng)
    step = jax.jit(online_step)
    for t in range(6):
        state, prediction, _ = step(state, xs[t], xs[t + 1], rng)
        np.testing.assert_allclose(predictions[t], prediction, rtol=1e-5, atol=1e-6)
    close(fitted.train.params, state.train.params)


def test_reset_restarts_rows_with_window_one():
    model = SequenceModel(GRU(3), output_features=2)
    state = create_online_state(model, optax.sgd(0.0), batch_size=2, features=2, window=1)
    xs = stream(3)
    state, _, _ = online_step(state, xs[0], xs[1], jax.random.key(0))
    fresh, _, _ = online_step(state, xs[1], xs[2], jax.random.key(0), reset=np.array([1, 0], bool))
    kept, _, _ = online_step(state, xs[1], xs[2], jax.random.key(0))
    first, _, _ = online_step(
        create_online_state(model, optax.sgd(0.0), batch_size=2, features=2, window=1),
        xs[1],
        xs[2],
        jax.random.key(0),
    )
    np.testing.assert_allclose(fresh.carry[0], first.carry[0], rtol=1e-6)
    np.testing.assert_allclose(fresh.carry[1], kept.carry[1], rtol=1e-6)


def test_bad_input_is_named():
    model = SequenceModel(GRU(3), output_features=1)
    with pytest.raises(ValueError, match="window"):
        create_online_state(model, optax.sgd(0.1), batch_size=1, features=1, window=0)
    with pytest.raises(ValueError, match="return_sequences"):
        create_online_state(
            SequenceModel(GRU(3), 1, return_sequences=False),
            optax.sgd(0.1),
            batch_size=1,
            features=1,
            window=2,
        )
    state = create_online_state(model, optax.sgd(0.1), batch_size=2, features=1, window=2)
    rng = jax.random.key(0)
    with pytest.raises(ValueError, match=r"inputs must be \[B, F\] = \(2, 1\)"):
        online_step(state, np.zeros((3, 1), np.float32), np.zeros((2, 1), np.float32), rng)
    with pytest.raises(ValueError, match="targets"):
        online_step(state, np.zeros((2, 1), np.float32), np.zeros((2, 2), np.float32), rng)
    with pytest.raises(ValueError, match="k=1 only"):
        online_step(
            state,
            np.zeros((2, 1), np.float32),
            np.zeros((2, 1), np.float32),
            rng,
            reset=np.zeros(2, bool),
        )


def test_docstring_examples():
    import doctest

    import seqjax.train.online

    result = doctest.testmod(seqjax.train.online)
    assert result.failed == 0 and result.attempted >= 10

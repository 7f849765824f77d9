"""Masked losses and metrics against NumPy, many-to-one and many-to-many."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.train import accuracy, huber, mae, masked_mean, mse, softmax_cross_entropy

RNG = np.random.default_rng(0)


def test_mse_mae_many_to_many_with_periodic_mask():
    pred = RNG.normal(size=(3, 6, 2)).astype(np.float32)
    tgt = RNG.normal(size=(3, 6, 2)).astype(np.float32)
    mask = np.zeros((3, 6), np.float32)
    mask[:, 2::3] = 1.0  # a target every third step
    per_step = ((pred - tgt) ** 2).mean(-1)
    np.testing.assert_allclose(mse(pred, tgt, mask), per_step[mask > 0].mean(), rtol=1e-6)
    abs_step = np.abs(pred - tgt).mean(-1)
    np.testing.assert_allclose(mae(pred, tgt, mask), abs_step[mask > 0].mean(), rtol=1e-6)
    np.testing.assert_allclose(mse(pred, tgt), per_step.mean(), rtol=1e-6)


def test_many_to_one_and_masked_nan_is_ignored():
    pred = RNG.normal(size=(4, 1)).astype(np.float32)
    tgt = RNG.normal(size=(4, 1)).astype(np.float32)
    pred[3] = np.nan  # a padded row: masked out, must not poison the mean
    mask = np.array([1, 1, 1, 0], np.float32)
    expected = ((pred[:3] - tgt[:3]) ** 2).mean()
    np.testing.assert_allclose(mse(pred, tgt, mask), expected, rtol=1e-6)


def test_huber_is_quadratic_inside_and_linear_outside():
    pred = jnp.array([[0.5], [3.0]])
    tgt = jnp.zeros((2, 1))
    np.testing.assert_allclose(huber(pred, tgt), (0.5 * 0.25 + (3.0 - 0.5)) / 2, rtol=1e-6)


def test_cross_entropy_integer_and_one_hot_labels_agree():
    logits = RNG.normal(size=(2, 5, 4)).astype(np.float32)
    labels = RNG.integers(0, 4, size=(2, 5))
    mask = np.ones((2, 5), np.float32)
    mask[1, 3:] = 0  # padding
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    expected = nll[mask > 0].mean()
    np.testing.assert_allclose(softmax_cross_entropy(logits, labels, mask), expected, rtol=1e-5)
    one_hot = np.eye(4, dtype=np.float32)[labels]
    np.testing.assert_allclose(softmax_cross_entropy(logits, one_hot, mask), expected, rtol=1e-5)


def test_accuracy_masked():
    logits = jnp.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    labels = jnp.array([1, 1, 0])
    assert float(accuracy(logits, labels)) == pytest.approx(2 / 3)
    assert float(accuracy(logits, labels, jnp.array([1.0, 0.0, 0.0]))) == 1.0


def test_empty_mask_gives_zero_and_wrong_shapes_raise():
    assert float(masked_mean(jnp.ones((2, 3)), jnp.zeros((2, 3)))) == 0.0
    with pytest.raises(ValueError, match=r"per-example shape \(2, 3\)"):
        mse(jnp.ones((2, 3, 1)), jnp.ones((2, 3, 1)), jnp.ones((2,)))
    with pytest.raises(ValueError, match="integers"):
        softmax_cross_entropy(jnp.ones((2, 3)), jnp.ones((2,)))

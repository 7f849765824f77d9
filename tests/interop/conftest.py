"""Shared set-up for the interop tests: Keras on the JAX backend, random weights, tolerances."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pytest

ATOL = 1e-5  # float32 outputs and final states


def assert_close(actual, expected, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=atol)


def randomize_keras(layer, rng, scale=0.5):
    """Overwrites every weight of a built Keras layer with N(0, scale²) (biases non-zero)."""
    layer.set_weights(
        [(rng.normal(size=w.shape) * scale).astype(w.dtype) for w in layer.get_weights()]
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def close():
    return assert_close


@pytest.fixture
def randomize():
    return randomize_keras

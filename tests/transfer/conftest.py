"""Keras, when a test uses it, runs on the JAX backend (set before Keras is first imported)."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

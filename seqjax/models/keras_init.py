"""Initialise a Flax module's variables the way Keras does, in NumPy (no XLA compilation).

Keras' defaults: kernels Glorot-uniform, biases and BatchNorm ``beta`` zero, ``gamma`` one,
moving mean zero and moving variance one. Flax's ``module.init`` draws similar values with JAX's
PRNG, but compiling that for a network of MobileNetV2's size costs tens of seconds of CPU; this
costs milliseconds and matches ``keras.applications.MobileNetV2(weights=None)`` in distribution.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import numpy as np

__all__ = ["glorot_uniform", "keras_style_init"]


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Keras' ``GlorotUniform``: ``U(-l, l)``, ``l = sqrt(6 / (fan_in + fan_out))``.

    For a kernel ``(*window, in, out)`` the fans are ``prod(window) * in`` and
    ``prod(window) * out`` (a depthwise kernel gives the same limit in Keras' ``(3, 3, C, 1)``
    and Flax's ``(3, 3, 1, C)`` layout).
    """
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def keras_style_init(module: nn.Module, *inputs: Any, seed: int = 0, **kwargs: Any) -> dict:
    """Variables of ``module`` (as ``module.init(rng, *inputs, **kwargs)`` would shape them) with
    Keras' default initial values, drawn with NumPy.

    Leaves are recognised by name: ``kernel`` (Glorot uniform), ``bias`` (0), ``scale`` (1),
    ``mean`` (0), ``var`` (1). ``inputs`` may be arrays or ``jax.ShapeDtypeStruct``.

    Raises:
        ValueError: for a leaf with another name (e.g. an embedding), which needs its own rule.
    """
    shapes = jax.eval_shape(lambda *xs: module.init(jax.random.key(0), *xs, **kwargs), *inputs)
    rng = np.random.default_rng(seed)

    def init(path: tuple[Any, ...], leaf: jax.ShapeDtypeStruct) -> np.ndarray:
        name = getattr(path[-1], "key", str(path[-1]))
        shape, dtype = tuple(leaf.shape), leaf.dtype
        if name == "kernel":
            return glorot_uniform(shape, rng).astype(dtype)
        if name in ("bias", "mean"):
            return np.zeros(shape, dtype)
        if name in ("scale", "var"):
            return np.ones(shape, dtype)
        raise ValueError(f"no Keras-style initialiser for {jax.tree_util.keystr(path)}")

    return jax.tree_util.tree_map_with_path(init, shapes)

"""Activation functions by name: Keras' built-in activations and their JAX equivalents.

Keras 3 defaults are kept: ``leaky_relu`` has slope 0.2, ``gelu`` is exact (not tanh-approximated),
``hard_sigmoid`` is ``relu6(x + 3) / 6``, ``softmax`` is over the last axis.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["JAX_ACTIVATIONS", "jax_activation", "keras_activation_name"]

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """The linear activation."""
    return x


#: Keras activation name -> the JAX function computing the same thing.
JAX_ACTIVATIONS: dict[str, Activation] = {
    "linear": identity,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": partial(jax.nn.gelu, approximate=False),
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "softmax": jax.nn.softmax,
    "log_softmax": jax.nn.log_softmax,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "hard_silu": jax.nn.hard_silu,
    "leaky_relu": partial(jax.nn.leaky_relu, negative_slope=0.2),
    "mish": jax.nn.mish,
    "exponential": jnp.exp,
}

_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def jax_activation(keras_fn: Callable | str | None, *, setting: str, layer: str) -> Activation:
    """The JAX function for a Keras built-in activation (a function or its name).

    Raises ValueError naming ``setting`` (e.g. ``"activation"``) for a custom function.
    """
    from seqjax.interop._lazy import require_keras

    if keras_fn is None:
        return identity
    keras = require_keras("seqjax.interop")
    name: str | None = (
        keras_fn if isinstance(keras_fn, str) else getattr(keras_fn, "__name__", None)
    )
    name = _ALIASES.get(name, name) if name is not None else None
    if name in JAX_ACTIVATIONS:
        try:
            builtin = keras.activations.get(name)
        except ValueError:  # pragma: no cover - a Keras without this activation
            builtin = None
        if isinstance(keras_fn, str) or keras_fn is builtin:
            return JAX_ACTIVATIONS[name]
    raise ValueError(
        f"{layer}: {setting}={keras_fn!r} is not supported; use one of Keras' built-in "
        f"activations {sorted(JAX_ACTIVATIONS)}."
    )


def keras_activation_name(fn: Callable, *, setting: str, layer: str) -> str:
    """The Keras name of a JAX activation from :data:`JAX_ACTIVATIONS` (compared by identity)."""
    for name, candidate in JAX_ACTIVATIONS.items():
        if fn is candidate:
            return name
    if fn is jax.nn.swish:
        return "silu"
    raise ValueError(
        f"{layer}: {setting}={fn!r} has no Keras equivalent; use one of "
        f"{sorted(JAX_ACTIVATIONS)} from seqjax.interop.activations.JAX_ACTIVATIONS."
    )

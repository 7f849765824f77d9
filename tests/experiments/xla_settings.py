"""XLA settings the experiment tests share."""

from __future__ import annotations

import contextlib

import jax


@contextlib.contextmanager
def fast_compile():
    """XLA's faster-compiling setting for the duration of the block (MobileNetV2 compiles in
    about half the time; the tiny runs execute only a few steps)."""
    old = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", old)

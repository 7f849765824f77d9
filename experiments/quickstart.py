r"""Quickstart: an LSTM learns a short adding problem on a laptop CPU in well under a minute.

    python -m experiments.quickstart                 # defaults: T=20, 800 steps
    python -m experiments.quickstart --steps=200 --length=10

Each sequence holds pairs (value in [-1, 1], marker); two values are marked; the target is the sum
of the marked values (scaled as in Hochreiter & Schmidhuber 1997: 0.5 + (X1 + X2) / 4). A sequence
counts as solved when the absolute error is below 0.04.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from seqjax.nn import LSTM

FLAGS = flags.FLAGS
flags.DEFINE_integer("length", 20, "sequence length T")
flags.DEFINE_integer("hidden", 32, "LSTM units")
flags.DEFINE_integer("steps", 800, "Adam steps")
flags.DEFINE_integer("batch", 64, "batch size")
flags.DEFINE_float("learning_rate", 1e-2, "Adam learning rate")
flags.DEFINE_integer("seed", 0, "random seed")


def make_batch(rng: np.random.Generator, batch: int, length: int):
    """Adding problem batch: inputs [batch, length, 2], targets [batch]."""
    values = rng.uniform(-1, 1, (batch, length))
    markers = np.zeros((batch, length))
    first = rng.integers(0, length // 2, batch)
    second = rng.integers(length // 2, length, batch)
    markers[np.arange(batch), first] = 1.0
    markers[np.arange(batch), second] = 1.0
    targets = 0.5 + (values[np.arange(batch), first] + values[np.arange(batch), second]) / 4
    inputs = np.stack([values, markers], axis=-1).astype(np.float32)
    return inputs, targets.astype(np.float32)


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    layer = LSTM(FLAGS.hidden, forget_bias=1.0)
    x0, _ = make_batch(rng, FLAGS.batch, FLAGS.length)
    params = {
        "lstm": layer.init(jax.random.key(FLAGS.seed), x0)["params"],
        "readout": {"w": jnp.zeros((FLAGS.hidden,)), "b": jnp.zeros(())},
    }

    def predict(params, x):
        _, ys = layer.apply({"params": params["lstm"]}, x)
        return ys[:, -1] @ params["readout"]["w"] + params["readout"]["b"]

    def loss_fn(params, x, y):
        return jnp.mean((predict(params, x) - y) ** 2)

    tx = optax.adam(FLAGS.learning_rate)
    opt_state = tx.init(params)

    @jax.jit
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    start = time.perf_counter()
    for step in range(1, FLAGS.steps + 1):
        x, y = make_batch(rng, FLAGS.batch, FLAGS.length)
        params, opt_state, loss = train_step(params, opt_state, x, y)
        if step % 100 == 0 or step == FLAGS.steps:
            print(f"step {step:5d}  train MSE {float(loss):.5f}", flush=True)
    x, y = make_batch(np.random.default_rng(FLAGS.seed + 1), 2560, FLAGS.length)
    errors = np.abs(np.asarray(jax.jit(predict)(params, x)) - y)
    print(
        f"test: MSE {np.mean(errors**2):.5f}, solved {np.mean(errors < 0.04):.1%} of 2,560 "
        f"sequences (|error| < 0.04); {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    app.run(main)

r"""Quickstart: an LSTM learns a short adding problem on a laptop CPU in well under a minute.

    python -m experiments.quickstart                 # defaults: T=20, 800 steps
    python -m experiments.quickstart --steps=200 --length=10

Each sequence holds pairs (value in [-1, 1], marker); two values are marked; the target is the sum
of the marked values (scaled as in Hochreiter & Schmidhuber 1997: 0.5 + (X1 + X2) / 4). A sequence
counts as solved when the absolute error is below 0.04. Training is ``seqjax.train.fit`` on a
step budget of fresh batches (``FreshBatches``), scored once on 2,560 test sequences.
"""

from __future__ import annotations

import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging

from seqjax.nn import LSTM
from seqjax.train import FreshBatches, SequenceModel, fit

FLAGS = flags.FLAGS
flags.DEFINE_integer("length", 20, "sequence length T")
flags.DEFINE_integer("hidden", 32, "LSTM units")
flags.DEFINE_integer("steps", 800, "Adam steps")
flags.DEFINE_integer("batch", 64, "batch size")
flags.DEFINE_float("learning_rate", 1e-2, "Adam learning rate")
flags.DEFINE_integer("seed", 0, "random seed")


def make_batch(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    """Adding problem batch: inputs [batch, length, 2], targets [batch, 1]."""
    values = rng.uniform(-1, 1, (batch, length))
    markers = np.zeros((batch, length))
    first = rng.integers(0, length // 2, batch)
    second = rng.integers(length // 2, length, batch)
    markers[np.arange(batch), first] = 1.0
    markers[np.arange(batch), second] = 1.0
    targets = 0.5 + (values[np.arange(batch), first] + values[np.arange(batch), second]) / 4
    inputs = np.stack([values, markers], axis=-1).astype(np.float32)
    return {"inputs": inputs, "targets": targets[:, None].astype(np.float32)}


def solved(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """1.0 per sequence with ``|error| < 0.04``: ``[B]``."""
    return (jnp.abs(predictions - targets) < 0.04).astype(jnp.float32)[..., 0]


def train(workdir: str, *, steps: int, batch: int, length: int, hidden: int, learning_rate, seed):
    """Trains the LSTM through ``seqjax.train.fit``; returns its ``FitResult``."""
    every = min(100, steps)
    source = FreshBatches(
        lambda step: make_batch(np.random.default_rng([seed, step]), batch, length), every
    )
    test = make_batch(np.random.default_rng([seed, 1]), 2560, length)
    return fit(
        SequenceModel(LSTM(hidden, forget_bias=1.0), output_features=1, return_sequences=False),
        source,
        optimizer=optax.adam(learning_rate),
        workdir=workdir,
        num_steps=steps - steps % every,
        test_data=[test],
        loss="mse",
        metrics={"solved": solved},
        stateful=False,
        seed=seed,
        log_every=every,
        progress=False,
        tensorboard=False,
    )


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        result = train(
            scratch,
            steps=FLAGS.steps,
            batch=FLAGS.batch,
            length=FLAGS.length,
            hidden=FLAGS.hidden,
            learning_rate=FLAGS.learning_rate,
            seed=FLAGS.seed,
        )
    for record in result.history:
        print(f"step {record['step']:5d}  train MSE {record['train']['loss']:.5f}", flush=True)
    test = result.test
    print(
        f"test: MSE {test['loss']:.5f}, solved {test['solved']:.1%} of {int(test['count']):,} "
        f"sequences (|error| < 0.04); {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    app.run(main)

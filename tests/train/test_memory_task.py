"""A stateful LSTM learns what only the carry from earlier batches can tell; reset every batch,
the same model cannot (the task: train_helpers.cue_task)."""

from __future__ import annotations

import functools

import optax
from train_helpers import cue_task

from seqjax.nn import LSTM
from seqjax.train import SequenceModel, fit


def test_stateful_lstm_recalls_a_cue_from_an_earlier_batch_and_a_reset_one_cannot(tmp_path):
    model = SequenceModel(LSTM(8), output_features=1)
    optimizer = optax.adam(3e-2)
    val = cue_task(10_000, score_later_chunks_only=True)  # scored on chunks 2..4 only
    options = dict(
        optimizer=optimizer, num_epochs=15, val_data=val, progress=False, tensorboard=False
    )
    data = functools.partial(cue_task, streams=32)
    stateful = fit(model, data, workdir=tmp_path / "stateful", stateful=True, **options)
    reset = fit(model, data, workdir=tmp_path / "reset", stateful=False, **options)
    assert stateful.history[-1]["val"]["loss"] < 0.1
    assert reset.history[-1]["val"]["loss"] > 0.8  # chance level is 1.0

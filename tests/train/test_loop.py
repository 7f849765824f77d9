"""fit(): logs, early stopping, interrupt-and-resume, the NaN guard, the batch-size guard."""

from __future__ import annotations

import json

import jax
import numpy as np
import optax
import pytest
from train_helpers import stream_data

from seqjax.nn import LSTM
from seqjax.train import Checkpointer, NonFiniteError, SequenceModel, fit

# The same model and optimiser objects in every test: fit's jitted steps are cached, so the
# fits of this module compile the train step once.
MODEL = SequenceModel(LSTM(4), output_features=1, dropout_rate=0.1)
OPTIMIZER = optax.adam(1e-2)
DATA = stream_data(num_batches=4, batch=4, time=5)
VAL = stream_data(num_batches=2, batch=4, time=5, seed=1)
OPTIONS = dict(optimizer=OPTIMIZER, metrics=("mae",), progress=False, clip_norm=1.0)


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_fit_logs_evaluates_and_stops_early(tmp_path):
    # The validation loss falls as the model learns, so with monitor_mode="max" no epoch after
    # the first is better: the run stops after 1 + patience epochs.
    result = fit(
        MODEL,
        DATA,
        workdir=tmp_path,
        num_epochs=10,
        val_data=VAL,
        test_data=VAL,
        early_stopping_patience=2,
        monitor_mode="max",
        **OPTIONS,
    )
    assert result.stopped_early and result.best_epoch == 0
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    assert result.history[-1]["val"]["loss"] < result.history[0]["val"]["loss"]
    assert set(result.test) == {"loss", "mae", "count"} and result.test["count"] == 2 * 4 * 5
    assert int(result.state.step) == 12
    splits = [r["split"] for r in _records(tmp_path)]
    assert splits.count("val") == 3 and splits.count("train_epoch") == 3 and splits[-1] == "test"
    assert all(np.isfinite(r["loss"]) for r in _records(tmp_path))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 12
    # Started again, the finished run resumes at its end: nothing more is trained.
    again = fit(MODEL, DATA, workdir=tmp_path, num_epochs=10, val_data=VAL, **OPTIONS)
    assert int(again.state.step) == 12 and again.stopped_early


def _callable(data, *, crash_at=None, nan_at=None):
    """``epoch -> batches`` over stacked ``data``; raises before global batch ``crash_at`` or puts
    NaN into global batch ``nan_at``."""
    per_epoch = data["inputs"].shape[0]

    def source(epoch):
        for i in range(per_epoch):
            index = epoch * per_epoch + i
            if index == crash_at:
                raise RuntimeError("simulated crash")
            batch = {k: v[i].copy() for k, v in data.items()}
            if index == nan_at:
                batch["inputs"][0, 0, 0] = np.nan
            yield batch

    return source


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    run = dict(num_epochs=3, val_data=VAL, test_data=VAL, eval_carry="continue", log_every=1)
    run.update(OPTIONS)
    whole = fit(MODEL, DATA, workdir=tmp_path / "whole", checkpoint_every=3, **run)
    assert int(whole.state.step) == 12

    # A crash before the 7th batch (epoch 1, batch 2), the last checkpoint at step 6.
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(
            MODEL,
            _callable(DATA, crash_at=6),
            workdir=tmp_path / "crash",
            checkpoint_every=3,
            **run,
        )
    assert Checkpointer(tmp_path / "crash" / "checkpoints").latest_step() == 6
    resumed = fit(MODEL, DATA, workdir=tmp_path / "crash", checkpoint_every=3, **run)

    # A budget of 5 steps, then the rest.
    partial = fit(MODEL, DATA, workdir=tmp_path / "budget", max_steps=5, **run)
    assert int(partial.state.step) == 5 and partial.test is None  # no test before the end
    budget = fit(MODEL, DATA, workdir=tmp_path / "budget", **run)

    for other in (resumed, budget):
        jax.tree.map(np.testing.assert_array_equal, other.state.params, whole.state.params)
        jax.tree.map(np.testing.assert_array_equal, other.state.opt_state, whole.state.opt_state)
        jax.tree.map(np.testing.assert_array_equal, other.carry, whole.carry)
        assert other.history == whole.history
        assert other.test == whole.test
    # The metrics file of the resumed run reads like the uninterrupted one.
    assert _records(tmp_path / "crash") == _records(tmp_path / "whole")


def test_nan_guard_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    source = _callable(DATA, nan_at=6)  # epoch 1, batch 2: train step 6
    with pytest.raises(NonFiniteError, match=r"at train step 6 \(epoch 1, batch 2\)") as error:
        fit(MODEL, source, workdir=tmp_path, num_epochs=3, checkpoint_every=2, log_every=10, **OPTIONS)  # fmt: skip
    assert error.value.step == 6
    assert "last good checkpoint (step 6)" in str(error.value)
    checkpointer = Checkpointer(tmp_path / "checkpoints")
    assert checkpointer.latest_step() == 6 and 8 not in checkpointer.manager.all_steps()
    restored = checkpointer.manager.restore(6)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored["state"]["params"]))
    checkpointer.close()


def test_stateful_fit_rejects_a_batch_of_another_size_and_shuffling(tmp_path):
    batches = [{k: v[i] for k, v in DATA.items()} for i in range(3)]
    batches[2] = {k: v[:2] for k, v in batches[2].items()}
    with pytest.raises(ValueError, match="this batch has 2 rows but the carry holds 4 streams"):
        fit(MODEL, batches, workdir=tmp_path / "a", num_epochs=1, **OPTIONS)
    with pytest.raises(ValueError, match="shuffle"):
        fit(MODEL, DATA, workdir=tmp_path / "b", num_epochs=1, shuffle=True, **OPTIONS)
    # Without stateful, shuffling is fine and every batch starts from zeros.
    result = fit(MODEL, DATA, workdir=tmp_path / "c", num_epochs=1, stateful=False, shuffle=True, **OPTIONS)  # fmt: skip
    assert int(result.state.step) == 4


def test_eval_carry_continue_starts_validation_from_the_training_carry(tmp_path):
    run = dict(num_epochs=1, val_data=DATA, **OPTIONS)
    zeros = fit(MODEL, DATA, workdir=tmp_path / "zeros", **run)
    warm = fit(MODEL, DATA, workdir=tmp_path / "warm", eval_carry="continue", **run)
    jax.tree.map(np.testing.assert_array_equal, zeros.state.params, warm.state.params)
    assert zeros.history[0]["val"]["loss"] != warm.history[0]["val"]["loss"]

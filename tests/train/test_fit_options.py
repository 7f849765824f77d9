"""fit()'s options for the experiments and transfer learning: a step budget of fresh batches,
evaluation every N steps, resume mid-budget, stop_at, keep_best, given variables, frozen
parameters, models without carry (images), metric functions; containers' own carries."""

from __future__ import annotations

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN
from seqjax.train import (
    FreshBatches,
    SequenceModel,
    check_batch,
    create_train_state,
    fit,
    zero_carry,
)

MODEL = SequenceModel(GRU(4), output_features=1, return_sequences=False)
OPTIONS = dict(optimizer=optax.adam(1e-2), stateful=False, progress=False, tensorboard=False)


def sum_batch(step: int) -> dict[str, np.ndarray]:
    """A fresh batch for ``step``: the target is the sum of the inputs."""
    x = np.random.default_rng([0, step]).normal(size=(8, 4, 1)).astype(np.float32)
    return {"inputs": x, "targets": x.sum(1)}


VAL = [sum_batch(10_000)]


def _train_records(workdir):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "train"]


def test_a_step_budget_of_fresh_batches_validates_every_n_steps(tmp_path):
    seen = []

    def make(step):
        seen.append(step)
        return sum_batch(step)

    result = fit(MODEL, FreshBatches(make, 5), num_steps=15, val_data=VAL, workdir=tmp_path,
                 log_every=5, **OPTIONS)  # fmt: skip
    assert [h["step"] for h in result.history] == [5, 10, 15]
    assert all(h["val"]["count"] == 8.0 for h in result.history)
    assert sorted(set(seen)) == list(range(15))  # each step its own batch
    assert result.history[-1]["val"]["loss"] < result.history[0]["val"]["loss"]
    with pytest.raises(ValueError, match="multiple of the batches per epoch"):
        fit(MODEL, FreshBatches(sum_batch, 4), num_steps=10, workdir=tmp_path / "x", **OPTIONS)
    with pytest.raises(ValueError, match="exactly one of num_epochs and num_steps"):
        fit(MODEL, FreshBatches(sum_batch, 5), workdir=tmp_path / "y", **OPTIONS)


def test_a_budget_interrupted_by_max_steps_resumes_to_the_same_parameters(tmp_path):
    source = FreshBatches(sum_batch, 5)
    whole = fit(MODEL, source, num_steps=15, workdir=tmp_path / "whole", **OPTIONS)
    fit(MODEL, source, num_steps=15, max_steps=7, workdir=tmp_path / "cut", **OPTIONS)
    resumed = fit(MODEL, source, num_steps=15, workdir=tmp_path / "cut", **OPTIONS)
    assert jax.tree.all(jax.tree.map(np.array_equal, whole.state.params, resumed.state.params))


def test_stop_at_ends_a_run_once_validation_reaches_the_value(tmp_path):
    result = fit(MODEL, FreshBatches(sum_batch, 5), num_steps=50, val_data=VAL, stop_at=1e9,
                 workdir=tmp_path, **OPTIONS)  # fmt: skip
    assert result.stopped_early and len(result.history) == 1


def test_keep_best_returns_the_state_of_the_best_validation_epoch(tmp_path):
    # monitor_mode="max" on a falling loss: the first epoch stays the best.
    result = fit(MODEL, FreshBatches(sum_batch, 5), num_steps=15, val_data=VAL, keep_best=True,
                 monitor_mode="max", workdir=tmp_path, **OPTIONS)  # fmt: skip
    assert result.best_epoch == 0 and int(result.best_state.step) == 5
    assert int(result.state.step) == 15


def test_variables_start_the_run_and_metric_functions_are_logged(tmp_path):
    example = sum_batch(0)
    start = create_train_state(MODEL, optax.sgd(0.0), example, seed=7)
    variables = {"params": start.params}
    half = {"half_error": lambda p, t: 0.5 * jnp.abs(p - t)[..., 0]}
    result = fit(MODEL, FreshBatches(sum_batch, 1), num_steps=1, val_data=VAL, metrics=half,
                 variables=variables, workdir=tmp_path, **{**OPTIONS, "optimizer": optax.sgd(0.0)})  # fmt: skip
    assert jax.tree.all(jax.tree.map(np.array_equal, result.state.params, start.params))
    assert result.history[0]["val"]["half_error"] > 0


def test_frozen_parameters_stay_bit_identical_with_weight_decay(tmp_path):
    example = sum_batch(0)
    params = create_train_state(MODEL, optax.sgd(0.0), example).params
    frozen = jax.tree_util.tree_map_with_path(lambda path, _: "recurrent" in str(path), params)
    result = fit(MODEL, FreshBatches(sum_batch, 5), num_steps=10, frozen=frozen, clip_norm=0.1,
                 workdir=tmp_path, **{**OPTIONS, "optimizer": optax.adamw(1e-2, weight_decay=0.5)})  # fmt: skip
    new = result.state.params
    assert jax.tree.all(jax.tree.map(np.array_equal, new["recurrent"], params["recurrent"]))
    assert not np.array_equal(new["head"]["kernel"], params["head"]["kernel"])
    grad_norms = [r["grad_norm"] for r in _train_records(tmp_path)]
    assert grad_norms and all(g > 0 for g in grad_norms)
    with pytest.raises(ValueError, match="structure of the model's parameters"):
        fit(MODEL, FreshBatches(sum_batch, 5), num_steps=5, frozen={"head": True},
            workdir=tmp_path / "bad", **OPTIONS)  # fmt: skip


class TinyClassifier(nn.Module):
    """An image model without carry: conv, BatchNorm (training mode), pooled dense logits."""

    @nn.compact
    def __call__(self, inputs, carry=None, *, deterministic=True):
        x = nn.Conv(4, (3, 3))(inputs)
        x = nn.BatchNorm(use_running_average=deterministic, momentum=0.5)(x)
        return None, nn.Dense(3)(jnp.mean(nn.relu(x), axis=(1, 2)))

    def initial_carry(self, batch_size, dtype=None):
        return None


def test_an_image_classifier_without_carry_trains_resumes_and_tests(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (4, 6))
    images = rng.normal(size=(4, 6, 8, 8, 2)).astype(np.float32) + labels[..., None, None, None]
    data = {"inputs": images, "targets": labels.astype(np.int32)}
    options = dict(loss="cross_entropy", metrics=("accuracy",), shuffle=True, **OPTIONS)
    first = fit(TinyClassifier(), data, num_epochs=2, val_data=data, test_data=data,
                workdir=tmp_path, **options)  # fmt: skip
    assert first.carry is None and first.test["count"] == 24.0
    assert 0.0 <= first.test["accuracy"] <= 1.0
    again = fit(TinyClassifier(), data, num_epochs=3, workdir=tmp_path, **options)
    assert len(again.history) == 3  # resumed after epoch 2 (the None carry checkpointed)
    assert not jax.tree.all(
        jax.tree.map(np.array_equal, again.state.batch_stats, first.state.batch_stats)
    )  # training mode updated the statistics


def test_image_batches_are_checked():
    images = np.zeros((2, 8, 8, 3), np.float32)
    assert check_batch({"inputs": images, "targets": np.zeros(2, np.int32)}) == 2
    with pytest.raises(ValueError, match="seq_lengths.*need sequences"):
        check_batch({"inputs": images, "targets": np.zeros(2), "seq_lengths": np.ones(2)})
    with pytest.raises(ValueError, match=r"\[batch, time, features\].*got shape \(2, 8\)"):
        check_batch({"inputs": np.zeros((2, 8)), "targets": np.zeros(2)})


def test_containers_build_their_own_carry():
    stack = StackedRNN([LSTM(3), Bidirectional(GRU(2)), SimpleRNN(4)])
    carry = zero_carry(SequenceModel(stack, 1), 5)
    x = jnp.ones((5, 6, 2))
    variables = stack.init(jax.random.key(0), x)
    expected, _ = stack.apply(variables, x)  # the carry structure the stack returns
    assert jax.tree.structure(carry) == jax.tree.structure(expected)
    assert all(
        a.shape == b.shape
        for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(expected), strict=True)
    )
    assert all(not np.any(leaf) for leaf in jax.tree.leaves(carry))
    with pytest.raises(TypeError, match="initial_carry"):
        zero_carry(nn.Dense(3), 2)


def test_padded_stateful_validation_scores_every_step_like_one_pass_per_stream(tmp_path):
    """drop="pad": the padded targets are masked and seq_lengths hold the carry, so the
    validation loss equals one pass over each stream's real steps from a zero carry."""
    from seqjax.data import stateful_batches

    model = SequenceModel(LSTM(3), output_features=1)
    series = np.sin(np.arange(48) / 3.0).astype(np.float32)  # 47 pairs: 2 x 5 x 5 = 50 slots
    train = stateful_batches(series, 2, 5, drop="pad")
    val = stateful_batches(series, 2, 5, drop="pad")
    result = fit(model, train, val_data=val, num_epochs=1, workdir=tmp_path,
                 **{**OPTIONS, "optimizer": optax.sgd(0.0), "stateful": True})  # fmt: skip
    params = {"params": result.state.params}
    n = val["inputs"].shape[0]
    errors = []
    for j in range(2):  # stream j: steps j*n*5 .. of the 47 real pairs, one pass from zeros
        lo, hi = j * n * 5, min((j + 1) * n * 5, 47)
        x = series[lo:hi][None, :, None]
        _, pred = model.apply(params, jnp.asarray(x))
        errors.append((np.asarray(pred)[0, :, 0] - series[lo + 1 : hi + 1]) ** 2)
    expected = np.concatenate(errors)
    assert len(expected) == 47 and result.history[0]["val"]["count"] == 47.0
    np.testing.assert_allclose(result.history[0]["val"]["loss"], expected.mean(), rtol=1e-5)

import numpy as np
import pytest

from seqjax.data import (
    minibatches,
    periodic_targets,
    series_iterator,
    stateful_batches,
    stateful_iterator,
    windows,
)

KEYS = {"inputs", "targets", "mask", "seq_lengths", "reset"}


def test_stateful_iterator_keys_and_resets():
    series = np.random.default_rng(0).normal(size=(101, 3)).astype(np.float32)
    batches = list(stateful_iterator(series, 4, 5, num_epochs=2))
    inputs, targets = stateful_batches(series, 4, 5)
    assert len(batches) == 2 * inputs.shape[0]
    for k, b in enumerate(batches):
        assert set(b) == KEYS
        assert b["inputs"].shape == (4, 5, 3) and b["mask"].shape == (4, 5)
        np.testing.assert_array_equal(b["inputs"], inputs[k % 5])
        assert b["reset"].all() == (k % 5 == 0) and b["reset"].any() == (k % 5 == 0)
        assert (b["seq_lengths"] == 5).all() and b["mask"].all()


def test_stateful_iterator_with_periodic_mask():
    series = np.random.default_rng(0).normal(size=(48, 2))
    targets, mask = periodic_targets(np.arange(4.0), 12)
    batches = list(stateful_iterator(series, 2, 6, targets=targets, mask=mask))
    assert sum(int(b["mask"].sum()) for b in batches) == 4
    with pytest.raises(
        ValueError, match="mask must have shape \\[time\\] = \\(48,\\), got \\(47,\\)"
    ):
        list(stateful_iterator(series, 2, 6, targets=targets, mask=mask[:-1]))


def test_series_iterator_epochs():
    data = [np.arange(float(n)) for n in range(2, 30)]
    batches = list(series_iterator(data, 3, 4, num_epochs=2, seed=0))
    assert all(set(b) == KEYS for b in batches)
    assert all(b["inputs"].shape == (3, 4, 1) for b in batches)
    per_epoch = sum(int(b["mask"].sum()) for b in batches) / 2
    assert per_epoch == sum(n - 1 for n in range(2, 30))
    endless = series_iterator(data, 3, 4, num_epochs=None)
    assert len([next(endless) for _ in range(500)]) == 500


def test_minibatches_pad_and_cover():
    inputs, targets = windows(np.arange(30.0), 5)
    seen = []
    for b in minibatches({"inputs": inputs, "targets": targets}, 8, seed=1):
        assert b["inputs"].shape == (8, 5) and b["mask"].shape == (8,)
        seen.extend(b["targets"][b["mask"]].tolist())
        np.testing.assert_array_equal(b["targets"][b["mask"]], b["inputs"][b["mask"], -1] + 1)
    assert sorted(seen) == list(targets)
    dropped = list(minibatches({"inputs": inputs}, 8, drop_remainder=True))
    assert len(dropped) == 3 and all(b["mask"].all() for b in dropped)


def test_minibatches_keep_given_mask():
    mask = np.ones((5, 4), bool)
    batches = list(minibatches({"inputs": np.ones((5, 4)), "mask": mask}, 4, shuffle=False))
    assert batches[1]["mask"].shape == (4, 4)
    assert batches[1]["mask"][0].all() and not batches[1]["mask"][1:].any()
    with pytest.raises(ValueError, match="same leading length"):
        next(minibatches({"a": np.ones(3), "b": np.ones(4)}, 2))


def test_next_step_mask_and_bad_policy():
    series = np.arange(13.0)
    mask = np.arange(13) % 2 == 0  # mask[t]: does the target of input step t count
    (b,) = stateful_iterator(series, 1, 12, mask=mask)
    np.testing.assert_array_equal(b["mask"][0], mask[:12])
    with pytest.raises(ValueError, match="nan_policy must be 'raise' or 'propagate'"):
        next(stateful_iterator(series, 1, 12, nan_policy="omit"))


def test_a_jitted_step_consumes_both_iterators_with_one_compilation():
    jax = pytest.importorskip("jax")
    traces = []

    @jax.jit
    def step(state, batch):
        traces.append(1)
        state = jax.numpy.where(batch["reset"][:, None], 0.0, state)
        state = state + (batch["inputs"][..., 0] * batch["mask"]).sum(axis=1, keepdims=True)
        return state, (batch["targets"][..., 0] * batch["mask"]).sum()

    series = np.random.default_rng(0).normal(size=(97, 1)).astype(np.float32)
    many = [series[:n] for n in (10, 33, 20, 50, 5)]
    state = jax.numpy.zeros((4, 1))
    for batch in stateful_iterator(series, 4, 6, num_epochs=2, warn=False):
        state, _ = step(state, batch)
    for batch in series_iterator(many, 4, 6, num_epochs=2):
        state, _ = step(state, batch)
    assert len(traces) == 1

"""train_step / eval_step / predict_step: carry threading, resets, truncated BPTT, no retracing."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.nn import GRU, LSTM, LSTMCarry, SimpleRNN, StackedRNN
from seqjax.train import (
    SequenceModel,
    create_train_state,
    epoch_batches,
    eval_step,
    predict_step,
    reset_carry,
    train_step,
    zero_carry,
)

RNG = np.random.default_rng(0)


# One model for most tests, so they share compilations: an LSTM carry inside a stack's tuple.
MODEL = SequenceModel(StackedRNN([LSTM(4), GRU(3)]), output_features=2)
PREDICT = jax.jit(predict_step)
EVALUATE = jax.jit(functools.partial(eval_step, metrics=("mae",)))
APPLY = jax.jit(MODEL.apply)


@pytest.fixture(scope="module")
def state():
    return create_train_state(MODEL, optax.adam(1e-2), np.zeros((3, 5, 2), np.float32))


def test_stateful_chunks_equal_one_pass(state):
    """k consecutive chunks with the carry threaded == one pass over the whole sequence."""
    batch, chunks, time = 3, 4, 5
    x = RNG.normal(size=(batch, chunks * time, 2)).astype(np.float32)
    y = RNG.normal(size=(batch, chunks * time, 2)).astype(np.float32)
    _, whole = APPLY({"params": state.params}, x)

    carry = zero_carry(MODEL, batch)
    eval_carry = zero_carry(MODEL, batch)
    pieces, losses = [], []
    for k in range(chunks):
        part = slice(k * time, (k + 1) * time)
        chunk = {"inputs": x[:, part], "targets": y[:, part]}
        carry, out = PREDICT(state, carry, chunk)
        eval_carry, metrics = EVALUATE(state, eval_carry, chunk)
        pieces.append(out)
        losses.append(metrics["loss"])
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, rtol=1e-5, atol=1e-6)
    whole_loss = np.mean(np.mean((np.asarray(whole) - y) ** 2, -1))
    np.testing.assert_allclose(np.mean(losses), whole_loss, rtol=1e-5)
    jax.tree.map(np.testing.assert_array_equal, carry, eval_carry)


def test_reset_carry_zeros_exactly_the_named_rows():
    cell = RNG.normal(size=(6, 4)).astype(np.float32)
    hidden = RNG.normal(size=(6, 4)).astype(np.float32)
    reset = np.array([True, False, False, True, False, True])
    out = reset_carry(LSTMCarry(jnp.asarray(cell), jnp.asarray(hidden)), reset)
    for got, original in ((out.cell, cell), (out.hidden, hidden)):
        got = np.asarray(got)
        assert np.all(got[reset] == 0.0)
        np.testing.assert_array_equal(got[~reset], original[~reset])  # bit for bit


def test_reset_in_a_batch_restarts_only_those_streams(state):
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    carry, _ = PREDICT(state, zero_carry(MODEL, 3), {"inputs": x})
    reset = np.array([False, True, False])
    _, with_reset = PREDICT(state, carry, {"inputs": x, "reset": reset})
    _, continued = APPLY({"params": state.params}, x, carry)
    _, fresh = APPLY({"params": state.params}, x)
    np.testing.assert_allclose(with_reset[1], fresh[1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(with_reset[~reset], continued[~reset], rtol=1e-6, atol=1e-7)
    assert not np.allclose(continued[1], fresh[1])


def _hand_tbptt_grads(p, carry0, x, y, mask, k2):
    """Truncated BPTT for h_t = tanh(x_t W + h_{t-1} U + b), y_t = h_t V + c, masked MSE.

    The incoming carry is a constant; with ``k2`` the backward recursion is also cut every k2.
    """
    W, U, b, V, c = (np.asarray(p[k], np.float64) for k in ("W", "U", "b", "V", "c"))
    batch, time, _ = x.shape
    hs = [np.asarray(carry0, np.float64)]
    for t in range(time):
        hs.append(np.tanh(x[:, t] @ W + hs[-1] @ U + b))
    preds = np.stack([h @ V + c for h in hs[1:]], axis=1)
    count = mask.sum()
    dy = 2.0 * (preds - y) / y.shape[-1] * mask[..., None] / count  # d mean_o, masked mean
    grads = {k: np.zeros_like(v) for k, v in (("W", W), ("U", U), ("b", b), ("V", V), ("c", c))}
    dh_next = np.zeros_like(hs[0])
    for t in reversed(range(time)):
        if k2 is not None and (t + 1) % k2 == 0:
            dh_next = np.zeros_like(dh_next)  # the k2 cut: no gradient from later segments
        h, h_prev = hs[t + 1], hs[t]
        grads["V"] += h.T @ dy[:, t]
        grads["c"] += dy[:, t].sum(0)
        dh = dy[:, t] @ V.T + dh_next
        da = dh * (1.0 - h**2)
        grads["W"] += x[:, t].T @ da
        grads["U"] += h_prev.T @ da
        grads["b"] += da.sum(0)
        dh_next = da @ U.T
    return grads, hs[-1]


def test_gradient_equals_hand_written_truncated_bptt():
    model = SequenceModel(SimpleRNN(3), output_features=2)
    x = RNG.normal(size=(2, 4, 2)).astype(np.float32)
    y = RNG.normal(size=(2, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1], [1, 0, 1, 1]], np.float32)
    carry0 = RNG.normal(size=(2, 3)).astype(np.float32) * 0.5  # the previous batch's state
    state = create_train_state(model, optax.sgd(1.0), x)
    rec, head = state.params["recurrent"], state.params["head"]
    p = {"W": rec["kernel"], "U": rec["recurrent_kernel"], "b": rec["bias"]}
    p.update({"V": head["kernel"], "c": head["bias"]})
    batch = {"inputs": x, "targets": y, "mask": mask}
    losses = []
    for k2 in (None, 2):  # the gradient cut at the batch start, then also every 2 steps
        step = jax.jit(functools.partial(train_step, truncation=k2))
        new_state, carry, metrics = step(state, jnp.asarray(carry0), batch, state.base_key())
        expected, last_hidden = _hand_tbptt_grads(p, carry0, x, y, mask, k2)
        got = jax.tree.map(lambda old, new: np.asarray(old) - np.asarray(new), state.params, new_state.params)  # fmt: skip
        pairs = [
            (got["recurrent"]["kernel"], expected["W"]),
            (got["recurrent"]["recurrent_kernel"], expected["U"]),
            (got["recurrent"]["bias"], expected["b"]),
            (got["head"]["kernel"], expected["V"]),
            (got["head"]["bias"], expected["c"]),
        ]
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
        # The outgoing carry is the state after the batch, truncation or not.
        np.testing.assert_allclose(carry, last_hidden, rtol=1e-5, atol=1e-6)
        assert float(metrics["count"]) == mask.sum()
        losses.append(float(metrics["loss"]))
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # the cut changes only the gradient
    with pytest.raises(ValueError, match="must divide"):
        jax.jit(functools.partial(train_step, truncation=3))(
            state, jnp.asarray(carry0), batch, state.base_key()
        )


def test_no_recompilation_across_steps_of_the_same_shape(state):
    traces = []

    def counted(*args, **kwargs):
        traces.append(1)
        return train_step(*args, **kwargs)

    x = RNG.normal(size=(4, 3, 5, 2)).astype(np.float32)
    y = RNG.normal(size=(4, 3, 5, 2)).astype(np.float32)
    carry = zero_carry(MODEL, 3)
    step = jax.jit(functools.partial(counted, metrics=("mae",)), donate_argnums=(0, 1))
    rng = state.base_key()
    state = jax.tree.map(jnp.copy, state)  # the fixture's buffers must survive the donation
    for i in range(4):
        state, carry, metrics = step(state, carry, {"inputs": x[i], "targets": y[i]}, rng)
    assert len(traces) == 1
    assert step._cache_size() == 1
    assert int(state.step) == 4 and np.isfinite(float(metrics["loss"]))


def test_batch_of_another_size_raises_naming_both_sizes(state):
    batch = {"inputs": np.zeros((2, 5, 2), np.float32), "targets": np.zeros((2, 5, 2), np.float32)}
    step = jax.jit(train_step, donate_argnums=(0, 1))
    with pytest.raises(ValueError, match=r"this batch has 2 rows but the carry holds 3 streams"):
        step(state, zero_carry(MODEL, 3), batch, state.base_key())


def test_seq_lengths_leave_padding_out_of_the_loss(state):
    x = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    y = RNG.normal(size=(3, 5, 2)).astype(np.float32)
    lengths = np.array([5, 3, 0], np.int32)
    batch = {"inputs": x, "targets": y, "seq_lengths": lengths}
    carry, metrics = EVALUATE(state, zero_carry(MODEL, 3), batch)
    _, preds = APPLY({"params": state.params}, x, seq_lengths=lengths)
    valid = np.arange(5)[None, :] < lengths[:, None]
    expected = ((np.asarray(preds) - y) ** 2).mean(-1)[valid].mean()
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
    assert float(metrics["count"]) == 8.0
    # Row 1's carry is its state after its own third step; row 2 (length 0) keeps zeros.
    short_carry, _ = APPLY({"params": state.params}, x[:, :3])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6), carry, short_carry)  # fmt: skip
    assert all(np.all(leaf[2] == 0) for leaf in jax.tree.leaves(carry))


def test_many_to_one_classification_with_a_row_mask():
    model = SequenceModel(GRU(4), output_features=3, return_sequences=False)
    x = RNG.normal(size=(4, 6, 2)).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    mask = np.array([1, 1, 1, 0], np.float32)  # the last row is padding
    state = create_train_state(model, optax.sgd(0.1), x)
    batch = {"inputs": x, "targets": labels, "mask": mask}
    step = jax.jit(functools.partial(train_step, loss="cross_entropy", metrics=("accuracy",)))
    new_state, _, metrics = step(state, zero_carry(model, 4), batch, state.base_key())
    _, logits = model.apply({"params": state.params}, x)
    assert logits.shape == (4, 3)
    log_p = np.asarray(jax.nn.log_softmax(logits))
    nll = -log_p[np.arange(4), labels]
    np.testing.assert_allclose(metrics["loss"], nll[:3].mean(), rtol=1e-5)
    correct = np.argmax(logits, -1) == labels
    np.testing.assert_allclose(metrics["accuracy"], correct[:3].mean(), rtol=1e-6)
    assert float(metrics["count"]) == 3.0 and int(new_state.step) == 1


def test_epoch_batches_shuffle_rows_reproducibly():
    data = {"inputs": np.arange(24, dtype=np.float32).reshape(3, 4, 2, 1)}
    data["targets"] = data["inputs"] * 10
    first = list(epoch_batches(data, 0, shuffle=True, seed=1))
    again = list(epoch_batches(data, 0, shuffle=True, seed=1))
    other = list(epoch_batches(data, 1, shuffle=True, seed=1))
    rows = np.concatenate([b["inputs"] for b in first])
    np.testing.assert_array_equal(np.sort(rows.ravel()), np.arange(24))  # a permutation of rows
    np.testing.assert_array_equal(np.concatenate([b["targets"] for b in first]), rows * 10)
    np.testing.assert_array_equal(rows, np.concatenate([b["inputs"] for b in again]))
    assert not np.array_equal(rows, np.concatenate([b["inputs"] for b in other]))
    resumed = list(epoch_batches(data, 0, shuffle=True, seed=1, start=2))
    np.testing.assert_array_equal(resumed[0]["inputs"], first[2]["inputs"])

"""The cuDNN engine (seqjax/nn/engines/cuda.py): weight packing, lengths and reverse.

``jax.experimental.rnn.lstm`` cannot even be traced without the CUDA plugin, so on CPU the engine's
whole pipeline runs with ``rnn.lstm_ref`` (JAX's pure reference, same flat weights) in its place
and is compared with our scan LSTM and the NumPy reference: outputs, carries, gradients. On a CUDA
machine ``test_real_cudnn_or_a_clear_error`` runs the real cuDNN call against the scan; elsewhere
it checks the error.
"""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.experimental import rnn
from jax.test_util import check_grads

from seqjax.nn import GRU, LSTM, LSTMCarry, SimpleRNN
from seqjax.nn.engines import cuda
from tests.nn import nn_reference as ref


def _setup(b, t, f, h, seed=0, dtype=np.float32, **layer_kw):
    """A scan LSTM, random non-zero parameters (the bias keeps its forget bias plus noise),
    batch-major inputs and a random initial carry."""
    layer = LSTM(h, implementation="scan", **layer_kw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, t, f)).astype(dtype)
    variables = layer.init(jax.random.key(seed), x)
    init_bias = variables["params"]["bias"]
    variables = ref.random_params(variables, seed=seed + 1, scale=0.5)
    variables["params"]["bias"] = variables["params"]["bias"] + init_bias
    carry = LSTMCarry(
        cell=jnp.asarray(rng.standard_normal((b, h)), dtype),
        hidden=jnp.asarray(rng.standard_normal((b, h)), dtype),
    )
    return layer, variables, x, carry


def _lengths(b, t, seed=4):
    """Random lengths in [0, t] with, where the batch allows, one full row and rows of 0 and 1."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, t + 1, size=b)
    for row, value in enumerate((t, 0, 1)[:b]):
        lengths[row] = value
    return jnp.asarray(lengths, jnp.int32)


def _engine(layer, lstm_fn=cuda.reference_lstm):
    """The engine as the layer would call it, batch-major in and out: ``(carry, ys [B, T, H])``."""

    def apply(variables, x, carry, seq_lengths):
        new_carry, hs = cuda.run_layer(
            layer, variables["params"], carry, jnp.swapaxes(x, 0, 1), seq_lengths, lstm_fn=lstm_fn
        )
        return new_carry, jnp.swapaxes(hs, 0, 1)

    return apply


def _scan(layer):
    return lambda variables, x, carry, seq_lengths: layer.apply(variables, x, carry, seq_lengths)


def _loss(apply, seq_lengths):
    def loss(variables, x, carry):
        new_carry, ys = apply(variables, x, carry, seq_lengths)
        w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(ys * w) + jnp.sum(jnp.sin(new_carry.cell)) + jnp.sum(new_carry.hidden**2)

    return loss


def _assert_tree_close(a, b, tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _compare_with_scan(b, t, f, h, seq_lengths, tol=2e-5, lstm_fn=cuda.reference_lstm, **kw):
    layer, variables, x, carry = _setup(b, t, f, h, **kw)
    engine, scan = _engine(layer, lstm_fn), _scan(layer)

    @jax.jit  # one compilation for both implementations, outputs and gradients
    def both(variables, x, carry):
        def run(fn):
            grads = jax.grad(_loss(fn, seq_lengths), argnums=(0, 1, 2))(variables, x, carry)
            return fn(variables, x, carry, seq_lengths), grads

        return run(engine), run(scan)

    (out_e, grads_e), (out_s, grads_s) = both(variables, x, carry)
    _assert_tree_close(out_e, out_s, tol)
    _assert_tree_close(grads_e, grads_s, 10 * tol)
    return out_e, grads_e


# ---- packing -------------------------------------------------------------------------------------


def test_docstring_examples():
    result = doctest.testmod(cuda, verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_packing_is_the_layout_jax_experimental_rnn_reads():
    f, h = 3, 2
    rng = np.random.default_rng(0)
    w, u, b = (
        jnp.asarray(rng.standard_normal(s), jnp.float32) for s in ((f, 4 * h), (h, 4 * h), (4 * h,))
    )
    flat = cuda.pack_lstm_weights(w, u, b)
    assert flat.shape == (rnn.get_num_params_in_lstm(f, h, 1, False),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, f, h, 1, False)
    np.testing.assert_array_equal(w_ih[0], w.T)
    np.testing.assert_array_equal(w_hh[0], u.T)
    np.testing.assert_array_equal(b_ih[0], b)
    np.testing.assert_array_equal(b_hh[0], np.zeros(4 * h))
    # gate k of cuDNN (i, f, g, o) is our block k: row k*H + j of W_ih is column k*H + j of W
    for gate in range(4):
        cols = slice(gate * h, (gate + 1) * h)
        np.testing.assert_array_equal(w_ih[0][cols], w[:, cols].T)


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 8), (2, 8), (7,)),
        ((3, 8), (3, 8), (8,)),
        ((3, 6), (1, 6), (6,)),
        ((3, 8), (2, 8), (8, 1)),
    ],
)
def test_packing_rejects_mismatched_shapes(shapes):
    w, u, b = (jnp.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=r"expected kernel \[F, 4H\]"):
        cuda.pack_lstm_weights(w, u, b)


def test_packed_weights_through_lstm_ref_are_our_lstm():
    # rnn.lstm_ref on the packed weights, full lengths, no seqjax length handling: the scan's maths.
    b, t, f, h = 3, 5, 2, 4
    layer, variables, x, carry = _setup(b, t, f, h, forget_bias=2.0)
    p = variables["params"]
    flat = cuda.pack_lstm_weights(p["kernel"], p["recurrent_kernel"], p["bias"])
    y, h_n, c_n = cuda.reference_lstm(
        x,
        carry.hidden[None],
        carry.cell[None],
        flat,
        jnp.full((b,), t, jnp.int32),
        f,
        h,
        1,
        0.0,
        False,
    )
    final, ys = layer.apply(variables, x, carry)
    _assert_tree_close((y, h_n[0], c_n[0]), (ys, final.hidden, final.cell), 2e-5)


# ---- the pipeline (lengths, reverse) with lstm_ref in place of cuDNN --------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_same_outputs_carry_and_gradients_as_the_scan(reverse, padded):
    b, t = 5, 7
    lengths = _lengths(b, t) if padded else None
    _, grads = _compare_with_scan(b, t, 3, 4, lengths, reverse=reverse, forget_bias=1.5)
    if padded:  # padded inputs get no gradient (the scan's contract), row 1 has length 0
        dx = np.asarray(grads[1])
        mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
        assert np.all(dx[~mask] == 0) and np.any(dx[mask] != 0)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_matches_the_numpy_reference(reverse):
    b, t, f, h = 4, 6, 3, 5
    layer, variables, x, carry = _setup(b, t, f, h, seed=2, reverse=reverse)
    lengths = _lengths(b, t)
    final, ys = jax.jit(_engine(layer))(variables, x, carry, lengths)
    (c_ref, h_ref), ys_ref = ref.lstm(
        ref.as_numpy(variables["params"]),
        x,
        c0=carry.cell,
        h0=carry.hidden,
        lengths=[int(v) for v in lengths],
        reverse=reverse,
    )
    _assert_tree_close((final.cell, final.hidden, ys), (c_ref, h_ref, ys_ref), 1e-5)


def test_length_zero_rows_keep_the_initial_carry():
    # lstm_ref alone gives a length-0 row the carry after all its padded steps (index -1); the
    # engine returns the initial carry and zero outputs, as the scan does.
    b, t, f, h = 3, 4, 2, 3
    layer, variables, x, carry = _setup(b, t, f, h)
    lengths = jnp.asarray([4, 0, 2], jnp.int32)
    p = variables["params"]
    flat = cuda.pack_lstm_weights(p["kernel"], p["recurrent_kernel"], p["bias"])
    _, raw_h, _ = cuda.reference_lstm(
        x, carry.hidden[None], carry.cell[None], flat, lengths, f, h, 1, 0.0, False
    )
    assert not np.allclose(raw_h[0, 1], carry.hidden[1])  # what the fix-up is for
    final, ys = _engine(layer)(variables, x, carry, lengths)
    np.testing.assert_array_equal(final.hidden[1], carry.hidden[1])
    np.testing.assert_array_equal(final.cell[1], carry.cell[1])
    np.testing.assert_array_equal(ys[1], np.zeros((t, h)))
    assert np.all(np.asarray(ys[2, 2:]) == 0) and np.all(np.asarray(ys[2, :2]) != 0)


def test_lstm_fn_never_sees_a_length_below_one():
    seen = []

    def spy(x, h_0, c_0, weights, seq_lengths, **kw):
        seen.append(np.asarray(seq_lengths))
        return cuda.reference_lstm(x, h_0, c_0, weights, seq_lengths, **kw)

    layer, variables, x, carry = _setup(3, 4, 2, 3)
    _engine(layer, spy)(variables, x, carry, jnp.asarray([0, 4, 1], jnp.int32))
    _engine(layer, spy)(variables, x, carry, None)
    np.testing.assert_array_equal(seen[0], [1, 4, 1])
    np.testing.assert_array_equal(seen[1], [4, 4, 4])
    assert seen[0].dtype == np.int32 and seen[1].dtype == np.int32


@pytest.mark.parametrize("with_lengths", [False, True])
def test_check_grads_float64(with_lengths):
    with jax.enable_x64(True):
        layer, variables, x, carry = _setup(3, 4, 2, 3, dtype=np.float64, param_dtype=jnp.float64)
        lengths = jnp.asarray([4, 2, 0], jnp.int32) if with_lengths else None
        loss = _loss(_engine(layer), lengths)
        check_grads(loss, (variables, x, carry), order=1, modes=["rev"])


@settings(max_examples=12, deadline=None)
@given(
    b=st.integers(1, 4),
    t=st.integers(1, 6),
    f=st.integers(1, 4),
    h=st.integers(1, 9),
    reverse=st.booleans(),
    padded=st.booleans(),
    forget_bias=st.sampled_from([0.0, 1.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_any_shape_same_as_scan(b, t, f, h, reverse, padded, forget_bias, seed):
    lengths = _lengths(b, t, seed=seed) if padded else None
    _compare_with_scan(b, t, f, h, lengths, reverse=reverse, forget_bias=forget_bias, seed=seed)


# ---- what is covered, and where it runs -------------------------------------------------------


def test_a_plain_lstm_is_covered():
    assert cuda.unsupported(LSTM(4), jnp.float32) == []
    assert cuda.unsupported(LSTM(4, reverse=True, learn_initial_carry=True), jnp.float32) == []


class _OwnStep(LSTM):
    def _step_fn(self):
        return super()._step_fn()


@pytest.mark.parametrize(
    "layer, dtype, kw, match",
    [
        (LSTM(4, use_peepholes=True), jnp.float32, {}, "use_peepholes=True"),
        (LSTM(4, cell_activation=jax.nn.relu), jnp.float32, {}, "activations other than tanh"),
        (LSTM(4, output_activation=jax.nn.sigmoid), jnp.float32, {}, "activations other than tanh"),
        (LSTM(4, remat=True), jnp.float32, {}, "remat=True"),
        (LSTM(4), jnp.float32, {"hidden_offsets": True}, "hidden_offsets"),
        (LSTM(4), jnp.bfloat16, {}, "dtype bfloat16"),
        (LSTM(4), jnp.float16, {}, "dtype float16"),
        (LSTM(4), jnp.float64, {}, "dtype float64"),
        (GRU(4), jnp.float32, {}, "GRU"),
        (SimpleRNN(4), jnp.float32, {}, "SimpleRNN"),
        (_OwnStep(4), jnp.float32, {}, "_OwnStep's own step function"),
    ],
)
def test_uncovered_configurations_are_named(layer, dtype, kw, match):
    why = cuda.unsupported(layer, dtype, **kw)
    assert len(why) == 1 and match in why[0], why


def test_bfloat16_matmul_precision_is_named():
    with jax.default_matmul_precision("bfloat16"):
        assert cuda.unsupported(LSTM(4), jnp.float32) == [
            "jax_default_matmul_precision='bfloat16' (no bfloat16 passes in cuDNN's LSTM)"
        ]
    with jax.default_matmul_precision("highest"):
        assert cuda.unsupported(LSTM(4), jnp.float32) == []


def test_error_names_the_scan_when_not_on_a_gpu(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    layer, variables, x, carry = _setup(2, 3, 2, 3)
    with pytest.raises(ValueError, match=r"'tpu'.*implementation='scan'"):
        cuda.run_layer(layer, variables["params"], carry, jnp.swapaxes(x, 0, 1), None)


@pytest.mark.parametrize(
    "kw, dtype, match",
    [({"use_peepholes": True}, np.float32, "use_peepholes"), ({}, np.float64, "float64")],
)
def test_run_layer_refuses_what_cudnn_does_not_cover(kw, dtype, match):
    with jax.enable_x64(dtype == np.float64):
        layer, variables, x, carry = _setup(2, 3, 2, 3, dtype=dtype, param_dtype=dtype, **kw)
        with pytest.raises(ValueError, match=rf"does not cover .*{match}.*implementation='scan'"):
            cuda.run_layer(layer, variables["params"], carry, jnp.swapaxes(x, 0, 1), None)


def test_real_cudnn_or_a_clear_error():
    """With a CUDA GPU: the real rnn.lstm against the scan (TF32 off). Elsewhere: the error."""
    reason = cuda.unavailable_reason()
    if reason is None:
        with jax.default_matmul_precision("highest"):
            for reverse in (False, True):
                _compare_with_scan(6, 9, 3, 8, _lengths(6, 9), lstm_fn=rnn.lstm, reverse=reverse)
                _compare_with_scan(4, 5, 2, 3, None, lstm_fn=rnn.lstm, reverse=reverse)
        return
    assert jax.default_backend() != "gpu" or "plugin" in reason
    layer, variables, x, carry = _setup(2, 3, 2, 3)
    with pytest.raises(ValueError, match=r"implementation='cudnn' runs only on a CUDA GPU"):
        jax.jit(_engine(layer, None))(variables, x, carry, None)

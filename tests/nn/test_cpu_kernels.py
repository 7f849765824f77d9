"""implementation="cpu_kernel" (seqjax/nn/engines/cpu.py, csrc/recurrence_cpu.cc) is the same
function as the scan and as the NumPy reference, with the same gradients; its limits raise.

The kernels are built with the machine's C++ compiler at first use; these tests need it (CI's
machine has g++), they do not skip without it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from seqjax.nn import GRU, LSTM, LSTMCarry, SimpleRNN
from tests.nn import nn_reference as ref

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def _pair(kind, features, **kw):
    cls = LAYERS[kind]
    return cls(features, implementation="cpu_kernel", **kw), cls(
        features, implementation="scan", **kw
    )


def _inputs(layer, b, t, f, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    shape = (t, b, f) if layer.time_major else (b, t, f)
    return rng.standard_normal(shape).astype(dtype)


def _carry(kind, b, h, seed=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    arr = lambda: jnp.asarray(rng.standard_normal((b, h)), dtype)
    return LSTMCarry(cell=arr(), hidden=arr()) if kind == "lstm" else arr()


def _lengths(b, t, seed=4):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, t + 1, size=b)
    lengths[0] = t  # one full row, and (for b > 2) rows of length 0 and 1 below
    if b > 2:
        lengths[1], lengths[2] = 0, 1
    return jnp.asarray(lengths, jnp.int32)


def _loss(layer, **call_kw):
    def loss(variables, x, carry):
        new_carry, ys = layer.apply(variables, x, carry, **call_kw)
        w = jnp.cos(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(ys * w) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(new_carry))

    return loss


def _assert_tree_close(a, b, tol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _compare_with_scan(kind, h, b, t, f, tol=2e-5, seq_lengths=None, scale=0.4, **kw):
    kernel_layer, scan_layer = _pair(kind, h, **kw)
    x = _inputs(scan_layer, b, t, f)
    variables = ref.random_params(scan_layer.init(jax.random.key(0), x), seed=1, scale=scale)
    carry = _carry(kind, b, h)
    call = {"seq_lengths": seq_lengths}
    out_k = jax.jit(lambda v, x, c: kernel_layer.apply(v, x, c, **call))(variables, x, carry)
    out_s = scan_layer.apply(variables, x, carry, **call)
    _assert_tree_close(out_k, out_s, tol)
    grads_k = jax.jit(jax.grad(_loss(kernel_layer, **call), argnums=(0, 1, 2)))(variables, x, carry)
    grads_s = jax.grad(_loss(scan_layer, **call), argnums=(0, 1, 2))(variables, x, carry)
    _assert_tree_close(grads_k, grads_s, 10 * tol)


OPTIONS = {
    "plain": {},
    "reverse": {"reverse": True},
    "time_major": {"time_major": True},
    "learned_carry": {"learn_initial_carry": True},
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_same_outputs_carry_and_gradients_as_the_scan(kind, option, padded):
    b, t = 5, 9
    lengths = _lengths(b, t) if padded else None
    _compare_with_scan(kind, 6, b, t, 3, seq_lengths=lengths, **OPTIONS[option])


# (batch, hidden) that select each way the kernels use threads (csrc: PlanThreads): slices of the
# batch, each through the whole time loop, from 8 rows a thread; below that, each step's hidden
# units in chunks of 16 when a step has >= 2^21 multiply-adds. Odd sizes leave unequal slices
# (20 + 21 rows) and a partial last chunk (H not a multiple of 16).
THREADING = {
    "batch_slices": {"lstm": (41, 24), "gru": (41, 24), "rnn": (41, 24)},
    "unit_chunks": {"lstm": (8, 264), "gru": (8, 312), "rnn": (8, 520)},
}


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("split", sorted(THREADING))
@pytest.mark.parametrize("threads", ["1", "2"])
def test_threaded_kernel_is_the_same_function(kind, split, threads, monkeypatch):
    monkeypatch.setenv("SEQJAX_KERNEL_THREADS", threads)
    b, h = THREADING[split][kind]
    # weights ~ 1/sqrt(H) as at H = 24: N(0, 0.4^2) weights at H = 520 make a chaotic recurrence
    # in which float32 rounding (any summation order, one thread or two) moves gradients by 1%
    scale = 0.4 * min(1.0, (24 / h) ** 0.5)
    _compare_with_scan(kind, h, b, 5, 3, tol=5e-5, seq_lengths=_lengths(b, 5), scale=scale)


def test_threads_give_the_same_result_call_after_call(monkeypatch):
    # The thread team's claim protocol under repetition: two threads, batch slices, thousands of
    # short calls, each one's results equal to the first's. (A race in it once let a helper claim
    # a chunk of a job still being published: the chunk ran twice and the call could return before
    # another chunk had run: this test crashed the process in 3 of 3 runs with it.)
    from seqjax.nn.engines import cpu

    monkeypatch.setenv("SEQJAX_KERNEL_THREADS", "2")
    rng = np.random.default_rng(0)
    t, b, f, h = 64, 32, 8, 64
    arr = lambda *s: jnp.asarray(0.3 * rng.standard_normal(s), jnp.float32)
    args = (arr(t, b, f), arr(f, 4 * h), arr(4 * h), arr(h, 4 * h), arr(b, h), arr(b, h))
    lengths = jnp.full((b,), t, jnp.int32)
    for residuals in (True, False):
        # without residuals only hs, hT and cT are results (the rest is scratch space)
        keep = range(6) if residuals else cpu.KERNELS["lstm"].outputs
        fwd = jax.jit(lambda *a, r=residuals: cpu.forward("lstm", *a, residuals=r, strict=True))
        first = [np.asarray(o) for o in fwd(*args, lengths)]
        for call in range(2000):  # back to back (the helpers' pool threads stay awake)
            outs = fwd(*args, lengths)
            if call % 250 == 249:
                for i in keep:
                    np.testing.assert_array_equal(np.asarray(outs[i]), first[i])


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("reverse", [False, True])
def test_matches_the_numpy_reference(kind, reverse):
    b, t, f, h = 4, 6, 3, 5
    layer = LAYERS[kind](h, implementation="cpu_kernel", reverse=reverse)
    x = _inputs(layer, b, t, f)
    variables = ref.random_params(layer.init(jax.random.key(0), x), seed=2)
    carry = _carry(kind, b, h)
    lengths = _lengths(b, t)
    final, ys = layer.apply(variables, x, carry, seq_lengths=lengths)
    p = ref.as_numpy(variables["params"])
    lens = [int(v) for v in lengths]
    if kind == "lstm":
        (c_ref, h_ref), ys_ref = ref.lstm(
            p, x, c0=carry.cell, h0=carry.hidden, lengths=lens, reverse=reverse
        )
        _assert_tree_close((final.cell, final.hidden), (c_ref, h_ref), 1e-5)
    else:
        fn = ref.gru if kind == "gru" else ref.simple_rnn
        h_ref, ys_ref = fn(p, x, h0=carry, lengths=lens, reverse=reverse)
        _assert_tree_close(final, h_ref, 1e-5)
    _assert_tree_close(ys, ys_ref, 1e-5)


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_check_grads_float64(kind):
    with jax.enable_x64(True):
        layer = LAYERS[kind](3, implementation="cpu_kernel", param_dtype=jnp.float64)
        x = _inputs(layer, 3, 4, 2, dtype=np.float64)
        variables = ref.random_params(layer.init(jax.random.key(0), x), seed=3)
        carry = _carry(kind, 3, 3, dtype=np.float64)
        lengths = jnp.asarray([4, 2, 0], jnp.int32)
        loss = _loss(layer, seq_lengths=lengths)
        check_grads(loss, (variables, x, carry), order=1, modes=["rev"])


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(LAYERS)),
    b=st.integers(1, 5),
    t=st.integers(1, 6),
    f=st.integers(1, 4),
    h=st.integers(1, 20),
    reverse=st.booleans(),
)
def test_any_shape_same_as_scan(kind, b, t, f, h, reverse):
    _compare_with_scan(kind, h, b, t, f, reverse=reverse)


def test_vmap_over_an_extra_axis():
    kernel_layer, scan_layer = _pair("lstm", 4)
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 3)).astype(np.float32)
    variables = scan_layer.init(jax.random.key(0), x[0])
    run = lambda layer: jax.vmap(lambda xi: layer.apply(variables, xi)[1])(x)
    _assert_tree_close(run(kernel_layer), run(scan_layer), 2e-5)


# ---- limits raise, naming what is not covered ------------------------------------------------


@pytest.mark.parametrize(
    "layer, match",
    [
        (LSTM(4, use_peepholes=True, implementation="cpu_kernel"), "use_peepholes"),
        (LSTM(4, cell_activation=jax.nn.relu, implementation="cpu_kernel"), "activations"),
        (GRU(4, activation=jax.nn.relu, implementation="cpu_kernel"), "activation"),
        (SimpleRNN(4, remat=True, implementation="cpu_kernel"), "remat"),
        (LSTM(4, dtype=jnp.bfloat16, implementation="cpu_kernel"), "bfloat16"),
    ],
)
def test_uncovered_configurations_raise(layer, match):
    x = jnp.ones((2, 3, 2))
    with pytest.raises(ValueError, match=match):
        layer.init(jax.random.key(0), x)


def test_hidden_offsets_raise():
    layer = LSTM(4, implementation="cpu_kernel")
    x = jnp.ones((2, 3, 2))
    variables = LSTM(4).init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="hidden_offsets"):
        layer.apply(variables, x, hidden_offsets=jnp.zeros((2, 3, 4)))


def test_unknown_implementation_raises():
    with pytest.raises(ValueError, match="'auto', 'scan', 'cpu_kernel', 'cudnn'.*'cuda'"):
        LSTM(4, implementation="cuda").init(jax.random.key(0), jnp.ones((2, 3, 2)))


def test_forward_mode_matches_the_scan():
    kernel_layer, scan_layer = _pair("lstm", 4)
    x = jnp.asarray(_inputs(scan_layer, 2, 3, 2))
    variables = scan_layer.init(jax.random.key(0), x)
    tangent = jnp.cos(x)
    run = lambda layer: jax.jvp(lambda x: layer.apply(variables, x)[1], (x,), (tangent,))
    _assert_tree_close(run(kernel_layer), run(scan_layer), 2e-5)


# ---- platforms ----------------------------------------------------------------------------------


def test_cpu_lowers_to_the_kernel_and_other_platforms_to_the_scan():
    from jax import export

    layer = LSTM(8, implementation="cpu_kernel")
    x = jnp.ones((2, 5, 3))
    variables = LSTM(8).init(jax.random.key(0), x)
    step = jax.jit(jax.grad(lambda v, x: jnp.sum(layer.apply(v, x)[1])))
    cpu_text = step.lower(variables, x).as_text()
    assert "SeqjaxLstmFwd" in cpu_text and "SeqjaxLstmBwd" in cpu_text
    # Exported for CUDA on this CPU-only machine: the platform choice is made at lowering, so the
    # GPU module holds the scan (a while loop) and no CPU custom call.
    cuda_text = export.export(step, platforms=["cuda"])(variables, x).mlir_module()
    assert "Seqjax" not in cuda_text and "stablehlo.while" in cuda_text

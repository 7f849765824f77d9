"""implementation="auto" (the default) picks an engine per platform when lowering: the CPU kernel
where it is covered and can be built, the scan otherwise (one warning per reason), never a C++
build for another platform; forward mode, vmap and the portable reference of the kernels."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from seqjax.nn import GRU, LSTM, LSTMCarry, SimpleRNN
from seqjax.nn.engines import cpu, cpu_build, portable
from seqjax.nn.lstm import lstm_step

LAYERS = {"lstm": LSTM, "gru": GRU, "simple_rnn": SimpleRNN}
TARGET = {"lstm": "SeqjaxLstm", "gru": "SeqjaxGru", "simple_rnn": "SeqjaxSrn"}


def _close(a, b, tol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _x(b=3, t=5, f=2, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((b, t, f)), jnp.float32)


def _train_step(layer):
    def loss(params, x):
        carry, ys = layer.apply({"params": params}, x)
        return jnp.sum(ys**2) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    def step(params, x):
        value, grads = jax.value_and_grad(loss)(params, x)
        return value, jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

    return jax.jit(step)


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(cpu, "_warned", set())


@pytest.fixture
def no_compiler(monkeypatch, tmp_path, fresh_warnings):
    """A process whose kernels are not loaded yet, on a machine with no C++ compiler."""
    monkeypatch.setenv("SEQJAX_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(cpu_build, "_compiler", lambda: None)
    monkeypatch.setattr(cpu_build, "_loaded", type(cpu_build._loaded)())  # not loaded yet


@pytest.fixture
def no_build(monkeypatch, no_compiler):
    """Records any attempt to build or load the kernels (there must be none)."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append("called")
        raise AssertionError("the CPU kernel was built or loaded")

    monkeypatch.setattr(cpu_build, "load", refuse)
    monkeypatch.setattr(cpu_build, "build", refuse)
    return calls


# ---- CPU: the kernel by default --------------------------------------------------------------


def test_default_is_auto():
    assert LSTM(4).implementation == GRU(4).implementation == SimpleRNN(4).implementation == "auto"


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_auto_runs_the_kernel_on_cpu_forward_and_backward(kind):
    layer, scan = LAYERS[kind](6), LAYERS[kind](6, implementation="scan")
    x = _x()
    params = scan.init(jax.random.key(0), x)["params"]
    step = _train_step(layer)
    text = step.lower(params, x).as_text()
    # One forward and one backward custom call, no while loop: reverse mode is the kernel's.
    assert f"{TARGET[kind]}Fwd" in text and f"{TARGET[kind]}Bwd" in text
    assert "stablehlo.while" not in text
    _close(step(params, x), _train_step(scan)(params, x), 5e-5)


def test_tracing_builds_nothing(no_build):
    layer = LSTM(5)
    x = _x()
    params = LSTM(5, implementation="scan").init(jax.random.key(0), x)["params"]
    jax.make_jaxpr(jax.grad(lambda p: jnp.sum(layer.apply({"params": p}, x)[1])))(params)
    assert no_build == []


# ---- fallback to the scan, one warning per reason ----------------------------------------------


def test_no_compiler_falls_back_to_the_scan_with_one_warning(no_compiler):
    layer, scan = LSTM(7), LSTM(7, implementation="scan")
    x = _x(seed=1)
    params = scan.init(jax.random.key(0), x)["params"]
    with pytest.warns(UserWarning, match="C\\+\\+ compiler") as record:
        step = _train_step(layer)
        text = step.lower(params, x).as_text()
        got = step(params, x)
        got_second = _train_step(LSTM(7))(params, x)  # another trace and lowering: no new warning
    assert sum("C++ compiler" in str(w.message) for w in record) == 1
    assert "Seqjax" not in text and "stablehlo.while" in text
    expected = _train_step(scan)(params, x)
    _close(got, expected, 5e-5)
    _close(got_second, expected, 5e-5)


def test_auto_runs_the_scan_where_the_kernel_build_is_the_slow_portable_one(
    monkeypatch, fresh_warnings
):
    # The portable build (no AVX2/AVX-512: aarch64, old x86) measured slower than the scan, so
    # auto keeps the scan there, with one warning; explicit cpu_kernel still means the kernel.
    monkeypatch.setenv(cpu_build.ISA_ENV, "portable")
    layer, scan = SimpleRNN(5), SimpleRNN(5, implementation="scan")
    x = _x(seed=4)
    params = scan.init(jax.random.key(0), x)["params"]
    with pytest.warns(UserWarning, match="'portable' build is not faster than the scan"):
        step = _train_step(layer)
        text = step.lower(params, x).as_text()
    assert "Seqjax" not in text and "stablehlo.while" in text
    _close(step(params, x), _train_step(scan)(params, x), 5e-5)


def test_explicit_cpu_kernel_without_compiler_raises(no_compiler):
    layer = GRU(7, implementation="cpu_kernel")
    x = _x(seed=2)
    params = GRU(7, implementation="scan").init(jax.random.key(0), x)["params"]
    with pytest.raises(cpu_build.KernelUnavailableError, match="C\\+\\+ compiler"):
        jax.jit(lambda p: layer.apply({"params": p}, x)).lower(params)


@pytest.mark.parametrize(
    "layer, reason",
    [
        (LSTM(4, use_peepholes=True), "use_peepholes"),
        (GRU(4, activation=jax.nn.relu), "activation 'relu'"),
        (SimpleRNN(4, remat=True), "remat"),
        (LSTM(4, dtype=jnp.bfloat16), "bfloat16"),
    ],
)
def test_uncovered_options_run_the_scan_with_one_warning(layer, reason, fresh_warnings):
    x = _x(b=2, t=3)
    with pytest.warns(UserWarning, match=reason):
        variables = layer.init(jax.random.key(0), x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same reason again: silent
        got = jax.jit(layer.apply)(variables, x)
        text = jax.jit(layer.apply).lower(variables, x).as_text()
    assert "Seqjax" not in text
    _close(got, layer.clone(implementation="scan").apply(variables, x), 1e-6)


def test_hidden_offsets_run_the_scan_silently(fresh_warnings):
    # the diagnostics' probe (seqjax.diagnostics passes it through models): no warning to act on
    layer, scan = LSTM(4), LSTM(4, implementation="scan")
    x = _x(b=2, t=3)
    variables = scan.init(jax.random.key(0), x)
    offsets = jnp.full((2, 3, 4), 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = layer.apply(variables, x, hidden_offsets=offsets)
    _close(got, scan.apply(variables, x, hidden_offsets=offsets), 1e-6)


def test_a_subclass_with_its_own_step_has_no_kernel(fresh_warnings):
    class ScaledLSTM(LSTM):
        def _step_fn(self):
            return lambda p, c, x: lstm_step(p, c, 0.5 * x)

    assert LSTM.kernel == "lstm" and ScaledLSTM.kernel is None
    layer = ScaledLSTM(4)
    x = _x(b=2, t=3)
    with pytest.warns(UserWarning, match="ScaledLSTM"):
        variables = layer.init(jax.random.key(0), x)
    _close(layer.apply(variables, x), layer.clone(implementation="scan").apply(variables, x), 0)
    with pytest.raises(ValueError, match="ScaledLSTM.*'scan'"):
        layer.clone(implementation="cpu_kernel").apply(variables, x)


# ---- other platforms: the scan, no build --------------------------------------------------------


@pytest.mark.parametrize("platforms", [["cuda"], ["cuda", "tpu"]], ids="+".join)
def test_export_for_accelerators_builds_nothing(platforms, no_build):
    layer = LSTM(8)
    x = _x(b=2, t=4, f=3)
    params = LSTM(8, implementation="scan").init(jax.random.key(0), x)["params"]
    exported = export.export(_train_step(layer), platforms=platforms)(params, x)
    text = exported.mlir_module()
    assert no_build == []
    assert "stablehlo.while" in text and "Seqjax" not in text and "custom_call" not in text


def test_export_for_cpu_and_cuda_together():
    layer = LSTM(8)
    x = _x(b=2, t=4, f=3)
    params = LSTM(8, implementation="scan").init(jax.random.key(0), x)["params"]
    # The CPU custom calls have no serialization guarantee: jax.export wants them named.
    checks = [export.DisabledSafetyCheck.custom_call(f"SeqjaxLstm{p}") for p in ("Fwd", "Bwd")]
    exported = export.export(_train_step(layer), platforms=["cpu", "cuda"], disabled_checks=checks)(
        params, x
    )
    text = exported.mlir_module()
    assert "SeqjaxLstmFwd" in text and "SeqjaxLstmBwd" in text  # the CPU branch
    assert "stablehlo.while" in text  # the CUDA branch
    _close(exported.call(params, x), _train_step(LSTM(8, implementation="scan"))(params, x), 5e-5)


# ---- cudnn: opt-in, CUDA and LSTM only ------------------------------------------------------------


def test_cudnn_is_refused_for_other_layers():
    with pytest.raises(ValueError, match="LSTM only.*'scan' or 'auto'"):
        GRU(4, implementation="cudnn").init(jax.random.key(0), _x(b=2, t=3))


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the refusal without CUDA")
def test_cudnn_is_refused_without_cuda():
    with pytest.raises(ValueError, match="CUDA.*'scan' or 'auto'"):
        LSTM(4, implementation="cudnn").init(jax.random.key(0), _x(b=2, t=3))


# ---- differentiation and vmap through the default -----------------------------------------------


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_forward_mode_equals_the_scan(kind):
    layer, scan = LAYERS[kind](3), LAYERS[kind](3, implementation="scan")
    x = _x(b=2, t=4)
    variables = scan.init(jax.random.key(0), x)
    lengths = jnp.array([4, 1])
    f = lambda layer: lambda x: layer.apply(variables, x, seq_lengths=lengths)[1]
    _close(jax.jacfwd(f(layer))(x), jax.jacfwd(f(scan))(x), 5e-5)
    tangent = jnp.sin(x)
    _close(jax.jvp(f(layer), (x,), (tangent,)), jax.jvp(f(scan), (x,), (tangent,)), 5e-5)


def test_second_order_names_the_scan():
    x = _x(b=2, t=3)
    variables = LSTM(3, implementation="scan").init(jax.random.key(0), x)
    loss = lambda layer: lambda p: jnp.sum(layer.apply({"params": p}, x)[1] ** 2)
    with pytest.raises(NotImplementedError, match="implementation='scan'"):
        jax.hessian(loss(LSTM(3)))(variables["params"])
    hess = jax.hessian(loss(LSTM(3, implementation="scan")))(variables["params"])
    assert np.all(np.isfinite(jax.tree.leaves(hess)[0]))


def test_vmap_folds_into_the_batch_and_per_example_gradients():
    layer, scan = LSTM(4), LSTM(4, implementation="scan")
    xs = jnp.stack([_x(b=2, t=5, seed=s) for s in range(3)])  # [3, B, T, F]
    variables = scan.init(jax.random.key(0), xs[0])
    run = lambda layer: jax.vmap(lambda x: layer.apply(variables, x))(xs)
    text = jax.jit(lambda xs: jax.vmap(lambda x: layer.apply(variables, x))(xs)).lower(xs)
    assert "SeqjaxLstmFwd" in text.as_text() and "stablehlo.while" not in text.as_text()
    _close(run(layer), run(scan))
    grad = lambda layer: jax.vmap(
        jax.grad(lambda p, x: jnp.sum(layer.apply({"params": p}, x)[1] ** 2)), in_axes=(None, 0)
    )(variables["params"], xs)
    _close(grad(layer), grad(scan), 5e-5)


def test_gradient_under_checkpoint_and_inside_a_scan():
    layer, scan = SimpleRNN(3), SimpleRNN(3, implementation="scan")
    xs = jnp.stack([_x(b=2, t=4, seed=s) for s in range(2)])  # two chunks
    params = scan.init(jax.random.key(0), xs[0])["params"]

    def loss(layer):
        def total(p):
            def chunk(carry, x):  # a stateful pass over two chunks, each step rematerialised
                carry, ys = jax.checkpoint(lambda x, c: layer.apply({"params": p}, x, c))(x, carry)
                return carry, jnp.sum(ys**2)

            return jnp.sum(jax.lax.scan(chunk, jnp.zeros((2, 3)), xs)[1])

        return total

    assert "SeqjaxSrnBwd" in jax.jit(jax.grad(loss(layer))).lower(params).as_text()
    _close(jax.grad(loss(layer))(params), jax.grad(loss(scan))(params), 5e-5)


def test_vmap_over_the_weights_loops():
    layer, scan = GRU(3), GRU(3, implementation="scan")
    x = _x(b=2, t=4)
    variables = scan.init(jax.random.key(0), x)
    stacked = jax.tree.map(lambda a: jnp.stack([a, 0.5 * a]), variables)
    run = lambda layer: jax.vmap(lambda v: layer.apply(v, x))(stacked)
    _close(run(layer), run(scan))


# ---- the portable reference is the kernel's contract ---------------------------------------------


def _kernel_args(kind, t=6, b=4, f=3, h=5, dtype=np.float64):
    rng = np.random.default_rng(7)
    g = {"lstm": 4, "gru": 3, "simple_rnn": 1}[kind]
    arr = lambda *s: jnp.asarray(0.5 * rng.standard_normal(s), dtype)
    x, w, b_, u, h0 = arr(t, b, f), arr(f, g * h), arr(g * h), arr(h, g * h), arr(b, h)
    lengths = jnp.asarray(([t, 0, 1, 4] * b)[:b], jnp.int32)
    if kind == "lstm":
        return (x, w, b_, u, h0, arr(b, h), lengths)
    if kind == "gru":
        return (x, w, b_, u, arr(g * h), h0, lengths)
    return (x, w, b_, u, h0, lengths)


def _backward_args(kind, args, outs, seed=8):
    rng = np.random.default_rng(seed)
    ct = lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype)
    if kind == "lstm":
        x, w, b, u, h0, c0, lengths = args
        hs, cs, acts, ht, ct_, _ = outs
        return (u, c0, lengths, cs, acts, ct(hs), ct(ht), ct(ct_))
    if kind == "gru":
        x, w, b, u, rb, h0, lengths = args
        hs, res, ht, _ = outs
        return (u, h0, lengths, hs, res, ct(hs), ct(ht))
    x, w, b, u, h0, lengths = args
    hs, ht, _ = outs
    return (u, lengths, hs, ct(hs), ct(ht))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("batch", [4, 41], ids=["one_thread", "batch_slices"])
def test_portable_forward_and_backward_equal_the_kernel(kind, dtype, batch, monkeypatch):
    # batch 41 on two threads: the kernels run slices of the batch (csrc: PlanThreads), 20 + 21
    # rows; batch 4 runs on one thread
    monkeypatch.setenv("SEQJAX_KERNEL_THREADS", "2")
    with jax.enable_x64(dtype == np.float64):
        args = _kernel_args(kind, b=batch, dtype=dtype)
        tol = 1e-12 if dtype == np.float64 else 2e-6
        kernel_fwd = jax.jit(lambda *a: cpu.forward(kind, *a, residuals=True, strict=True))
        assert f"{TARGET[kind]}Fwd" in kernel_fwd.lower(*args).as_text()
        outs = kernel_fwd(*args)
        port = cpu.KERNELS[kind]
        _close(outs, port.fwd_portable(*args, residuals=True), tol)
        bargs = _backward_args(kind, args, outs)
        kernel_bwd = jax.jit(lambda *a: cpu.backward(kind, *a, strict=True))
        assert f"{TARGET[kind]}Bwd" in kernel_bwd.lower(*bargs).as_text()
        _close(kernel_bwd(*bargs), port.bwd_portable(*bargs), tol)


def test_portable_lstm_is_the_cell():
    # the reference itself against the layer's own step (lstm_step), with padding
    args = _kernel_args("lstm", dtype=np.float32)
    x, w, b, u, h0, c0, lengths = args
    hs, cs, acts, ht, ct, at = portable.lstm_forward(*args, residuals=True)
    carry = LSTMCarry(cell=c0, hidden=h0)
    for t in range(x.shape[0]):
        new = lstm_step({"recurrent_kernel": u}, carry, x[t] @ w + b)
        keep = (t < lengths)[:, None]
        carry = jax.tree.map(lambda n, o, k=keep: jnp.where(k, n, o), new, carry)
        _close(hs[t], jnp.where(keep, new.hidden, 0), 1e-6)
        _close(cs[t], carry.cell, 1e-6)
    _close((ht, ct), (carry.hidden, carry.cell), 1e-6)
    # the weight gradients' operand: column (t, b) = [previous output (h0 first), x_t, 1]
    for t in range(x.shape[0]):
        prev = h0 if t == 0 else hs[t - 1]
        _close(at[:, t, :].T, jnp.concatenate([prev, x[t], jnp.ones((x.shape[1], 1))], -1), 0)

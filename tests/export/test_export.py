"""seqjax.export.export_step: served without seqjax, one observation at a time, equals the
library's chunked evaluation (one model.apply over the whole range); platforms, symbolic batch,
reset, baked standardisation, no custom call of seqjax's kernels, and the errors."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import flax.linen as nn
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from export_helpers import FEATURES, KINDS, run_blocked, sine_stream, trained

from seqjax.data import Standardizer
from seqjax.export import SERVE_SCRIPT, export_step, from_plain, to_plain, with_scan
from seqjax.nn import GRU, LSTM, Bidirectional, LSTMCarry, SimpleRNN, StackedRNN
from seqjax.train import SequenceModel

ROOT = Path(__file__).resolve().parents[2]
RTOL, ATOL = 1e-5, 1e-6  # float32: relative 1e-5 (absolute 1e-6 for values near zero)


def zeros_carry(exp, batch: int):
    args, _ = exp.in_tree.unflatten(exp.in_avals)
    return jax.tree.map(lambda a: np.zeros((batch, *a.shape[1:]), a.dtype), args[0])


def library(model, variables, inputs, carry=None):
    """The in-library chunked evaluation: one apply over the whole range ``[B, N, F]``."""
    carry = model.initial_carry(inputs.shape[0]) if carry is None else carry
    carry, predictions = jax.jit(model.apply)(variables, inputs, carry)
    return carry, np.asarray(predictions)


def test_one_step_at_a_time_without_seqjax_equals_chunked_evaluation(tmp_path):
    """LSTM, GRU and a stacked LSTM+GRU, trained; the artifact served in a subprocess where
    ``import seqjax`` fails, fed 40 test steps one at a time: the predictions at every step and
    the final carry equal one library call over the 40 steps."""
    test = sine_stream(3, 40, phase=100.0)  # a range the models did not train on
    for kind in KINDS:
        model, variables = trained(kind)
        blob = export_step(model, variables, batch_size=3)
        out = run_blocked(tmp_path, blob, np.swapaxes(test, 0, 1))  # [N, B, F]: one step a call
        assert not out["seqjax_imported"]
        carry, expected = library(model, variables, test)
        served = np.swapaxes(out["predictions"][:, :, 0], 0, 1)  # [N, B, 1, O] -> [B, N, O]
        np.testing.assert_allclose(served, expected, rtol=RTOL, atol=ATOL, err_msg=kind)
        leaves = jax.tree.leaves(to_plain(carry))
        assert len(leaves) == len([k for k in out if k.startswith("carry_")])
        for i, leaf in enumerate(leaves):
            np.testing.assert_allclose(out[f"carry_{i}"], leaf, rtol=RTOL, atol=ATOL)
        assert np.std(expected) > 0.1  # a trained model, not a constant


@pytest.mark.parametrize("kind", KINDS)
def test_chunks_of_several_steps(kind):
    model, variables = trained(kind)
    blob = export_step(model, variables, batch_size=2, time_steps=5, features=FEATURES)
    exp = jax.export.deserialize(blob)
    test = sine_stream(2, 20, phase=7.0)
    carry, outputs = zeros_carry(exp, 2), []
    for k in range(4):
        carry, y = exp.call(carry, test[:, 5 * k : 5 * k + 5])
        outputs.append(np.asarray(y))
    expected_carry, expected = library(model, variables, test)
    np.testing.assert_allclose(np.concatenate(outputs, 1), expected, rtol=RTOL, atol=ATOL)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL),
        carry,
        to_plain(expected_carry),
    )


def test_cuda_and_tpu_lowerings_in_one_artifact():
    model, variables = trained("stacked")
    blob = export_step(model, variables, batch_size=2, platforms=("cpu", "cuda", "tpu"))
    exp = jax.export.deserialize(blob)
    assert exp.platforms == ("cpu", "cuda", "tpu")
    test = sine_stream(2, 6)
    carry, y = exp.call(zeros_carry(exp, 2), test[:, :1])  # the cpu lowering, on this machine
    np.testing.assert_allclose(y, library(model, variables, test[:, :1])[1], rtol=RTOL, atol=ATOL)
    # A cuda-only artifact cannot run here: the lowering is really for another platform.
    cuda_only = jax.export.deserialize(
        export_step(model, variables, batch_size=2, platforms=("cuda",))
    )
    with pytest.raises(ValueError, match="cuda"):
        cuda_only.call(zeros_carry(cuda_only, 2), test[:, :1])


@hypothesis.settings(max_examples=6, deadline=None)
@hypothesis.given(batch=st.integers(1, 5), time=st.integers(1, 3))
def test_symbolic_batch_serves_any_number_of_streams(batch, time):
    model, variables = trained("lstm")
    exp = _symbolic(time)
    assert str(exp.in_avals[-1].shape[0]) == "b"
    test = sine_stream(batch, time, phase=3.0)
    carry, y = exp.call(zeros_carry(exp, batch), test)
    expected_carry, expected = library(model, variables, test)
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(carry["hidden"], expected_carry.hidden, rtol=RTOL, atol=ATOL)


_SYMBOLIC = {}


def _symbolic(time):
    if time not in _SYMBOLIC:
        model, variables = trained("lstm")
        blob = export_step(model, variables, batch_size=None, time_steps=time)
        _SYMBOLIC[time] = jax.export.deserialize(blob)
    return _SYMBOLIC[time]


def test_reset_rows_restart_from_zeros_and_other_rows_continue(tmp_path):
    model, variables = trained("stacked")
    blob = export_step(model, variables, batch_size=3, reset=True)
    stream = sine_stream(3, 12, phase=5.0)
    resets = np.zeros((12, 3), bool)
    resets[7, 1] = True  # row 1 restarts at step 7
    out = run_blocked(tmp_path, blob, np.swapaxes(stream, 0, 1), resets)
    served = np.swapaxes(out["predictions"][:, :, 0], 0, 1)
    _, whole = library(model, variables, stream)
    _, restarted = library(model, variables, stream[1:2, 7:])
    np.testing.assert_allclose(served[[0, 2]], whole[[0, 2]], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(served[1, :7], whole[1, :7], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(served[1, 7:], restarted[0], rtol=RTOL, atol=ATOL)
    assert np.abs(served[1, 7:] - whole[1, 7:]).max() > 1e-3  # the reset changed something


def test_standardizer_is_baked_in():
    """The service feeds raw values and gets raw predictions: inputs normalised with the
    fitted statistics, predictions mapped back."""
    model, variables = trained("gru")
    raw = 50.0 + 3.0 * sine_stream(2, 10, phase=2.0)
    scaler = Standardizer().fit(raw.reshape(-1, FEATURES))
    exp = jax.export.deserialize(
        export_step(model, variables, batch_size=2, time_steps=10, standardizer=scaler)
    )
    _, y = exp.call(zeros_carry(exp, 2), raw)
    _, z = library(model, variables, scaler.transform(raw).astype(np.float32))
    np.testing.assert_allclose(y, scaler.inverse_transform(z), rtol=RTOL, atol=1e-4)
    # target_standardizer=None: predictions stay standardised
    exp = jax.export.deserialize(
        export_step(
            model,
            variables,
            batch_size=2,
            time_steps=10,
            standardizer=scaler,
            target_standardizer=None,
        )
    )
    np.testing.assert_allclose(exp.call(zeros_carry(exp, 2), raw)[1], z, rtol=1e-4, atol=1e-5)


def test_cpu_kernel_model_is_exported_with_the_scan():
    """A model set to the compiled CPU kernel exports without any custom call of seqjax's
    (targets named Seqjax*); the same model exported directly carries the custom call."""
    model = SequenceModel(
        StackedRNN([LSTM(4, implementation="cpu_kernel"), GRU(3, implementation="cpu_kernel")]), 1
    )
    x = sine_stream(2, 3)
    variables = model.init(jax.random.key(0), x)
    exp = jax.export.deserialize(export_step(model, variables, batch_size=2))
    text = exp.mlir_module()
    assert "Seqjax" not in text
    assert not re.search(r"custom_call\s*@Seqjax", text)
    carry, y = exp.call(zeros_carry(exp, 2), x[:, :1])
    np.testing.assert_allclose(y, library(model, variables, x[:, :1])[1], rtol=RTOL, atol=ATOL)
    # The check above can fail: exporting the model as it is reaches the Seqjax custom call.
    direct = jax.jit(lambda inputs: model.apply(variables, inputs))
    with pytest.raises(ValueError, match="Seqjax"):
        jax.export.export(direct, platforms=("cpu",))(jax.ShapeDtypeStruct(x.shape, x.dtype))


def test_with_scan_walks_nested_modules():
    model = SequenceModel(
        StackedRNN(
            [
                Bidirectional(LSTM(3, implementation="cpu_kernel")),
                SimpleRNN(2, implementation="cpu_kernel"),
            ]
        ),
        1,
    )
    converted = with_scan(model)
    layers = converted.recurrent.layers
    assert layers[0].layer.implementation == "scan"
    assert layers[1].implementation == "scan"
    assert model.recurrent.layers[1].implementation == "cpu_kernel"  # not modified
    already = SequenceModel(LSTM(3, implementation="scan"), 1)
    assert with_scan(already) is already
    assert with_scan(SequenceModel(LSTM(3), 1)).recurrent.implementation == "scan"  # from auto


def test_plain_carry_round_trip():
    model, _ = trained("stacked")
    carry = model.initial_carry(2)
    plain = to_plain(carry)
    assert isinstance(plain, tuple) and isinstance(plain[0], dict)
    rebuilt = from_plain(carry, plain)
    assert jax.tree.structure(rebuilt) == jax.tree.structure(carry)


@pytest.mark.parametrize(
    "model, option",
    [
        (SequenceModel(LSTM(3, learn_initial_carry=True), 1), "learn_initial_carry.*reset=True"),
        (SequenceModel(StackedRNN([GRU(3), GRU(3, reverse=True)]), 1), r"layers\[1\].*reverse"),
        (SequenceModel(Bidirectional(GRU(3)), 1), "Bidirectional"),
    ],
)
def test_options_that_cannot_stream_are_named(model, option):
    variables = model.init(jax.random.key(0), sine_stream(1, 2))
    with pytest.raises(ValueError, match=option):
        export_step(model, variables, batch_size=1)


def test_bad_arguments_are_named():
    model, variables = trained("lstm")
    for kwargs, message in [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": 2, "time_steps": 0}, "time_steps"),
        ({"batch_size": 2, "platforms": ("gpu",)}, "platforms"),
        ({"batch_size": 2, "standardizer": Standardizer()}, "not fitted"),
        (
            {"batch_size": 2, "standardizer": Standardizer().fit(np.zeros((4, 3)))},
            "fitted on 3 features",
        ),
    ]:
        with pytest.raises(ValueError, match=message):
            export_step(model, variables, **kwargs)
    with pytest.raises(ValueError, match="params"):
        export_step(model, {"batch_stats": {}}, batch_size=2)


def test_calling_with_wrong_shapes_names_them():
    model, variables = trained("lstm")
    exp = jax.export.deserialize(export_step(model, variables, batch_size=2))
    carry = zeros_carry(exp, 2)
    with pytest.raises(ValueError, match=re.escape("expected (2, 1, 2) and called with (2, 1, 3)")):
        exp.call(carry, np.zeros((2, 1, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape("expected (2, 1, 2) and called with (4, 1, 2)")):
        exp.call(carry, np.zeros((4, 1, 2), np.float32))


def test_float64_export():
    """With x64 enabled the artifact takes float64 inputs and carry (serving at 1e-9)."""
    with jax.enable_x64(True):
        model, variables = trained("gru")
        variables64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
        exp = jax.export.deserialize(
            export_step(model, variables64, batch_size=2, time_steps=4, dtype=jnp.float64)
        )
        x = sine_stream(2, 4).astype(np.float64)
        carry, y = exp.call(zeros_carry(exp, 2), x)
        assert y.dtype == np.float64
        expected = model.apply(variables64, x, model.initial_carry(2, jnp.float64))[1]
        np.testing.assert_allclose(y, expected, rtol=1e-9, atol=1e-12)


def test_readme_snippet_is_the_one_the_serving_script_runs():
    """The README's four-line zero-carry snippet appears verbatim in SERVE_SCRIPT, which the
    subprocess tests above run without seqjax."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- zero-carry -->\n```python\n(.*?)```", readme, re.S)
    assert block, "README: the zero-carry snippet is missing"
    snippet = block.group(1)
    assert len(snippet.strip().splitlines()) == 4
    script = textwrap.dedent(SERVE_SCRIPT.read_text())
    body = textwrap.dedent("\n".join(line[4:] for line in SERVE_SCRIPT.read_text().splitlines()))
    assert snippet in body or snippet in script


class _NormedLSTM(nn.Module):
    """The model protocol with a ``batch_stats`` collection: BatchNorm on the inputs (running
    averages), an LSTM, a Dense head."""

    @nn.compact
    def __call__(self, inputs, carry=None, seq_lengths=None, *, deterministic=True):
        x = nn.BatchNorm(use_running_average=True)(inputs)
        carry, ys = LSTM(3, name="recurrent")(x, carry, seq_lengths)
        return carry, nn.Dense(1)(ys)

    def initial_carry(self, batch_size, dtype=jnp.float32):
        zeros = jnp.zeros((batch_size, 3), dtype)
        return LSTMCarry(zeros, zeros)


def test_batch_stats_are_baked_in():
    model = _NormedLSTM()
    x = sine_stream(2, 5)
    variables = model.init(jax.random.key(0), x)
    stats = {"mean": jnp.full((FEATURES,), 0.7), "var": jnp.full((FEATURES,), 3.0)}
    variables = {"params": variables["params"], "batch_stats": {"BatchNorm_0": stats}}
    blob = export_step(model, variables, batch_size=2, time_steps=5, features=FEATURES)
    exp = jax.export.deserialize(blob)
    _, y = exp.call(zeros_carry(exp, 2), x)
    expected = model.apply(variables, x)[1]
    np.testing.assert_allclose(y, expected, rtol=RTOL, atol=ATOL)
    zero_stats = {
        "params": variables["params"],
        "batch_stats": {"BatchNorm_0": {"mean": jnp.zeros(FEATURES), "var": jnp.ones(FEATURES)}},
    }
    assert np.abs(np.asarray(y) - model.apply(zero_stats, x)[1]).max() > 1e-3  # stats matter


def test_docstring_examples():
    import doctest

    import seqjax.export.carry
    import seqjax.export.scan_only
    import seqjax.export.step

    for module in (seqjax.export.step, seqjax.export.scan_only, seqjax.export.carry):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_learned_initial_state_is_where_reset_rows_start():
    """learn_initial_carry: exported with reset=True, a stream's first call (reset) starts from
    the learned state, as the library does when no carry is given."""
    model = SequenceModel(StackedRNN([LSTM(3, learn_initial_carry=True), GRU(2)]), 1)
    x = sine_stream(2, 6)
    variables = model.init(jax.random.key(0), x)
    params = jax.tree_util.tree_map_with_path(
        lambda path, a: a + 0.5 if "initial" in jax.tree_util.keystr(path) else a,
        variables["params"],
    )
    variables = {"params": params}
    exp = jax.export.deserialize(
        export_step(model, variables, batch_size=2, time_steps=3, reset=True)
    )
    carry, first = exp.call(zeros_carry(exp, 2), x[:, :3], np.ones(2, bool))
    carry, second = exp.call(carry, x[:, 3:], np.zeros(2, bool))
    _, expected = model.apply(variables, x)  # no carry: the learned initial state
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected, rtol=RTOL, atol=ATOL)
    without_reset = exp.call(zeros_carry(exp, 2), x[:, :3], np.zeros(2, bool))[1]
    assert np.abs(np.asarray(first) - np.asarray(without_reset)).max() > 1e-3  # zeros differ

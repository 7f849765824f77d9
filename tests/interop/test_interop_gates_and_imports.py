"""The pure layout functions of seqjax.interop.gates, and the lazy optional imports."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.interop import gates, to_keras, to_torch
from seqjax.nn import LSTM

dims = st.integers(min_value=1, max_value=4)


def random(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


@settings(max_examples=15, deadline=None)
@given(f=dims, h=dims, seed=st.integers(0, 2**16))
def test_keras_gru_round_trip_and_order(f, h, seed):
    rng = np.random.default_rng(seed)
    kernel, recurrent, bias = random(rng, f, 3 * h), random(rng, h, 3 * h), random(rng, 2, 3 * h)
    params = gates.keras_gru_to_seqjax(kernel, recurrent, bias)
    # Keras (z, r, h) -> seqjax (r, z, n): the reset block moves first.
    np.testing.assert_array_equal(params["kernel"][:, :h], kernel[:, h : 2 * h])
    np.testing.assert_array_equal(params["kernel"][:, h : 2 * h], kernel[:, :h])
    np.testing.assert_array_equal(params["recurrent_bias"][2 * h :], bias[1, 2 * h :])
    back = gates.seqjax_gru_to_keras(params)
    for got, want in zip(back, [kernel, recurrent, bias], strict=True):
        np.testing.assert_array_equal(got, want)


@settings(max_examples=15, deadline=None)
@given(kind=st.sampled_from(["simple_rnn", "lstm", "gru"]), f=dims, h=dims, seed=st.integers(0, 99))
def test_torch_round_trip_is_bit_exact(kind, f, h, seed):
    rng = np.random.default_rng(seed)
    g = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    params = {"kernel": random(rng, f, g * h), "recurrent_kernel": random(rng, h, g * h)}
    params["bias"] = random(rng, g * h)
    if kind == "gru":
        params["recurrent_bias"] = random(rng, g * h)
    torch_side = gates.seqjax_to_torch(kind, params)
    assert torch_side["weight_ih"].shape == (g * h, f)
    back = gates.torch_to_seqjax(kind, **torch_side)
    assert set(back) == set(params)
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])
        assert back[name].dtype == np.float32


def test_bias_merging():
    b_ih, b_hh = np.array([1.0, 2.0], np.float32), np.array([0.5, -1.0], np.float32)
    lstm = gates.torch_to_seqjax("simple_rnn", np.eye(2, dtype=np.float32), np.eye(2), b_ih, b_hh)
    np.testing.assert_array_equal(lstm["bias"], [1.5, 1.0])
    gru = gates.torch_to_seqjax("gru", np.ones((6, 1), np.float32), np.ones((6, 2)), None, None)
    assert not gru["bias"].any() and not gru["recurrent_bias"].any()  # bias=False
    assert gates.merge_biases(None, None, 3).shape == (3,)


def test_permute_gates_checks():
    w = np.arange(6.0).reshape(1, 6)
    np.testing.assert_array_equal(gates.permute_gates(w, "abc", "cab"), [[4, 5, 0, 1, 2, 3]])
    with pytest.raises(ValueError, match="different gates"):
        gates.permute_gates(w, "abc", "abd")
    with pytest.raises(ValueError, match="4 gate blocks"):
        gates.permute_gates(w, "abcd", "dcba")
    with pytest.raises(ValueError, match="reset_after=False"):
        gates.keras_gru_to_seqjax(np.ones((1, 3)), np.ones((1, 3)), np.ones((3,)))


def test_importing_interop_imports_neither_keras_nor_torch():
    code = "import sys, seqjax.interop; print('keras' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # makes `import keras` fail
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install seqjax\[interop\]"):
        to_keras(LSTM(2), {"params": {}})
    with pytest.raises(ImportError, match=r"download.pytorch.org/whl/cpu"):
        to_torch(LSTM(2), {"params": {}})

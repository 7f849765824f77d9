"""Keras Dense / Conv1D / BatchNormalization and Sequential stacks against ``from_keras``."""

import sys
import types

import flax.linen as nn
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from seqjax.interop import Sequential, from_keras  # noqa: E402
from seqjax.interop.sequential import Activated  # noqa: E402

L = keras.layers


def randomize_model(model, rng):
    """Random weights everywhere; BatchNorm moving variances kept positive."""
    for layer in model.layers:
        weights = [(0.5 * rng.normal(size=w.shape)).astype(w.dtype) for w in layer.get_weights()]
        if isinstance(layer, L.BatchNormalization):
            weights[-1] = np.abs(weights[-1]) + 0.5
        layer.set_weights(weights)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "padding": "causal", "dilation_rate": 2, "activation": "relu"},
        {"kernel_size": 2, "padding": "same", "strides": 2, "groups": 2, "use_bias": False},
        {"kernel_size": 1, "padding": "valid", "activation": "gelu"},
    ],
    ids=["causal_dilated_relu", "same_strided_grouped", "valid_k1_gelu"],
)
def test_conv1d(kwargs, rng, randomize, close):
    x = rng.normal(size=(2, 7, 4)).astype("float32")
    layer = L.Conv1D(6, **kwargs)
    layer.build(x.shape)
    randomize(layer, rng)
    module, variables = from_keras(layer)
    inner = module.layer if isinstance(module, Activated) else module
    assert isinstance(inner, nn.Conv)
    close(module.apply(variables, x), layer(x))


@pytest.mark.parametrize("activation", ["linear", "leaky_relu", "softmax"])
def test_dense(activation, rng, randomize, close):
    x = rng.normal(size=(3, 1, 5)).astype("float32")
    layer = L.Dense(1 if activation == "linear" else 4, activation=activation)
    layer.build(x.shape)
    randomize(layer, rng)
    module, variables = from_keras(layer)
    assert isinstance(module, nn.Dense if activation == "linear" else Activated)
    close(module.apply(variables, x), layer(x))


def test_sequential_masking_lstm_dense(rng, close):
    b, t, f = 3, 5, 2
    lengths = np.array([5, 2, 3])
    valid = np.arange(t)[None, :] < lengths[:, None]
    x = (rng.normal(size=(b, t, f)) * valid[..., None]).astype("float32")  # right-padded zeros
    model = keras.Sequential(
        [
            keras.Input((t, f)),
            L.Masking(0.0),
            L.LSTM(3, return_sequences=True),
            L.Dropout(0.5),
            L.Dense(2, activation="tanh"),
        ]
    )
    randomize_model(model, rng)
    module, variables = from_keras(model)
    assert isinstance(module, Sequential)
    (carry,), ys = module.apply(variables, x)  # lengths come from the Masking layer
    y_k = np.asarray(model(x))
    close(np.asarray(ys)[valid], y_k[valid])  # Keras repeats outputs at masked steps
    _, ys_explicit = module.apply(variables, x, seq_lengths=lengths)
    close(ys_explicit, ys)


def test_sequential_conv_bn_recurrent_head(rng, close):
    b, t, f = 2, 6, 3
    model = keras.Sequential(
        [
            keras.Input((t, f)),
            L.Conv1D(4, 3, padding="causal", activation="relu"),
            L.BatchNormalization(),
            L.GRU(3, return_sequences=True, go_backwards=True),
            L.Bidirectional(L.SimpleRNN(2), merge_mode="concat"),
            L.Activation("sigmoid"),
            L.Dense(3, activation="softmax"),
        ]
    )
    randomize_model(model, rng)
    x = rng.normal(size=(b, t, f)).astype("float32")
    module, variables = from_keras(model)
    assert set(variables) == {"params", "batch_stats"}
    assert set(variables["batch_stats"]["layers_1"]) == {"mean", "var"}
    carries, y = module.apply(variables, x)
    assert len(carries) == 2
    close(y, model(x, training=False))


def test_sequential_pooling_and_flatten(rng, close):
    b, t, f = 2, 4, 3
    x = rng.normal(size=(b, t, f)).astype("float32")
    for pool in (L.GlobalAveragePooling1D(), L.GlobalMaxPooling1D(), L.Flatten()):
        model = keras.Sequential([keras.Input((t, f)), L.Conv1D(2, 2), pool, L.Dense(2)])
        randomize_model(model, rng)
        module, variables = from_keras(model)
        carries, y = module.apply(variables, x)
        assert carries == ()
        close(y, model(x))


def test_mobilenet_v2_is_dispatched(monkeypatch, rng):
    calls = []
    fake = types.ModuleType("seqjax.interop.keras_mobilenet")
    fake.mobilenet_v2_from_keras = lambda model: calls.append(model) or ("module", {})
    monkeypatch.setitem(sys.modules, "seqjax.interop.keras_mobilenet", fake)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, L.Conv2D(2, 1, name="Conv1")(inputs), name="mobilenetv2_0.35_4")
    assert from_keras(model) == ("module", {})
    assert calls == [model]
    other = keras.Model(inputs, L.Conv2D(2, 1)(inputs), name="other")
    with pytest.raises(TypeError, match="functional model 'other'"):
        from_keras(other)


def test_unsupported_layers_name_the_setting(rng):
    x = rng.normal(size=(1, 4, 2)).astype("float32")
    conv = L.Conv1D(2, 2, data_format="channels_first")
    conv.build(x.shape)
    with pytest.raises(ValueError, match="data_format='channels_first'"):
        from_keras(conv)
    dense = L.Dense(2, activation=lambda v: v)
    dense.build(x.shape)
    with pytest.raises(ValueError, match="activation"):
        from_keras(dense)
    embedding = L.Embedding(3, 2)
    embedding.build((1, 4))
    with pytest.raises(TypeError, match="Embedding"):
        from_keras(embedding)

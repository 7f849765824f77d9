"""Against Keras itself: a converted ``keras.applications.MobileNetV2`` computes what Keras does
(even and odd input sizes), and Keras loads the legacy ``.h5`` files seqjax writes."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

from seqjax.interop.keras_mobilenet import mobilenet_v2_from_keras  # noqa: E402
from seqjax.models.mobilenet_v2_weights import (  # noqa: E402
    imagenet_weights_filename,
    keras_layer_weights,
    save_mobilenet_v2_h5,
)


@pytest.fixture(scope="module", autouse=True)
def numpy_weight_init():
    """Keras draws each initial weight with JAX's PRNG, compiled anew for each of ~40 shapes
    (~15 s of CPU for the first model). The tests overwrite or only compare these random values,
    so draw them with NumPy while this module runs."""
    from keras.src.backend.jax import random as backend_random

    rng = np.random.default_rng(0)
    original = backend_random.uniform

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return np.asarray(rng.uniform(minval, maxval, shape), dtype or keras.config.floatx())

    backend_random.uniform = uniform
    yield
    backend_random.uniform = original


def keras_mobilenet(size, **kwargs):
    """Offline Keras MobileNetV2 (alpha 0.35) with random weights and random BN statistics."""
    model = keras.applications.MobileNetV2(
        input_shape=(size, size, 3), alpha=0.35, weights=None, **kwargs
    )
    rng = np.random.default_rng(size)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, c),  # gamma
                    rng.normal(0, 0.2, c),  # beta
                    rng.normal(0, 0.5, c),  # moving mean
                    rng.uniform(0.5, 2.0, c),  # moving variance
                ]
            )
    return model


def images(size, n=3):
    return np.random.default_rng(1).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize(
    ("size", "kwargs"),
    [
        (33, {"include_top": False}),  # odd: symmetric (1, 1) padding, 2x2 feature map
        (32, {"include_top": True, "classes": 7, "classifier_activation": None}),  # even: (0, 1)
    ],
)
def test_converted_model_computes_what_keras_computes(size, kwargs):
    model = keras_mobilenet(size, **kwargs)
    x = images(size)
    expected = model.predict(x, verbose=0)  # inference mode, one compiled call

    module, variables = mobilenet_v2_from_keras(model)

    assert module.alpha == 0.35 and module.include_top == kwargs["include_top"]
    assert set(variables) == {"params", "batch_stats"}
    got = np.asarray(jax.jit(module.apply)(variables, x))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Random MobileNetV2 weights (taken from a Keras model) written in the legacy layout."""
    _, variables = mobilenet_v2_from_keras(keras_mobilenet(32, include_top=False))
    variables = jax.tree.map(lambda a: np.asarray(a) + np.float32(0.25), variables)
    cache = tmp_path_factory.mktemp("keras_home")
    (cache / "models").mkdir()
    path = cache / "models" / imagenet_weights_filename(0.35, 96)
    save_mobilenet_v2_h5(path, variables, alpha=0.35)
    return cache, path, keras_layer_weights(variables, alpha=0.35)


def assert_holds(model, layers):
    for name, weights in layers.items():
        kept = {v.name: np.asarray(v.numpy()) for v in model.get_layer(name).weights}
        for weight, value in weights:
            key = weight.split("/")[-1].split(":")[0].replace("depthwise_kernel", "kernel")
            assert np.array_equal(kept[key], value), weight


def test_keras_loads_the_written_file_as_a_weights_path(written):
    _, path, layers = written
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=str(path)
    )  # topological loading: layer order and weight order must be Keras'
    assert_holds(model, layers)


def test_keras_loads_the_written_file_by_name_and_as_imagenet_from_its_cache(written, monkeypatch):
    cache, path, layers = written
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None
    )
    model.load_weights(str(path), by_name=True)
    assert_holds(model, layers)

    from keras.src.backend import config  # where Keras resolves $KERAS_HOME, at import

    monkeypatch.setattr(config, "_KERAS_DIR", str(cache))
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights="imagenet"
    )  # found in the cache under Keras' own file name: no download
    assert_holds(model, layers)


def test_a_model_that_is_not_mobilenet_v2_is_refused():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="not a keras.applications.MobileNetV2"):
        mobilenet_v2_from_keras(model)

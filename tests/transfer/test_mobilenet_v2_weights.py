"""The legacy Keras-2 ``.h5`` ImageNet file: exact layout, bit-exact round trip, clear errors."""

import functools

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.models import MobileNetV2, keras_style_init
from seqjax.models.mobilenet_v2_weights import (
    imagenet_weights_filename,
    imagenet_weights_path,
    load_imagenet_weights,
    load_mobilenet_v2_h5,
    save_mobilenet_v2_h5,
)
from seqjax.transfer import imagenet_backbone


@functools.cache
def random_variables(alpha, seed=0):
    """MobileNetV2 (no top) variables with every value random (variance positive)."""
    template = keras_style_init(
        MobileNetV2(alpha=alpha, include_top=False), jnp.zeros((1, 32, 32, 3))
    )
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda a: (
            rng.uniform(0.5, 2.0, a.shape).astype(np.float32)
            if a.ndim == 1
            else rng.normal(0, 0.1, a.shape).astype(np.float32)
        ),
        template,
    )


def test_file_name_is_the_one_keras_caches():
    assert (
        imagenet_weights_filename(0.35, 96)
        == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5"
    )
    assert imagenet_weights_filename(1, 224).endswith("_1.0_224_no_top.h5")
    with pytest.raises(ValueError, match="alpha"):
        imagenet_weights_filename(0.6, 224)


def test_written_file_has_the_keras_2_layout(tmp_path):
    path = tmp_path / "w.h5"
    save_mobilenet_v2_h5(path, random_variables(0.35), alpha=0.35)
    with h5py.File(path, "r") as f:
        layer_names = [n.decode() for n in f.attrs["layer_names"]]
        assert layer_names[:4] == ["input_1", "Conv1", "bn_Conv1", "Conv1_relu"]
        assert layer_names[-3:] == ["Conv_1", "Conv_1_bn", "out_relu"]
        backend = f.attrs["backend"]  # written as bytes, h5py may hand back str
        assert (backend.decode() if isinstance(backend, bytes) else backend) == "tensorflow"
        assert [n.decode() for n in f["bn_Conv1"].attrs["weight_names"]] == [
            "bn_Conv1/gamma:0",
            "bn_Conv1/beta:0",
            "bn_Conv1/moving_mean:0",
            "bn_Conv1/moving_variance:0",
        ]
        assert f["block_1_depthwise/block_1_depthwise/depthwise_kernel:0"].shape == (3, 3, 48, 1)
        assert len(f["block_1_pad"].attrs["weight_names"]) == 0  # layers without weights


def test_legacy_file_round_trips_bit_exactly(tmp_path):
    variables = random_variables(0.35)
    path = tmp_path / "w.h5"
    save_mobilenet_v2_h5(path, variables, alpha=0.35)
    loaded = load_mobilenet_v2_h5(path, alpha=0.35)
    assert jax.tree.structure(loaded) == jax.tree.structure(variables)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables), strict=True):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), b)


def test_loader_names_the_layer_that_does_not_fit(tmp_path):
    path = tmp_path / "w.h5"
    save_mobilenet_v2_h5(path, random_variables(0.35), alpha=0.35)
    # alpha 0.5 agrees with 0.35 up to block_1_project (8 vs 16 channels).
    with pytest.raises(ValueError, match=r"layer 'block_1_project' weight 'kernel' has shape"):
        load_mobilenet_v2_h5(path, alpha=0.5)


def test_imagenet_weights_are_found_in_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    variables = random_variables(0.35, seed=1)
    (tmp_path / "models").mkdir()
    save_mobilenet_v2_h5(
        tmp_path / "models" / imagenet_weights_filename(0.35, 96), variables, alpha=0.35
    )
    loaded = load_imagenet_weights(0.35, 96)
    assert np.array_equal(
        loaded["params"]["Conv_1"]["kernel"], variables["params"]["Conv_1"]["kernel"]
    )


def test_missing_imagenet_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "keras" / "models" / imagenet_weights_filename(0.35, 224)
    with pytest.raises(FileNotFoundError) as error:
        imagenet_weights_path(0.35)
    message = str(error.value)
    assert f"save it as {expected}" in message
    assert "never downloads" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/" in message


def test_imagenet_backbone_uses_a_cached_file_of_any_resolution_or_returns_none(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert imagenet_backbone(0.35) is None  # pretrain on a source task instead
    variables = random_variables(0.35, seed=2)
    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / imagenet_weights_filename(0.35, 128)
    save_mobilenet_v2_h5(path, variables, alpha=0.35)
    found = imagenet_backbone(0.35)
    assert np.array_equal(
        found["batch_stats"]["Conv_1_bn"]["var"], variables["batch_stats"]["Conv_1_bn"]["var"]
    )
    assert imagenet_backbone(0.35, path=str(path)) is not None
    assert imagenet_backbone(0.35, path=str(tmp_path / "nope.h5")) is None

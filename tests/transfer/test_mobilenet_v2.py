"""MobileNetV2's architecture, checked without Keras: sizes, names, padding, preprocessing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.models import MobileNetV2, keras_style_init, preprocess_input
from seqjax.models.mobilenet_v2 import (
    BLOCKS,
    block_of,
    correct_pad,
    keras_layer_names,
    make_divisible,
)
from seqjax.transfer import count_params


def shapes(model, size, batch=1):
    x = jnp.zeros((batch, size, size, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    out = jax.eval_shape(model.apply, variables, x)
    return variables, out.shape


def test_alpha_1_has_keras_parameter_counts():
    variables, out = shapes(MobileNetV2(alpha=1.0, include_top=False), 224)
    assert count_params(variables["params"]) == 2_223_872  # Keras' trainable params
    assert count_params(variables["batch_stats"]) == 34_112  # moving mean and variance
    assert out == (1, 7, 7, 1280)


@pytest.mark.parametrize(
    ("alpha", "size", "pooling", "expected"),
    [
        (0.35, 32, None, (1, 1, 1, 1280)),
        (0.35, 33, None, (1, 2, 2, 1280)),
        (0.5, 96, "avg", (1, 1280)),
        (1.4, 40, "max", (1, 1792)),  # last conv widens above alpha 1
    ],
)
def test_output_shapes_for_any_size_from_32(alpha, size, pooling, expected):
    model = MobileNetV2(alpha=alpha, include_top=False, pooling=pooling)
    assert shapes(model, size)[1] == expected


def test_include_top_ends_in_class_probabilities():
    variables, out = shapes(MobileNetV2(alpha=0.35, include_top=True, classes=7), 32)
    assert out == (1, 7)
    assert variables["params"]["predictions"]["kernel"].shape == (1280, 7)


def test_inputs_smaller_than_32_are_rejected():
    with pytest.raises(ValueError, match="at least 32x32"):
        shapes(MobileNetV2(include_top=False), 31)


def test_parameters_are_named_like_keras_layers():
    variables, _ = shapes(MobileNetV2(alpha=0.35, include_top=True), 32)
    weighted = keras_layer_names(0.35, include_top=True, weighted_only=True)
    assert sorted(variables["params"]) == sorted(weighted)
    assert weighted[:6] == [
        "Conv1",
        "bn_Conv1",
        "expanded_conv_depthwise",
        "expanded_conv_depthwise_BN",
        "expanded_conv_project",
        "expanded_conv_project_BN",
    ]
    assert set(variables["params"]["bn_Conv1"]) == {"scale", "bias"}
    assert set(variables["batch_stats"]["bn_Conv1"]) == {"mean", "var"}
    # Depthwise kernels: (3, 3, 1, C) with feature_group_count=C (Keras: (3, 3, C, 1)).
    assert variables["params"]["block_1_depthwise"]["kernel"].shape == (3, 3, 1, 48)


def test_keras_padding_rule_for_stride_2_depthwise_convolutions():
    assert correct_pad((32, 32)) == ((0, 1), (0, 1))  # even: pad bottom/right only
    assert correct_pad((33, 17)) == ((1, 1), (1, 1))  # odd: both sides
    assert correct_pad((16, 9)) == ((0, 1), (1, 1))


def test_width_multiplier_rounding_matches_keras():
    assert make_divisible(32 * 0.35) == 16
    assert make_divisible(int(16 * 0.35)) == 8
    assert make_divisible(32 * 1.4) == 48


def test_layers_group_into_19_units_for_fine_tuning():
    assert len(BLOCKS) == 19 and BLOCKS[0] == "Conv1" and BLOCKS[-1] == "Conv_1"
    assert block_of("bn_Conv1") == "Conv1"
    assert block_of("expanded_conv_project_BN") == "expanded_conv"
    assert block_of("block_16_depthwise_BN") == "block_16"
    assert block_of("Conv_1_bn") == "Conv_1"
    with pytest.raises(ValueError):
        block_of("block_17_expand")


def test_preprocess_input_scales_pixels_to_minus_one_one():
    np.testing.assert_allclose(preprocess_input(np.array([0.0, 127.5, 255.0])), [-1.0, 0.0, 1.0])


def test_keras_style_init_matches_keras_defaults():
    variables = keras_style_init(
        MobileNetV2(alpha=0.35, include_top=False), jnp.zeros((1, 32, 32, 3))
    )
    kernel = variables["params"]["Conv1"]["kernel"]  # (3, 3, 3, 16)
    limit = np.sqrt(6 / (9 * 3 + 9 * 16))
    assert kernel.shape == (3, 3, 3, 16) and np.abs(kernel).max() <= limit
    assert np.all(variables["params"]["bn_Conv1"]["scale"] == 1)
    assert np.all(variables["batch_stats"]["bn_Conv1"]["var"] == 1)
    assert np.all(variables["batch_stats"]["bn_Conv1"]["mean"] == 0)

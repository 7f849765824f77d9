"""Convert a ``keras.applications.MobileNetV2`` into :class:`seqjax.models.MobileNetV2` variables.

Needs only the Keras model object (Keras 3 on any backend, or tf.keras): this module does not
import Keras itself. Width (``alpha``), ``include_top``, ``classes``, the classifier activation
and ``pooling`` are read off the model; every weight is checked by name and shape.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from seqjax.models.mobilenet_v2 import (
    MobileNetV2,
    block_specs,
    first_filters,
    last_filters,
)
from seqjax.models.mobilenet_v2_weights import IMAGENET_ALPHAS, variables_from_keras_layers

__all__ = ["mobilenet_v2_from_keras"]


def _numpy(variable: Any) -> np.ndarray:
    if hasattr(variable, "numpy"):
        return np.asarray(variable.numpy())
    return np.asarray(variable)


def _width_signature(alpha: float) -> tuple[int, ...]:
    return (
        first_filters(alpha),
        *(spec.out_channels for spec in block_specs(alpha)),
        last_filters(alpha),
    )


def _infer_alpha(name: str, signature: tuple[int, ...]) -> float:
    """The width multiplier: from Keras' model name ``mobilenetv2_{alpha:.2f}_{rows}`` when it
    fits the layer widths, else the first alpha (ImageNet ones first) that gives those widths."""
    match = re.fullmatch(r"mobilenetv2_(\d+(?:\.\d+)?)_\d+", name)
    candidates = [float(match.group(1))] if match else []
    candidates += list(IMAGENET_ALPHAS)
    candidates += [round(a, 3) for a in np.arange(0.05, 4.0, 0.005)]
    for alpha in candidates:
        if _width_signature(alpha) == signature:
            return alpha
    raise ValueError(f"no MobileNetV2 width multiplier gives the layer widths {signature}")


def mobilenet_v2_from_keras(keras_model: Any) -> tuple[MobileNetV2, dict[str, Any]]:
    """``keras.applications.MobileNetV2`` -> ``(module, variables)``.

    Args:
        keras_model: the model ``keras.applications.MobileNetV2(...)`` returned (channels last).
            For the guide's ``inputs -> base_model -> head`` model, pass ``base_model``.

    Returns:
        ``module``: a :class:`seqjax.models.MobileNetV2` with the same ``alpha``, ``include_top``,
        ``classes``, ``classifier_activation`` and ``pooling``; ``variables``:
        ``{"params": ..., "batch_stats": ...}`` with Keras' weights and moving statistics, such
        that ``module.apply(variables, x)`` equals ``keras_model(x, training=False)``.

    Raises:
        ValueError: when the model is not a MobileNetV2 or a weight does not fit (names the layer).
    """
    layers = {layer.name: layer for layer in keras_model.layers}
    if "Conv1" not in layers or "Conv_1" not in layers:
        nested = [n for n, layer in layers.items() if "Conv1" in getattr(layer, "_layers", ())]
        hint = f" (pass the base model, e.g. model.get_layer({nested[0]!r}))" if nested else ""
        raise ValueError(f"{keras_model.name!r} is not a keras.applications.MobileNetV2{hint}")
    input_shape = tuple(keras_model.input_shape)
    if input_shape[-1] != 3:
        raise ValueError(f"only channels-last MobileNetV2 is supported, got input {input_shape}")

    weights = {name: [(w.name, _numpy(w)) for w in layer.weights] for name, layer in layers.items()}
    signature = (
        weights["Conv1"][0][1].shape[-1],
        weights["expanded_conv_project"][0][1].shape[-1],
        *(weights[f"block_{i}_project"][0][1].shape[-1] for i in range(1, 17)),
        weights["Conv_1"][0][1].shape[-1],
    )
    alpha = _infer_alpha(keras_model.name, signature)

    include_top = "predictions" in layers
    classes, pooling = 1000, None
    activation: str | None = "softmax"
    if include_top:
        top = layers["predictions"]
        classes = int(top.units)
        act = getattr(top.activation, "__name__", str(top.activation))
        if act not in ("softmax", "linear"):
            raise ValueError(f"unsupported classifier activation {act!r}")
        activation = "softmax" if act == "softmax" else None
    else:
        last = type(keras_model.layers[-1]).__name__
        pooling = {"GlobalAveragePooling2D": "avg", "GlobalMaxPooling2D": "max"}.get(last)

    module = MobileNetV2(
        alpha=alpha,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=activation,
    )
    variables = variables_from_keras_layers(
        weights,
        alpha=alpha,
        include_top=include_top,
        classes=classes,
        source=f"Keras model {keras_model.name!r}",
    )
    return module, variables

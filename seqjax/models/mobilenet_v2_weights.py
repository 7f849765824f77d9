"""Keras' MobileNetV2 ImageNet weights (legacy Keras-2 ``.h5``), read and written with h5py alone.

``keras.applications.MobileNetV2(weights="imagenet", include_top=False)`` loads
``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5`` from
``$KERAS_HOME/models/`` (default ``~/.keras/models/``). That file is a Keras-2 weights file:

- root attributes ``layer_names`` (every layer of the model, in ``model.layers`` order, as
  bytes), ``backend`` and ``keras_version``;
- one group per layer, with the attribute ``weight_names`` (e.g. ``[b"bn_Conv1/gamma:0", ...]``,
  empty for layers without weights), and each weight stored as the dataset
  ``<layer>/<weight_name>``, e.g. ``bn_Conv1/bn_Conv1/gamma:0``;
- per layer the weights in Keras-2 order (trainable first): ``kernel``; ``depthwise_kernel``
  ``(3, 3, C, 1)``; ``gamma, beta, moving_mean, moving_variance``; ``kernel, bias``.

This module converts between that per-layer view and the Flax variables of
:class:`seqjax.models.MobileNetV2` (``params``/``batch_stats`` under the same layer names), checks
every name and shape, and never downloads anything. The weights do not depend on the input
size: ``rows`` only names the resolution the file was trained at, and any file fits any input
of at least 32x32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.models.mobilenet_v2 import MobileNetV2, keras_layer_names

__all__ = [
    "IMAGENET_ALPHAS",
    "IMAGENET_ROWS",
    "LayerWeights",
    "imagenet_weights_filename",
    "imagenet_weights_path",
    "keras_cache_dirs",
    "keras_layer_weights",
    "load_imagenet_weights",
    "load_mobilenet_v2_h5",
    "read_legacy_h5",
    "save_mobilenet_v2_h5",
    "variables_from_keras_layers",
    "write_legacy_h5",
]

#: Widths and resolutions for which Keras publishes ImageNet weights.
IMAGENET_ALPHAS: tuple[float, ...] = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
IMAGENET_ROWS: tuple[int, ...] = (96, 128, 160, 192, 224)
_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
_HDF5_OBJECT_HEADER_LIMIT = 64512

#: Per Keras layer name, its weights as ``(weight name, array)`` pairs in Keras order, with
#: Keras shapes; names are either full legacy names (``"bn_Conv1/gamma:0"``) or bare
#: (``"gamma"``).
LayerWeights = dict[str, list[tuple[str, np.ndarray]]]

Variables = dict[str, Any]


def _kind(layer: str) -> str:
    if layer == "predictions":
        return "dense"
    if layer.startswith("bn_") or layer.endswith(("_BN", "_bn")):
        return "batchnorm"
    if layer.endswith("depthwise"):
        return "depthwise"
    return "conv"


# Keras-2 weight names per kind, in the order Keras stores them.
_LEGACY_NAMES = {
    "conv": ("kernel",),
    "depthwise": ("depthwise_kernel",),
    "batchnorm": ("gamma", "beta", "moving_mean", "moving_variance"),
    "dense": ("kernel", "bias"),
}
# Other names a variable may carry (Keras 3 calls the depthwise kernel just "kernel").
_ALIASES = {"depthwise_kernel": ("kernel",)}


def _bare(weight_name: str) -> str:
    """``"block_1_depthwise/depthwise_kernel:0"`` -> ``"depthwise_kernel"``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def keras_layer_weights(
    variables: Mapping[str, Any], *, alpha: float, include_top: bool = False
) -> LayerWeights:
    """Flax MobileNetV2 variables -> Keras layers' weights with legacy names and Keras shapes.

    Args:
        variables: ``{"params": ..., "batch_stats": ...}`` of :class:`MobileNetV2`.
        alpha: the model's width multiplier (fixes the layer order).
        include_top: whether the variables hold ``predictions``.

    Returns:
        ``{layer: [("layer/var:0", array), ...]}`` in ``model.layers`` order; depthwise kernels
        go from Flax's ``(3, 3, 1, C)`` to Keras' ``(3, 3, C, 1)``.
    """
    params, stats = variables["params"], variables.get("batch_stats", {})
    out: LayerWeights = {}
    for layer in keras_layer_names(alpha, include_top=include_top, weighted_only=True):
        kind = _kind(layer)
        if kind == "batchnorm":
            values = [
                params[layer]["scale"],
                params[layer]["bias"],
                stats[layer]["mean"],
                stats[layer]["var"],
            ]
        elif kind == "depthwise":
            values = [np.transpose(np.asarray(params[layer]["kernel"]), (0, 1, 3, 2))]
        elif kind == "dense":
            values = [params[layer]["kernel"], params[layer]["bias"]]
        else:
            values = [params[layer]["kernel"]]
        out[layer] = [
            (f"{layer}/{name}:0", np.asarray(value))
            for name, value in zip(_LEGACY_NAMES[kind], values, strict=True)
        ]
    return out


def _template(alpha: float, include_top: bool, classes: int) -> Variables:
    model = MobileNetV2(alpha=alpha, include_top=include_top, classes=classes)
    return jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.float32))
    )


def variables_from_keras_layers(
    layers: Mapping[str, Sequence[tuple[str, Any]]],
    *,
    alpha: float,
    include_top: bool = False,
    classes: int = 1000,
    source: str = "the Keras weights",
) -> Variables:
    """Keras layers' weights -> Flax variables of ``MobileNetV2(alpha, include_top, classes)``.

    Args:
        layers: ``{layer name: [(weight name, array), ...]}``; weight names may be legacy
            (``"bn_Conv1/gamma:0"``) or bare (``"gamma"``); weights are matched by name, so
            their order does not matter. Layers without weights may be absent or empty.
        alpha, include_top, classes: the Flax model the variables are for.
        source: how to name the origin of the weights in error messages.

    Returns:
        ``{"params": ..., "batch_stats": ...}`` (``jax.Array``, values copied exactly).

    Raises:
        ValueError: naming the layer, when a layer is missing, a weight is missing or unknown, a
            shape does not fit, or ``layers`` holds weighted layers the model does not have.
    """
    template = _template(alpha, include_top, classes)
    expected = keras_layer_names(alpha, include_top=include_top, weighted_only=True)
    extra = sorted(k for k, v in layers.items() if v and k not in expected)
    if extra:
        raise ValueError(
            f"{source} hold layers that MobileNetV2(alpha={alpha}, include_top={include_top}) "
            f"does not have: {extra[:8]}{' ...' if len(extra) > 8 else ''}"
        )
    params: dict[str, dict[str, jax.Array]] = {}
    stats: dict[str, dict[str, jax.Array]] = {}
    for layer in expected:
        if layer not in layers or not layers[layer]:
            raise ValueError(f"{source}: layer {layer!r} is missing")
        kind = _kind(layer)
        given = {_bare(name): np.asarray(value) for name, value in layers[layer]}
        values = {}
        for name in _LEGACY_NAMES[kind]:
            for candidate in (name, *_ALIASES.get(name, ())):
                if candidate in given:
                    values[name] = given.pop(candidate)
                    break
            else:
                raise ValueError(
                    f"{source}: layer {layer!r} has no weight {name!r} (it has {sorted(given)})"
                )
        if given:
            raise ValueError(f"{source}: layer {layer!r} has unexpected weights {sorted(given)}")
        if kind == "batchnorm":
            p = {"scale": values["gamma"], "bias": values["beta"]}
            s = {"mean": values["moving_mean"], "var": values["moving_variance"]}
        elif kind == "depthwise":
            k = values["depthwise_kernel"]
            if k.ndim != 4 or k.shape[-1] != 1:
                raise ValueError(
                    f"{source}: layer {layer!r}: depthwise_kernel has shape {k.shape}, "
                    f"expected (3, 3, C, 1)"
                )
            p, s = {"kernel": np.transpose(k, (0, 1, 3, 2))}, None
        elif kind == "dense":
            p, s = {"kernel": values["kernel"], "bias": values["bias"]}, None
        else:
            p, s = {"kernel": values["kernel"]}, None
        for collection, tree, out in (("params", p, params), ("batch_stats", s, stats)):
            if tree is None:
                continue
            for name, value in tree.items():
                want = template[collection][layer][name]
                if tuple(value.shape) != tuple(want.shape):
                    raise ValueError(
                        f"{source}: layer {layer!r} weight {_keras_name(kind, name)!r} has "
                        f"shape {_keras_shape(kind, value.shape)}, the model expects "
                        f"{_keras_shape(kind, want.shape)} (alpha={alpha}, "
                        f"include_top={include_top})"
                    )
            out[layer] = {
                name: jnp.asarray(value, template[collection][layer][name].dtype)
                for name, value in tree.items()
            }
    return {"params": params, "batch_stats": stats}


_BN_KERAS_NAME = {"scale": "gamma", "bias": "beta", "mean": "moving_mean", "var": "moving_variance"}


def _keras_name(kind: str, name: str) -> str:
    return _BN_KERAS_NAME[name] if kind == "batchnorm" else name


def _keras_shape(kind: str, shape: Sequence[int]) -> tuple[int, ...]:
    """A Flax shape as Keras shows it (depthwise kernels back to ``(3, 3, C, 1)``)."""
    shape = tuple(shape)
    return (*shape[:2], shape[3], shape[2]) if kind == "depthwise" else shape


# --------------------------------------------------------------------------- legacy .h5 I/O


def _save_attribute(group: Any, name: str, data: Sequence[bytes]) -> None:
    """Keras' ``save_attributes_to_hdf5_group``: split attributes over 64 KiB into chunks."""
    array = np.asarray(data)
    chunks = 1
    parts = np.array_split(array, chunks)
    while any(part.nbytes > _HDF5_OBJECT_HEADER_LIMIT for part in parts):
        chunks += 1
        parts = np.array_split(array, chunks)
    if chunks > 1:
        for i, part in enumerate(parts):
            group.attrs[f"{name}{i}"] = part
    else:
        group.attrs[name] = array


def _load_attribute(group: Any, name: str) -> list[str]:
    """Keras' ``load_attributes_from_hdf5_group`` (chunked or not), decoded to ``str``."""

    def decode(values: Any) -> list[str]:
        return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]

    if name in group.attrs:
        return decode(group.attrs[name])
    out: list[str] = []
    i = 0
    while f"{name}{i}" in group.attrs:
        out += decode(group.attrs[f"{name}{i}"])
        i += 1
    return out


def read_legacy_h5(path: str | os.PathLike[str]) -> LayerWeights:
    """Read a Keras-2 weights file into ``{layer: [(weight name, array), ...]}``.

    Accepts both a weights file (``layer_names`` at the root) and a whole-model file (weights
    under ``model_weights``). Layers without weights map to ``[]``. Needs only h5py.
    """
    import h5py

    with h5py.File(path, "r") as f:
        root = f
        if "layer_names" not in f.attrs and "model_weights" in f:
            root = f["model_weights"]
        names = _load_attribute(root, "layer_names")
        if not names:
            raise ValueError(f"{path} is not a legacy Keras weights file (no 'layer_names')")
        out: LayerWeights = {}
        for layer in names:
            group = root[layer]
            out[layer] = [
                (weight, np.asarray(group[weight]))
                for weight in _load_attribute(group, "weight_names")
            ]
        return out


def write_legacy_h5(
    path: str | os.PathLike[str],
    layers: Mapping[str, Sequence[tuple[str, Any]]],
    *,
    layer_names: Sequence[str] | None = None,
    backend: str = "tensorflow",
    keras_version: str = "2.1.6",
) -> None:
    """Write a Keras-2 weights file exactly as Keras 2's ``model.save_weights("x.h5")`` did.

    Args:
        path: file to create (overwritten).
        layers: ``{layer: [("layer/var:0", array), ...]}``; the weight names become the
            ``weight_names`` attribute and the datasets ``<layer>/<weight name>``.
        layer_names: every layer of the model in ``model.layers`` order (layers without
            weights get an empty group); defaults to the keys of ``layers``.
        backend, keras_version: the root attributes Keras 2 wrote.
    """
    import h5py

    names = list(layers) if layer_names is None else list(layer_names)
    missing = [layer for layer, weights in layers.items() if weights and layer not in names]
    if missing:
        raise ValueError(f"layers {missing} are not in layer_names")
    with h5py.File(path, "w") as f:
        _save_attribute(f, "layer_names", [n.encode("utf8") for n in names])
        f.attrs["backend"] = backend.encode("utf8")
        f.attrs["keras_version"] = keras_version.encode("utf8")
        for layer in sorted(names):  # Keras sorts groups by name
            group = f.create_group(layer)
            weights = list(layers.get(layer, ()))
            _save_attribute(group, "weight_names", [w.encode("utf8") for w, _ in weights])
            for weight, value in weights:
                value = np.asarray(value)
                dataset = group.create_dataset(weight, value.shape, dtype=value.dtype)
                if value.shape:
                    dataset[:] = value
                else:
                    dataset[()] = value


def save_mobilenet_v2_h5(
    path: str | os.PathLike[str],
    variables: Mapping[str, Any],
    *,
    alpha: float,
    include_top: bool = False,
    pooling: str | None = None,
) -> None:
    """Write :class:`MobileNetV2` variables as the Keras ImageNet file would hold them.

    The result loads into ``keras.applications.MobileNetV2(alpha=alpha, include_top=...,
    weights=path)`` and, named :func:`imagenet_weights_filename` in Keras' cache, with
    ``weights="imagenet"``.
    """
    write_legacy_h5(
        path,
        keras_layer_weights(variables, alpha=alpha, include_top=include_top),
        layer_names=keras_layer_names(alpha, include_top=include_top, pooling=pooling),
    )


def load_mobilenet_v2_h5(
    path: str | os.PathLike[str],
    *,
    alpha: float,
    include_top: bool = False,
    classes: int = 1000,
) -> Variables:
    """Read a legacy Keras MobileNetV2 ``.h5`` into Flax variables, checking names and shapes.

    A file with the top (``predictions``) can be loaded with ``include_top=False``: the top is
    dropped. Raises ``ValueError`` naming the layer that does not fit.
    """
    layers = read_legacy_h5(path)
    if not include_top:
        layers.pop("predictions", None)
    return variables_from_keras_layers(
        layers, alpha=alpha, include_top=include_top, classes=classes, source=str(path)
    )


# --------------------------------------------------------------------------- ImageNet files


def imagenet_weights_filename(
    alpha: float = 1.0, rows: int = 224, include_top: bool = False
) -> str:
    """The file name ``keras.applications.MobileNetV2`` caches, e.g.
    ``mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5``."""
    if alpha not in IMAGENET_ALPHAS:
        raise ValueError(f"Keras has ImageNet weights for alpha in {IMAGENET_ALPHAS}, not {alpha}")
    if rows not in IMAGENET_ROWS:
        raise ValueError(f"Keras has ImageNet weights for rows in {IMAGENET_ROWS}, not {rows}")
    suffix = "" if include_top else "_no_top"
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{suffix}.h5"


def keras_cache_dirs() -> list[Path]:
    """Where Keras caches model files: ``$KERAS_HOME/models`` if set, ``~/.keras/models``, and
    Keras' fallback ``/tmp/.keras/models``."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]).expanduser() / "models")
    dirs += [Path("~/.keras/models").expanduser(), Path("/tmp/.keras/models")]
    return dirs


def imagenet_weights_path(
    alpha: float = 1.0,
    rows: int = 224,
    *,
    include_top: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Path:
    """The ImageNet weight file: ``path`` if given, else the first hit in :func:`keras_cache_dirs`.

    Raises:
        FileNotFoundError: saying which file to put where (seqjax never downloads it).
    """
    if path is not None:
        candidate = Path(path).expanduser()
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"MobileNetV2 weight file {candidate} does not exist")
    name = imagenet_weights_filename(alpha, rows, include_top)
    candidates = [d / name for d in keras_cache_dirs()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = "\n  ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"MobileNetV2 ImageNet weights not found; looked for\n  {where}\n"
        f"seqjax never downloads them. Download {_BASE_URL}{name} and save it as "
        f"{candidates[0]} (Keras' cache: $KERAS_HOME/models/ or ~/.keras/models/; running "
        f"keras.applications.MobileNetV2(alpha={alpha}, include_top={include_top}, "
        f"weights='imagenet') once with internet access puts it there), or pass its path."
    )


def load_imagenet_weights(
    alpha: float = 1.0,
    rows: int = 224,
    *,
    include_top: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Variables:
    """Keras' ImageNet MobileNetV2 weights as Flax variables for ``MobileNetV2(alpha, ...)``.

    Reads ``path`` or the cached file (see :func:`imagenet_weights_path`) with h5py alone; no
    TensorFlow or Keras needed. The variables fit any input size of at least 32x32.
    """
    return load_mobilenet_v2_h5(
        imagenet_weights_path(alpha, rows, include_top=include_top, path=path),
        alpha=alpha,
        include_top=include_top,
    )

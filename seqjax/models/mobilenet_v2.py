"""MobileNetV2 as a Flax linen module that reproduces ``keras.applications.MobileNetV2``.

The network is the one Keras builds, layer for layer:

- the stem convolution uses ``'same'`` padding (stride 2, TensorFlow's rule, which Flax's
  ``'SAME'`` follows);
- every stride-2 depthwise convolution is preceded by Keras' asymmetric ``ZeroPadding2D``
  (``correct_pad``: ``(0, 1)`` on an even side, ``(1, 1)`` on an odd side) and then run with
  ``'valid'`` padding;
- BatchNorm uses ``epsilon=1e-3`` and ``momentum=0.999``; activations are ReLU6; convolutions
  have no bias.

Every parameter lives directly under a submodule named exactly like the Keras layer that owns
it, so ``params["block_1_depthwise"]["kernel"]`` is Keras' ``block_1_depthwise`` kernel and
``batch_stats["bn_Conv1"]["var"]`` is Keras' ``bn_Conv1/moving_variance``. Depthwise kernels are
stored the Flax way, ``(3, 3, 1, C)`` with ``feature_group_count=C``, where Keras stores
``(3, 3, C, 1)``.

Shapes: inputs are ``(N, H, W, 3)`` with ``H, W >= 32``, already scaled to ``[-1, 1]`` by
:func:`preprocess_input`. Without the top, the output is ``(N, ceil(H/32), ceil(W/32), F)``
with ``F = 1280`` (or ``make_divisible(1280 * alpha, 8)`` when ``alpha > 1``), or ``(N, F)``
with ``pooling='avg'``/``'max'``; with the top it is ``(N, classes)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = [
    "BLOCKS",
    "BlockSpec",
    "MobileNetV2",
    "block_of",
    "block_specs",
    "correct_pad",
    "first_filters",
    "keras_layer_names",
    "last_filters",
    "make_divisible",
    "preprocess_input",
    "unfreeze_top",
]

# (filters, stride, expansion) of the 17 inverted residual blocks, as in Keras.
_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1),
    (24, 2, 6),
    (24, 1, 6),
    (32, 2, 6),
    (32, 1, 6),
    (32, 1, 6),
    (64, 2, 6),
    (64, 1, 6),
    (64, 1, 6),
    (64, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (96, 1, 6),
    (160, 2, 6),
    (160, 1, 6),
    (160, 1, 6),
    (320, 1, 6),
)

#: The units of the network from the input to the output, as used to freeze or unfreeze
#: "the top N blocks": the stem (``Conv1``, ``bn_Conv1``), the 17 inverted residual blocks
#: (``expanded_conv`` is block 0) and the last 1x1 convolution (``Conv_1``, ``Conv_1_bn``).
#: ``predictions`` (only with ``include_top``) is a unit of its own after these.
BLOCKS: tuple[str, ...] = (
    ("Conv1", "expanded_conv") + tuple(f"block_{i}" for i in range(1, 17)) + ("Conv_1",)
)


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Keras' ``_make_divisible``: round ``v`` to a multiple of ``divisor``, losing <= 10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def correct_pad(size: Sequence[int], kernel_size: int = 3) -> tuple[tuple[int, int], ...]:
    """Keras' ``imagenet_utils.correct_pad`` for spatial ``size = (H, W)``.

    Returns ``((top, bottom), (left, right))``: ``(0, 1)`` on an even side, ``(1, 1)`` on an odd
    side for ``kernel_size=3``.
    """
    correct = kernel_size // 2
    return tuple((correct - (1 - s % 2), correct) for s in size)


def preprocess_input(x: jax.Array) -> jax.Array:
    """Scale pixels from ``[0, 255]`` to ``[-1, 1]``: ``x / 127.5 - 1`` (Keras' ``mode='tf'``)."""
    return jnp.asarray(x, jnp.float32) / 127.5 - 1.0


@dataclass(frozen=True)
class BlockSpec:
    """One inverted residual block: Keras name prefix and channel counts for a given alpha."""

    block_id: int
    prefix: str  # "expanded_conv_" or "block_{i}_"
    in_channels: int
    expanded: int | None  # None for block 0 (no expansion conv)
    out_channels: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.in_channels == self.out_channels and self.stride == 1


def first_filters(alpha: float) -> int:
    """Channels of the stem convolution ``Conv1``."""
    return make_divisible(32 * alpha, 8)


def last_filters(alpha: float) -> int:
    """Channels of the last 1x1 convolution ``Conv_1``."""
    return make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280


def block_specs(alpha: float) -> tuple[BlockSpec, ...]:
    """The 17 inverted residual blocks of a MobileNetV2 with width multiplier ``alpha``."""
    specs = []
    in_channels = first_filters(alpha)
    for block_id, (filters, stride, expansion) in enumerate(_BLOCKS):
        out_channels = make_divisible(int(filters * alpha), 8)
        specs.append(
            BlockSpec(
                block_id=block_id,
                prefix=f"block_{block_id}_" if block_id else "expanded_conv_",
                in_channels=in_channels,
                expanded=expansion * in_channels if block_id else None,
                out_channels=out_channels,
                stride=stride,
            )
        )
        in_channels = out_channels
    return tuple(specs)


def block_of(layer_name: str) -> str:
    """The unit of :data:`BLOCKS` (or ``"predictions"``) that a Keras layer name belongs to."""
    if layer_name in ("Conv1", "bn_Conv1", "Conv1_relu"):
        return "Conv1"
    if layer_name in ("Conv_1", "Conv_1_bn", "out_relu"):
        return "Conv_1"
    if layer_name == "predictions":
        return "predictions"
    if layer_name.startswith("expanded_conv_"):
        return "expanded_conv"
    if layer_name.startswith("block_"):
        number = layer_name.split("_")[1]
        if number.isdigit() and 1 <= int(number) <= 16:
            return f"block_{int(number)}"
    raise ValueError(f"{layer_name!r} is not a MobileNetV2 layer name")


def _path(keypath) -> str:
    return "/".join(
        str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in keypath
    )


def unfreeze_top(frozen, n: int, *, prefix: str = "backbone"):
    """Unfreezes the top ``n`` units of a MobileNetV2 backbone in a frozen mask, to fine-tune.

    The units, from the input up, are ``BLOCKS`` (in this module): the stem ``Conv1``, ``expanded_conv``,
    ``block_1`` ... ``block_16`` and the last convolution ``Conv_1`` (19 in all), so ``n=1``
    unfreezes ``Conv_1``/``Conv_1_bn`` and ``n=4`` also ``block_14`` to ``block_16``. Which
    layers form a unit is a fact of this network; freezing itself is generic
    (:func:`seqjax.transfer.mask_params`, ``seqjax.train.fit(..., frozen=mask)``).

    >>> import jax, jax.numpy as jnp
    >>> variables = jax.eval_shape(MobileNetV2(alpha=0.35, include_top=False).init,
    ...                            jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    >>> frozen = jax.tree.map(lambda _: True, {"backbone": variables["params"]})
    >>> mask = unfreeze_top(frozen, 1)
    >>> mask["backbone"]["Conv_1"]["kernel"], mask["backbone"]["block_16_project"]["kernel"]
    (False, True)

    Args:
        frozen: boolean mask pytree (``True`` = frozen) of the model's params.
        n: how many units to unfreeze, ``0 <= n <= 19``.
        prefix: path of the MobileNetV2 params inside the tree (``""`` if the tree is the
            MobileNetV2's own params).

    Returns:
        The mask with those units' leaves set to ``False``; other leaves unchanged.

    Raises:
        ValueError: ``n`` out of range, or a unit to unfreeze has no parameter under ``prefix``.
    """
    units = list(BLOCKS)
    if not 0 <= n <= len(units):
        raise ValueError(f"n must be in [0, {len(units)}], got {n}")
    top = set(units[len(units) - n :])
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    seen: set[str] = set()
    flags = []
    for keypath, flag in jax.tree_util.tree_leaves_with_path(frozen):
        path = _path(keypath)
        unit = None
        if path.startswith(head):
            layer = path[len(head) :].split("/", 1)[0]
            try:
                unit = block_of(layer)
            except ValueError:
                unit = None
        if unit in top:
            seen.add(unit)
            flags.append(False)
        else:
            flags.append(flag)
    missing = [u for u in units if u in top and u not in seen]
    if missing:
        raise ValueError(f"no MobileNetV2 parameters of {missing} under prefix {prefix!r}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(frozen), flags)


def keras_layer_names(
    alpha: float = 1.0,
    *,
    include_top: bool = False,
    pooling: str | None = None,
    weighted_only: bool = False,
    input_name: str = "input_1",
) -> list[str]:
    """Names of ``keras.applications.MobileNetV2``'s layers, in ``model.layers`` order.

    With ``weighted_only``, only the layers that hold weights (convolutions, BatchNorm,
    ``predictions``), which is the order Keras uses to load a legacy ``.h5`` file
    topologically. The names of the input and the pooling layers are Keras' automatic ones
    (Keras 2 wrote ``input_1``) and are given for completeness only.
    """
    names: list[tuple[str, bool]] = [
        (input_name, False),
        ("Conv1", True),
        ("bn_Conv1", True),
        ("Conv1_relu", False),
    ]
    for spec in block_specs(alpha):
        p = spec.prefix
        if spec.expanded is not None:
            names += [(f"{p}expand", True), (f"{p}expand_BN", True), (f"{p}expand_relu", False)]
        if spec.stride == 2:
            names.append((f"{p}pad", False))
        names += [
            (f"{p}depthwise", True),
            (f"{p}depthwise_BN", True),
            (f"{p}depthwise_relu", False),
            (f"{p}project", True),
            (f"{p}project_BN", True),
        ]
        if spec.residual:
            names.append((f"{p}add", False))
    names += [("Conv_1", True), ("Conv_1_bn", True), ("out_relu", False)]
    if include_top:
        names += [("global_average_pooling2d", False), ("predictions", True)]
    elif pooling == "avg":
        names.append(("global_average_pooling2d", False))
    elif pooling == "max":
        names.append(("global_max_pooling2d", False))
    return [n for n, weighted in names if weighted or not weighted_only]


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al., 2018) exactly as ``keras.applications.MobileNetV2`` builds it.

    Attributes:
        alpha: width multiplier (Keras ships ImageNet weights for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).
        include_top: end with global average pooling and the ``predictions`` dense layer.
        pooling: without the top: ``None`` (feature map), ``"avg"`` or ``"max"``.
        classes: outputs of ``predictions``.
        classifier_activation: ``"softmax"`` (Keras' default) or ``None`` for logits.
        bn_momentum: BatchNorm moving-average momentum (Keras: 0.999). A smaller value only
            changes how fast the statistics follow the batches when training from scratch.
        bn_epsilon: BatchNorm epsilon (Keras: 1e-3; Flax's default 1e-5 does not match).

    Call with ``x`` of shape ``(N, H, W, 3)``, ``H, W >= 32``, in ``[-1, 1]``. ``train=True``
    normalises with batch statistics and updates ``batch_stats`` (apply with
    ``mutable=["batch_stats"]``); ``train=False`` (Keras' inference mode) uses the moving
    statistics and leaves them untouched.
    """

    alpha: float = 1.0
    include_top: bool = True
    pooling: str | None = None
    classes: int = 1000
    classifier_activation: str | None = "softmax"
    bn_momentum: float = 0.999
    bn_epsilon: float = 1e-3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected images of shape (N, H, W, 3), got {x.shape}")
        if min(x.shape[1:3]) < 32:
            raise ValueError(f"MobileNetV2 needs inputs of at least 32x32, got {x.shape[1:3]}")
        if self.pooling not in (None, "avg", "max"):
            raise ValueError(f"pooling must be None, 'avg' or 'max', got {self.pooling!r}")

        def bn(y: jax.Array, name: str) -> jax.Array:
            return nn.BatchNorm(
                use_running_average=not train,
                momentum=self.bn_momentum,
                epsilon=self.bn_epsilon,
                name=name,
            )(y)

        def conv1x1(y: jax.Array, features: int, name: str) -> jax.Array:
            return nn.Conv(features, (1, 1), padding="SAME", use_bias=False, name=name)(y)

        x = nn.Conv(
            first_filters(self.alpha),
            (3, 3),
            strides=(2, 2),
            padding="SAME",
            use_bias=False,
            name="Conv1",
        )(x)
        x = nn.relu6(bn(x, "bn_Conv1"))

        for spec in block_specs(self.alpha):
            p = spec.prefix
            inputs = x
            if spec.expanded is not None:
                x = conv1x1(x, spec.expanded, f"{p}expand")
                x = nn.relu6(bn(x, f"{p}expand_BN"))
            channels = x.shape[-1]
            if spec.stride == 2:
                pad = correct_pad(x.shape[1:3], 3)
                x = jnp.pad(x, ((0, 0), *pad, (0, 0)))
            x = nn.Conv(
                channels,
                (3, 3),
                strides=(spec.stride, spec.stride),
                padding="SAME" if spec.stride == 1 else "VALID",
                feature_group_count=channels,
                use_bias=False,
                name=f"{p}depthwise",
            )(x)
            x = nn.relu6(bn(x, f"{p}depthwise_BN"))
            x = conv1x1(x, spec.out_channels, f"{p}project")
            x = bn(x, f"{p}project_BN")
            if spec.residual:
                x = inputs + x

        x = conv1x1(x, last_filters(self.alpha), "Conv_1")
        x = nn.relu6(bn(x, "Conv_1_bn"))

        if self.include_top:
            x = jnp.mean(x, axis=(1, 2))
            x = nn.Dense(self.classes, name="predictions")(x)
            if self.classifier_activation == "softmax":
                x = nn.softmax(x, axis=-1)
            elif self.classifier_activation is not None:
                raise ValueError(
                    f"classifier_activation must be 'softmax' or None, "
                    f"got {self.classifier_activation!r}"
                )
        elif self.pooling == "avg":
            x = jnp.mean(x, axis=(1, 2))
        elif self.pooling == "max":
            x = jnp.max(x, axis=(1, 2))
        return x

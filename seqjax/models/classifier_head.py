"""A new classification head on a pretrained backbone, as in the Keras transfer-learning guide.

``ClassifierHead``: global average pooling, dropout, dense (logits).
``BackboneClassifier``: ``head(backbone(x))`` with the backbone's mode chosen separately from the
head's, so that a frozen backbone runs in inference mode (BatchNorm on its moving statistics,
which are never updated) while the head trains with dropout. Its variables are
``{"params": {"backbone": ..., "head": ...}, "batch_stats": {"backbone": ...}}``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["BackboneClassifier", "ClassifierHead"]


class ClassifierHead(nn.Module):
    """Global average pooling, dropout, dense.

    Attributes:
        num_classes: number of logits.
        dropout_rate: dropout before the dense layer (the guide uses 0.2).

    Call with features ``(N, H, W, C)`` (pooled over ``H, W``) or ``(N, C)``; returns logits
    ``(N, num_classes)``. ``train=True`` applies dropout (needs a ``"dropout"`` rng).
    """

    num_classes: int
    dropout_rate: float = 0.2

    @nn.compact
    def __call__(self, features: jax.Array, train: bool = False) -> jax.Array:
        x = jnp.mean(features, axis=(1, 2)) if features.ndim == 4 else features
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name="dense")(x)


class BackboneClassifier(nn.Module):
    """``head(backbone(x))``.

    Attributes:
        backbone: a module called as ``backbone(x, train=...)`` (e.g. a ``MobileNetV2`` without
            top and without pooling).
        head: a module called as ``head(features, train=...)`` (e.g. ``ClassifierHead``).

    ``train`` is the head's mode (dropout); ``backbone_train`` is the backbone's mode. Keep
    ``backbone_train=False`` for transfer learning: a frozen backbone runs in inference mode, also
    while its top blocks are fine-tuned. Set it only to train the whole network from scratch
    (then apply with ``mutable=["batch_stats"]``).
    """

    backbone: nn.Module
    head: nn.Module

    @nn.compact
    def __call__(
        self, x: jax.Array, train: bool = False, backbone_train: bool = False
    ) -> jax.Array:
        return self.head(self.backbone(x, train=backbone_train), train=train)

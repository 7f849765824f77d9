"""A new classification head on a pretrained backbone, as in the Keras transfer-learning guide.

``ClassifierHead``: global average pooling, dropout, dense (logits).
``BackboneClassifier``: ``head(backbone(x))`` with the backbone's BatchNorm mode a property of the
module, so that a frozen backbone runs in inference mode (BatchNorm on its moving statistics,
which are never updated) while the head trains with dropout; it follows :mod:`seqjax.train`'s
model protocol with a ``None`` carry, so it trains with ``seqjax.train.fit``. Its variables are
``{"params": {"backbone": ..., "head": ...}, "batch_stats": {"backbone": ...}}``.
"""

from __future__ import annotations

from typing import Any

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


BATCH_NORM_MODES = ("inference", "train")


class BackboneClassifier(nn.Module):
    """``head(backbone(x))``, following the model protocol of :mod:`seqjax.train` (no carry).

    >>> import jax, jax.numpy as jnp
    >>> class Backbone(nn.Module):              # e.g. MobileNetV2(alpha=0.35, include_top=False)
    ...     @nn.compact
    ...     def __call__(self, x, train=False):
    ...         return nn.BatchNorm(use_running_average=not train)(nn.Conv(4, (3, 3))(x))
    >>> model = BackboneClassifier(Backbone(), ClassifierHead(5))
    >>> x = jnp.zeros((2, 8, 8, 3))
    >>> variables = model.init(jax.random.key(0), x)
    >>> carry, logits = model.apply(variables, x)
    >>> carry, logits.shape, model.initial_carry(2)
    (None, (2, 5), None)

    Attributes:
        backbone: a module called as ``backbone(x, train=...)`` (e.g. a ``MobileNetV2`` without
            top and without pooling).
        head: a module called as ``head(features, train=...)`` (e.g. ``ClassifierHead``).
        backbone_batch_norm: the backbone's mode in training, a property of this module:
            ``"inference"`` (default; transfer learning and fine-tuning: BatchNorm on its moving
            statistics, which are never updated, also in unfrozen top blocks, as Keras does for a
            base model called with ``training=False``) or ``"train"`` (pretraining or training
            from scratch: batch statistics, moving averages updated).

    Called as ``model.apply(variables, images [N, H, W, C], carry=None, deterministic=True)``, it
    returns ``(None, logits [N, num_classes])``; ``deterministic=False`` turns on the head's
    dropout (needs a ``"dropout"`` rng) and, with ``backbone_batch_norm="train"``, the backbone's
    training mode (apply with ``mutable=["batch_stats"]``).
    """

    backbone: nn.Module
    head: nn.Module
    backbone_batch_norm: str = "inference"

    @nn.compact
    def __call__(
        self, inputs: jax.Array, carry: None = None, *, deterministic: bool = True
    ) -> tuple[None, jax.Array]:
        if self.backbone_batch_norm not in BATCH_NORM_MODES:
            raise ValueError(
                f"backbone_batch_norm must be one of {BATCH_NORM_MODES}; got "
                f"{self.backbone_batch_norm!r}."
            )
        backbone_train = not deterministic and self.backbone_batch_norm == "train"
        features = self.backbone(inputs, train=backbone_train)
        return None, self.head(features, train=not deterministic)

    def initial_carry(self, batch_size: int, dtype: Any = None) -> None:
        """No recurrent state: ``None`` for any batch size."""
        return None

"""An offline transfer task on real images: scikit-learn's handwritten digits, upsampled.

``load_digits`` ships 1,797 8x8 grey images (values 0..16) with scikit-learn, so no download is
needed. They are upsampled (bilinear) to ``size x size``, repeated to 3 channels and scaled like
MobileNetV2's ``preprocess_input`` to ``[-1, 1]``. The default task pretrains on digits 0-4
(source) and transfers to digits 5-9 (target, relabelled 0-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.models.mobilenet_v2 import preprocess_input  # the model's preprocessing

__all__ = ["Split", "Splits", "digits_transfer_data", "load_digit_images"]

Split = tuple[np.ndarray, np.ndarray]  # (images [N, H, W, 3] float32, labels [N] int32)


@dataclass(frozen=True)
class Splits:
    """Train, validation and test ``(images, labels)`` of one task.

    >>> import numpy as np
    >>> part = (np.zeros((4, 8, 8, 3), np.float32), np.array([0, 2, 1, 0]))
    >>> Splits(train=part, val=part, test=part).num_classes
    3
    """

    train: Split
    val: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return int(max(int(s[1].max()) for s in (self.train, self.val, self.test))) + 1


def load_digit_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """All of scikit-learn's digits as images ``(1797, size, size, 3)`` float32 in ``[-1, 1]``
    and labels ``(1797,)`` int32. Needs scikit-learn.

    >>> images, labels = load_digit_images(16)
    >>> images.shape, labels.shape, float(images.min()), float(images.max())
    ((1797, 16, 16, 3), (1797,), -1.0, 1.0)
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.images.astype(np.float32) * (255.0 / 16.0)  # (N, 8, 8) in [0, 255]
    up = jax.image.resize(jnp.asarray(pixels), (len(pixels), size, size), method="linear")
    gray = preprocess_input(jnp.clip(up, 0.0, 255.0))
    images = np.asarray(jnp.repeat(gray[..., None], 3, axis=-1))
    return images, digits.target.astype(np.int32)


def _split(
    images: np.ndarray,
    labels: np.ndarray,
    val_fraction: float,
    test_fraction: float,
    limit: int | None,
    rng: np.random.Generator,
) -> Splits:
    order = rng.permutation(len(labels))
    if limit is not None:
        order = order[:limit]
    n = len(order)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    test, val, train = np.split(order, [n_test, n_test + n_val])
    return Splits(
        train=(images[train], labels[train]),
        val=(images[val], labels[val]),
        test=(images[test], labels[test]),
    )


def digits_transfer_data(
    size: int = 32,
    *,
    source_classes: Sequence[int] = (0, 1, 2, 3, 4),
    target_classes: Sequence[int] = (5, 6, 7, 8, 9),
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[Splits, Splits]:
    """``(source, target)`` tasks, each split at random into train/val/test.

    Labels are relabelled to ``0..len(classes)-1`` in the order of ``*_classes``. ``limit``
    keeps only that many random examples per task (for quick tests).

    >>> source, target = digits_transfer_data(16, limit=20)
    >>> target.train[0].shape, len(target.val[1]), len(target.test[1]), target.num_classes
    ((14, 16, 16, 3), 3, 3, 5)
    """
    images, labels = load_digit_images(size)
    rng = np.random.default_rng(seed)
    tasks = []
    for classes in (source_classes, target_classes):
        lookup = {c: i for i, c in enumerate(classes)}
        keep = np.isin(labels, list(classes))
        relabelled = np.array([lookup[int(c)] for c in labels[keep]], np.int32)
        tasks.append(_split(images[keep], relabelled, val_fraction, test_fraction, limit, rng))
    return tasks[0], tasks[1]

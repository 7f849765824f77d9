"""An offline transfer task on real images: scikit-learn's handwritten digits, upsampled.

``load_digits`` ships 1,797 8x8 grey images (values 0..16) with scikit-learn, so no download is
needed. They are upsampled (bilinear) to ``size x size``, repeated to 3 channels and scaled like
MobileNetV2's ``preprocess_input`` to ``[-1, 1]``. The default task pretrains on digits 0-4
(source) and transfers to digits 5-9 (target, relabelled 0-4).

More source data, offline: :func:`random_affine` warps images by random shifts, rotations,
scales and shears (plus pixel noise), and :func:`augmented_batch` draws a new augmented batch per
training step, a pure function of its seed. Label budgets: :func:`per_class_split` cuts a labelled
set into class-balanced parts (exactly ``k`` images of each class per part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.models.mobilenet_v2 import preprocess_input  # the model's preprocessing

__all__ = [
    "Split",
    "Splits",
    "affine_warp",
    "augmented_batch",
    "digits_transfer_data",
    "load_digit_images",
    "per_class_split",
    "random_affine",
]

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


def affine_warp(
    images: np.ndarray, matrices: np.ndarray, offsets: np.ndarray, *, fill: float = -1.0
) -> np.ndarray:
    """Bilinear affine resampling: ``out[n, i, j] = images[n] at (row, col) = matrices[n] @ (i, j)
    + offsets[n]``, ``fill`` outside the image (``-1.0``: the background of a preprocessed digit).

    The convention of ``scipy.ndimage.affine_transform(order=1, mode="grid-constant")`` (output
    coordinates mapped to input coordinates), vectorised over images and channels in NumPy.

    >>> image = np.arange(9.0).reshape(1, 3, 3, 1)
    >>> shift = affine_warp(image, np.eye(2)[None], np.array([[0.0, 1.0]]), fill=0.0)
    >>> shift[0, :, :, 0].tolist()                  # each pixel takes its right neighbour
    [[1.0, 2.0, 0.0], [4.0, 5.0, 0.0], [7.0, 8.0, 0.0]]

    Args:
        images: ``(N, H, W, C)``.
        matrices: ``(N, 2, 2)``, output ``(row, col)`` to input ``(row, col)``.
        offsets: ``(N, 2)``, added after the matrix.
        fill: the value of samples outside the image (bilinear weights fade into it at the edge).

    Returns:
        ``(N, H, W, C)`` float32.

    Raises:
        ValueError: shapes that do not match ``(N, H, W, C)``, ``(N, 2, 2)``, ``(N, 2)``.
    """
    images = np.asarray(images, np.float32)
    matrices = np.asarray(matrices, np.float64)
    offsets = np.asarray(offsets, np.float64)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}")
    n, h, w, c = images.shape
    if matrices.shape != (n, 2, 2) or offsets.shape != (n, 2):
        raise ValueError(
            f"expected matrices of shape {(n, 2, 2)} and offsets of shape {(n, 2)}; got "
            f"{matrices.shape} and {offsets.shape}"
        )
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), -1)  # (H, W, 2)
    source = np.einsum("nab,hwb->nhwa", matrices, grid) + offsets[:, None, None, :]
    base = np.floor(source)
    frac = (source - base).astype(np.float32)
    base = base.astype(np.int64)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)
    batch = np.arange(n)[:, None, None]
    out = np.zeros((n, h, w, c), np.float32)
    for dr in (0, 1):
        for dc in (0, 1):
            # +1: the padded border; indices further out read the (fill) border pixel.
            rows = np.clip(base[..., 0] + dr + 1, 0, h + 1)
            cols = np.clip(base[..., 1] + dc + 1, 0, w + 1)
            weight = (frac[..., 0] if dr else 1 - frac[..., 0]) * (
                frac[..., 1] if dc else 1 - frac[..., 1]
            )
            out += weight[..., None] * padded[batch, rows, cols]
    return out


def random_affine(
    images: np.ndarray,
    seed: int | Sequence[int],
    *,
    max_shift: float = 3.0,
    max_rotation: float = 15.0,
    scale: tuple[float, float] = (0.85, 1.1),
    max_shear: float = 0.2,
    noise: float = 0.05,
    fill: float = -1.0,
) -> np.ndarray:
    """Each image warped by its own random affine map about the centre, plus Gaussian noise.

    Per image: a rotation uniform in ``+-max_rotation`` degrees, a zoom uniform in ``scale``, a
    horizontal shear uniform in ``+-max_shear``, a shift uniform in ``+-max_shift`` pixels per
    axis; then noise of standard deviation ``noise``, clipped to ``[-1, 1]``. A pure function
    of ``seed`` (``numpy.random.default_rng(seed)``).

    >>> images = np.full((2, 32, 32, 3), -1.0, np.float32)
    >>> images[:, 8:24, 14:18] = 1.0                                  # a "1"
    >>> warped = random_affine(images, seed=0)
    >>> warped.shape, warped.dtype, bool(-1 <= warped.min() and warped.max() <= 1)
    ((2, 32, 32, 3), dtype('float32'), True)
    >>> same = random_affine(images, 0, max_shift=0, max_rotation=0, scale=(1, 1), max_shear=0,
    ...                      noise=0)
    >>> bool(np.array_equal(same, images))
    True

    Args:
        images: ``(N, H, W, C)`` in ``[-1, 1]`` (e.g. from :func:`load_digit_images`).
        seed: an int or a sequence of ints (e.g. ``[run_seed, step]``).

    Returns:
        ``(N, H, W, C)`` float32 in ``[-1, 1]``.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high; got {scale}")
    rng = np.random.default_rng(seed)
    n, h, w, _ = images.shape
    angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation, n))
    zoom = np.asarray(rng.uniform(scale[0], scale[1], n))
    shear = rng.uniform(-max_shear, max_shear, n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    # forward map (input -> output) in (row, col): zoom * rotation @ shear; we need its inverse
    forward = np.empty((n, 2, 2))
    forward[:, 0, 0] = cos
    forward[:, 0, 1] = cos * shear - sin
    forward[:, 1, 0] = sin
    forward[:, 1, 1] = sin * shear + cos
    forward *= zoom[:, None, None]
    inverse = np.linalg.inv(forward)
    centre = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    offsets = centre - np.einsum("nab,nb->na", inverse, centre + shift)
    warped = affine_warp(images, inverse, offsets, fill=fill)
    if noise:
        warped = warped + rng.normal(0.0, noise, warped.shape).astype(np.float32)
    return np.clip(warped, -1.0, 1.0).astype(np.float32)


def augmented_batch(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int | Sequence[int],
    **augment: float | tuple[float, float],
) -> dict[str, np.ndarray]:
    """A training batch ``{"inputs": (B, H, W, C), "targets": (B,)}`` of random examples (drawn
    with replacement) each warped by :func:`random_affine`; a pure function of ``seed``, so
    ``FreshBatches(lambda step: augmented_batch(x, y, 32, [seed, step]), ...)`` resumes exactly.

    >>> images, labels = np.zeros((10, 32, 32, 3), np.float32), np.arange(10) % 5
    >>> batch = augmented_batch(images, labels, 4, seed=[0, 7])
    >>> batch["inputs"].shape, batch["targets"].shape
    ((4, 32, 32, 3), (4,))

    ``augment``: keyword arguments of :func:`random_affine` (``max_shift``, ``noise``, ...).
    """
    labels = np.asarray(labels)
    if len(images) != len(labels) or len(labels) == 0:
        raise ValueError(
            f"need as many labels as images (>= 1); got {len(images)} and {len(labels)}"
        )
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(labels), batch_size)
    warp_seed = int(rng.integers(0, 2**31 - 1))
    return {
        "inputs": random_affine(images[pick], warp_seed, **augment),  # type: ignore[arg-type]
        "targets": labels[pick].astype(np.int32),
    }


def per_class_split(
    labels: np.ndarray, counts: Sequence[int | None], seed: int | Sequence[int]
) -> list[np.ndarray]:
    """Indices of ``labels`` cut into class-balanced parts: part ``p`` holds exactly
    ``counts[p]`` random examples of every class (``None``: all that remain of each class, only
    for the last part). Parts are disjoint; indices are sorted within a part.

    >>> labels = np.array([0, 0, 0, 1, 1, 1, 1])
    >>> test, rest = per_class_split(labels, [1, None], seed=0)
    >>> np.bincount(labels[test]).tolist(), np.bincount(labels[rest]).tolist()
    ([1, 1], [2, 3])
    >>> per_class_split(labels, [4], seed=0)
    Traceback (most recent call last):
    ValueError: class 0 has 3 examples; the parts ask for 4

    Args:
        labels: ``(N,)`` integer class labels.
        counts: examples per class of each part, in order.
        seed: of ``numpy.random.default_rng``; one permutation per class.

    Returns:
        One ``int64`` index array per part.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be (N,); got shape {labels.shape}")
    if any(c is None for c in counts[:-1]):
        raise ValueError("only the last part may take all the remaining examples (None)")
    if any(c is not None and c < 0 for c in counts):
        raise ValueError(f"counts must be >= 0; got {list(counts)}")
    fixed = sum(c for c in counts if c is not None)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in counts]
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < fixed:
            raise ValueError(
                f"class {int(cls)} has {len(members)} examples; the parts ask for {fixed}"
            )
        members = rng.permutation(members)
        start = 0
        for p, count in enumerate(counts):
            stop = len(members) if count is None else start + count
            parts[p].append(members[start:stop])
            start = stop
    return [np.sort(np.concatenate(part)).astype(np.int64) for part in parts]

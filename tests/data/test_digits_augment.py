"""Augmented digits and class-balanced splits (seqjax.data.digits): the warp against SciPy's
``affine_transform``, identity and integer shifts exactly, seeded determinism, and exact
per-class counts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage  # a dependency of jax: always installed, never skipped

from seqjax.data.digits import affine_warp, augmented_batch, per_class_split, random_affine


def _scipy_warp(images, matrices, offsets, fill):
    """The reference: one ``scipy.ndimage.affine_transform`` per image and channel."""
    out = np.empty(images.shape, np.float64)
    for n in range(images.shape[0]):
        for c in range(images.shape[-1]):
            out[n, :, :, c] = ndimage.affine_transform(
                images[n, :, :, c].astype(np.float64),
                matrices[n],
                offsets[n],
                order=1,
                mode="grid-constant",
                cval=fill,
            )
    return out


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    c=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_affine_warp_matches_scipy(n, h, w, c, seed):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, h, w, c)).astype(np.float32)
    matrices = np.eye(2) + rng.normal(0, 0.4, (n, 2, 2))
    offsets = rng.normal(0, 3, (n, 2))
    got = affine_warp(images, matrices, offsets, fill=-0.5)
    np.testing.assert_allclose(got, _scipy_warp(images, matrices, offsets, -0.5), atol=2e-6)


def test_integer_shift_moves_pixels_and_fills_the_border():
    images = np.random.default_rng(0).uniform(-1, 1, (2, 6, 5, 3)).astype(np.float32)
    offsets = np.array([[2.0, -1.0], [-1.0, 3.0]])  # output (i, j) reads input (i + dr, j + dc)
    got = affine_warp(images, np.stack([np.eye(2)] * 2), offsets, fill=-1.0)
    for n, (dr, dc) in enumerate(offsets.astype(int)):
        want = np.full((6, 5, 3), -1.0, np.float32)
        for i in range(6):
            for j in range(5):
                if 0 <= i + dr < 6 and 0 <= j + dc < 5:
                    want[i, j] = images[n, i + dr, j + dc]
        np.testing.assert_array_equal(got[n], want)


def test_random_affine_identity_is_exact_and_seeds_are_pure():
    images = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    none = dict(max_shift=0, max_rotation=0, scale=(1.0, 1.0), max_shear=0, noise=0)
    np.testing.assert_array_equal(random_affine(images, 5, **none), images)
    a, b = random_affine(images, [3, 7]), random_affine(images, [3, 7])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_affine(images, [3, 8]))
    assert a.dtype == np.float32 and a.min() >= -1.0 and a.max() <= 1.0


def test_random_affine_rotation_about_the_centre():
    """Rotations alone turn the image about its centre: the centre pixel of an odd-sized image
    stays, the rest moves."""
    images = np.random.default_rng(2).uniform(-1, 1, (3, 9, 9, 1)).astype(np.float32)
    warped = random_affine(images, 0, max_shift=0, scale=(1, 1), max_shear=0, noise=0)
    np.testing.assert_allclose(warped[:, 4, 4], images[:, 4, 4], atol=1e-6)
    assert not np.allclose(warped, images)  # but the rest moved


def test_random_affine_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        random_affine(np.zeros((32, 32, 3)), 0)
    with pytest.raises(ValueError, match="scale"):
        random_affine(np.zeros((1, 32, 32, 3)), 0, scale=(1.2, 1.0))
    with pytest.raises(ValueError, match=r"matrices of shape \(2, 2, 2\)"):
        affine_warp(np.zeros((2, 4, 4, 1)), np.zeros((1, 2, 2)), np.zeros((2, 2)))


def test_augmented_batch_keeps_each_image_with_its_label():
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (12, 32, 32, 3)).astype(np.float32)
    labels = np.arange(12) % 5
    none = dict(max_shift=0, max_rotation=0, scale=(1.0, 1.0), max_shear=0, noise=0)
    batch = augmented_batch(images, labels, 16, [0, 4], **none)
    assert batch["inputs"].shape == (16, 32, 32, 3) and batch["targets"].dtype == np.int32
    for image, label in zip(batch["inputs"], batch["targets"], strict=True):
        (match,) = [i for i in range(12) if np.array_equal(images[i], image)]
        assert labels[match] == label
    again = augmented_batch(images, labels, 16, [0, 4])
    np.testing.assert_array_equal(
        again["inputs"], augmented_batch(images, labels, 16, [0, 4])["inputs"]
    )
    with pytest.raises(ValueError, match="as many labels as images"):
        augmented_batch(images, labels[:5], 4, 0)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(3, 12), min_size=1, max_size=5),
    counts=st.lists(st.integers(0, 3), min_size=1, max_size=3),
    rest=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_per_class_split_gives_exactly_k_per_class_disjoint(sizes, counts, rest, seed):
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(sizes)), sizes))
    if sum(counts) > min(sizes):
        with pytest.raises(ValueError, match="the parts ask for"):
            per_class_split(labels, counts, seed)
        return
    parts = per_class_split(labels, [*counts, None] if rest else counts, seed)
    for part, k in zip(parts, counts, strict=False):
        assert np.bincount(labels[part], minlength=len(sizes)).tolist() == [k] * len(sizes)
    everything = np.concatenate(parts)
    assert len(np.unique(everything)) == len(everything)  # disjoint
    if rest:
        assert sorted(everything.tolist()) == list(range(len(labels)))  # None took the rest
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            parts, per_class_split(labels, [*counts, None] if rest else counts, seed), strict=True
        )
    )


def test_per_class_split_rejects_a_middle_none_and_negative_counts():
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="only the last part"):
        per_class_split(labels, [None, 1], 0)
    with pytest.raises(ValueError, match=">= 0"):
        per_class_split(labels, [-1], 0)

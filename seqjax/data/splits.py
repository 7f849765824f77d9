"""Train/validation/test splits: chronological for series, seeded random for samples.

Keep 10-15 % for validation and 10 % for a test set that is used once, at the end.
"""

from __future__ import annotations

import numpy as np

from seqjax.data.checks import check_fractions, check_positive_int

__all__ = ["chronological_split", "random_split", "split_points"]


def split_points(
    length: int, train: float = 0.75, val: float = 0.15, test: float = 0.10, *, gap: int = 0
) -> tuple[slice, slice, slice]:
    """The three chronological slices of a series of ``length`` steps.

    Boundaries are ``round(length * train)`` and ``round(length * (train + val))``;
    ``gap`` steps after each boundary are left out of the following split (use
    ``window + horizon - 1`` so no window of the next split sees the previous one's
    targets). With ``gap=0`` the slices are disjoint and cover ``range(length)``.

    Example:
        >>> from seqjax.data import split_points
        >>> split_points(20)
        (slice(0, 15, None), slice(15, 18, None), slice(18, 20, None))
        >>> split_points(20, gap=1)                                # one step left out between the parts
        (slice(0, 15, None), slice(16, 18, None), slice(19, 20, None))
    """
    fr = check_fractions(train=train, val=val, test=test)
    length = check_positive_int("length", length)
    gap = check_positive_int("gap", gap, minimum=0)
    b1 = int(round(length * fr["train"]))
    b2 = int(round(length * (fr["train"] + fr["val"])))
    parts = (slice(0, b1), slice(min(b1 + gap, b2), b2), slice(min(b2 + gap, length), length))
    sizes = {"train": b1, "val": b2 - b1, "test": length - b2}
    for (name, frac), part in zip(fr.items(), parts, strict=True):
        size = part.stop - part.start
        if frac > 0 and size < 1:
            raise ValueError(
                f"series is too short to split: {name}={frac} of {length} steps "
                f"(gap={gap}) leaves {size} steps; sizes without gaps: {sizes}"
            )
    return parts


def chronological_split(
    series: np.ndarray,
    train: float = 0.75,
    val: float = 0.15,
    test: float = 0.10,
    *,
    gap: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splits ``series`` (``[time, ...]``) in time order into ``(train, val, test)`` views.

    The default 75/15/10 keeps 15 % for validation and 10 % for the test. The past is
    always in train, the future in test: no shuffling for series. Fit normalisation on
    ``train`` only (:class:`seqjax.data.Standardizer`).

    Args:
      series: ``[time, ...]``.
      train, val, test: fractions in ``[0, 1]`` summing to 1.
      gap: steps dropped between consecutive splits (see :func:`split_points`).

    Returns:
      Three views of ``series``: ``[n_train, ...]``, ``[n_val, ...]``, ``[n_test, ...]``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import chronological_split
        >>> train, val, test = chronological_split(np.arange(20), 0.75, 0.15, 0.10)
        >>> train.shape, val, test                                 # in time order, no overlap
        ((15,), array([15, 16, 17]), array([18, 19]))
    """
    x = np.asarray(series)
    if x.ndim < 1:
        raise ValueError(f"series must have a time axis, got a scalar of shape {x.shape}")
    parts = split_points(x.shape[0], train, val, test, gap=gap)
    return tuple(x[p] for p in parts)  # type: ignore[return-value]


def random_split(
    num_samples: int,
    train: float = 0.75,
    val: float = 0.15,
    test: float = 0.10,
    *,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of independent samples into index arrays.

    For samples that are independent of each other (many short series, windows of
    different series, synthetic sequences). Do not use it on windows of one series: they
    overlap in time and would leak; use :func:`chronological_split` first.

    Returns:
      ``(train_idx, val_idx, test_idx)``: sorted ``int64`` arrays, disjoint, covering
      ``range(num_samples)``, of sizes ``round(n * train)``, ``round(n * (train + val)) -
      round(n * train)`` and the rest.

    Example:
        >>> from seqjax.data import random_split
        >>> train, val, test = random_split(20, seed=0)
        >>> len(train), len(val), len(test)
        (15, 3, 2)
        >>> sorted(set(train) | set(val) | set(test)) == list(range(20))
        True
    """
    parts = split_points(num_samples, train, val, test)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(num_samples)
    return tuple(np.sort(perm[p]) for p in parts)  # type: ignore[return-value]

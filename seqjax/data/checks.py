"""Input validation shared by ``seqjax.data``.

Every check raises :class:`ValueError` with a message that names the argument, what was
expected and what was received, so that a bad call fails at the data-preparation step
instead of deep inside a jitted training step.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "NanPolicy",
    "as_series",
    "check_finite",
    "check_fractions",
    "check_positive_int",
    "check_same_length",
]

NanPolicy = Literal["raise", "propagate"]

_RANK_NAMES = {1: "[time]", 2: "[time, features]", 3: "[batch, time, features]"}


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Returns ``value`` as an ``int`` or raises ``ValueError`` if it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def check_finite(array: np.ndarray, name: str = "series") -> None:
    """Raises ``ValueError`` naming the first index of a NaN or inf value in ``array``.

    Integer and boolean arrays are always finite. The index is the full index tuple in
    ``array`` (for a ``[time, features]`` series: ``(time, feature)``).

    Example:
        >>> import numpy as np
        >>> from seqjax.data import check_finite
        >>> check_finite(np.array([1.0, 2.0]))                     # finite: returns None
        >>> check_finite(np.array([1.0, np.inf]), name="prices")
        Traceback (most recent call last):
            ...
        ValueError: prices must be finite, but contains inf at index 1 ...
    """
    if array.dtype.kind not in "fc":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    flat = int(np.argmin(finite.reshape(-1)))
    index = np.unravel_index(flat, array.shape)
    value = array[index]
    where = int(index[0]) if len(index) == 1 else tuple(int(i) for i in index)
    kind = "NaN" if np.isnan(value) else "inf"
    raise ValueError(
        f"{name} must be finite, but contains {kind} at index {where} "
        f"({int(np.size(array) - finite.sum())} non-finite values in total); "
        "fill the gaps first (e.g. seqjax.data.interpolate_missing) "
        "or pass nan_policy='propagate'"
    )


def as_series(
    series: object,
    name: str = "series",
    *,
    ranks: Sequence[int] = (1, 2),
    nan_policy: str = "raise",
) -> np.ndarray:
    """Converts ``series`` to a numeric NumPy array (no copy when possible) and validates it.

    Args:
      series: array-like of shape ``[time]`` or ``[time, features]`` (the allowed ranks
        are ``ranks``).
      name: argument name used in error messages.
      ranks: allowed ranks.
      nan_policy: ``"raise"`` (default) rejects NaN/inf naming the first index;
        ``"propagate"`` lets them through.

    Returns:
      The array, with its original dtype.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import as_series
        >>> as_series([1.0, 2.0, 3.0])
        array([1., 2., 3.])
        >>> as_series(np.zeros((2, 2, 2)))
        Traceback (most recent call last):
            ...
        ValueError: series must have rank 1 ([time]) or rank 2 ([time, features]), got rank 3 ...
    """
    if nan_policy not in ("raise", "propagate"):
        raise ValueError(f"nan_policy must be 'raise' or 'propagate', got {nan_policy!r}")
    array = np.asarray(series)
    if array.ndim not in ranks:
        expected = " or ".join(f"rank {r} ({_RANK_NAMES.get(r, '?')})" for r in ranks)
        raise ValueError(
            f"{name} must have {expected}, got rank {array.ndim} with shape {array.shape}"
        )
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric (bool, int or float), got dtype {array.dtype}")
    if nan_policy == "raise":
        check_finite(array, name)
    return array


def check_same_length(
    a: np.ndarray, b: np.ndarray, name_a: str = "series", name_b: str = "targets"
) -> None:
    """Raises ``ValueError`` if the leading (time) axes of ``a`` and ``b`` differ."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_b} must have the same length as {name_a} along axis 0: "
            f"expected {a.shape[0]}, got {b.shape[0]} ({name_b} shape {b.shape})"
        )


def check_fractions(**fractions: float) -> dict[str, float]:
    """Validates split fractions: each in [0, 1], summing to 1 (within 1e-6)."""
    for key, value in fractions.items():
        if not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{key} must be a fraction in [0, 1], got {value!r}")
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > 1e-6:
        parts = " + ".join(f"{k}={v}" for k, v in fractions.items())
        raise ValueError(f"split fractions must sum to 1, got {parts} = {total}")
    return {k: float(v) for k, v in fractions.items()}

"""Figures over the seeds of a study: the one summary every study's table is built from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def spread(values: Sequence[float]) -> dict[str, Any] | None:
    """``{mean, std, min, max, n, values}`` of one figure over seeds (``std``: the sample
    standard deviation, 0.0 for a single value); None when there are no values.

    >>> spread([0.5, 1.0, 0.75])["mean"], spread([0.5, 1.0, 0.75])["std"], spread([]) is None
    (0.75, 0.25, True)
    """
    if len(values) == 0:
        return None
    a = np.asarray(values, np.float64)
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "n": len(a),
        "values": a.tolist(),
    }

"""Filling missing values (NaN) in a series before windowing or batching."""

from __future__ import annotations

import numpy as np

from seqjax.data.checks import as_series

__all__ = ["interpolate_missing"]


def interpolate_missing(series: np.ndarray, method: str = "linear") -> np.ndarray:
    """Returns a copy of ``series`` with NaN filled along time, per feature.

    Args:
      series: ``[time]`` or ``[time, features]`` float array (e.g. statsmodels' co2).
      method: ``"linear"`` interpolates between the neighbouring valid steps;
        ``"ffill"`` repeats the last valid value (no look-ahead, safe for forecasting).
        Leading NaNs take the first valid value in both cases.

    Returns:
      An array of the same shape and dtype without NaN.

    Raises:
      ValueError: an unknown method, or a feature that is NaN at every step.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import interpolate_missing
        >>> interpolate_missing(np.array([1.0, np.nan, 3.0, np.nan]))
        array([1., 2., 3., 3.])
    """
    if method not in ("linear", "ffill"):
        raise ValueError(f"method must be 'linear' or 'ffill', got {method!r}")
    x = as_series(series, "series", nan_policy="propagate")
    out = np.array(x, dtype=np.result_type(x.dtype, np.float32))
    cols = out[:, None] if out.ndim == 1 else out
    t = np.arange(cols.shape[0])
    for f in range(cols.shape[1]):
        col = cols[:, f]
        valid = ~np.isnan(col)
        if not valid.any():
            raise ValueError(f"series feature {f} is NaN at every step: nothing to fill from")
        if valid.all():
            continue
        if method == "linear":
            col[~valid] = np.interp(t[~valid], t[valid], col[valid])
        else:
            last = np.maximum.accumulate(np.where(valid, t, -1))
            first = int(np.argmax(valid))
            col[:] = col[np.where(last < 0, first, last)]
    return out

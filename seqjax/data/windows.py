"""Sliding windows over one series, for 1D CNNs and feed-forward forecasters."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from seqjax.data.checks import as_series, check_positive_int, check_same_length

__all__ = ["num_windows", "windows"]


def num_windows(length: int, window: int, horizon: int = 1, stride: int = 1) -> int:
    """Number of (input, target) pairs ``windows`` makes from a series of ``length`` steps.

    Equals ``(length - window - horizon) // stride + 1`` (0 if the series is too short).

    Example:
        >>> from seqjax.data import num_windows
        >>> num_windows(length=6, window=3), num_windows(length=6, window=3, horizon=2, stride=2)
        (3, 1)
    """
    return max(0, (length - window - horizon) // stride + 1)


def windows(
    series: np.ndarray,
    window: int,
    horizon: int = 1,
    stride: int = 1,
    *,
    targets: np.ndarray | None = None,
    nan_policy: str = "raise",
) -> tuple[np.ndarray, np.ndarray]:
    """Slides a window over ``series`` and returns ``(inputs, targets)``.

    For ``i`` in ``range(n)`` with ``n = (time - window - horizon) // stride + 1``::

        inputs[i]  = series[i * stride : i * stride + window]
        targets[i] = series[i * stride + window + horizon - 1]

    i.e. the target lies ``horizon`` steps after the *last* input step (``horizon=1``: the
    next value, never a value inside the window, the off-by-one that
    ``keras.utils.timeseries_dataset_from_array`` users hit).

    Worked example (``window=3, horizon=2, stride=1``)::

        series  = [0, 1, 2, 3, 4, 5, 6]      # time = 7 -> n = (7 - 3 - 2) // 1 + 1 = 3
        inputs  = [[0, 1, 2],                 # last input step at t=2
                   [1, 2, 3],
                   [2, 3, 4]]
        targets = [4, 5, 6]                   # t = 2 + horizon = 4, then 5, 6

    ``inputs`` and ``targets`` are read-only, zero-copy views of ``series`` built with
    ``numpy.lib.stride_tricks.sliding_window_view``: a long series does not multiply its
    memory by ``window`` (call ``np.array(inputs)`` for a writable copy, or feed the views
    straight to ``jnp.asarray``/a minibatch iterator, which copy one batch at a time).

    Args:
      series: ``[time]`` or ``[time, features]``.
      window: number of input steps, >= 1.
      horizon: how far after the last input step the target lies, >= 1.
      stride: step between consecutive windows, >= 1.
      targets: optional ``[time]`` or ``[time, k]`` array aligned with ``series`` (same
        length) to take the targets from instead of ``series`` (e.g. predict one column of
        a multivariate series). The same offset applies.
      nan_policy: ``"raise"`` (default: ``ValueError`` naming the first non-finite index),
        ``"propagate"``, or ``"omit"`` (drop every window whose inputs or target contain
        NaN/inf; the result is then a copy, not a view).

    Returns:
      ``inputs``: ``[n, window]`` for a ``[time]`` series, ``[n, window, features]`` for a
      ``[time, features]`` series; ``targets``: ``[n]`` or ``[n, k]`` (the trailing shape of
      the target source).

    Raises:
      ValueError: a series shorter than ``window + horizon``, ``window``/``horizon``/
        ``stride`` below 1, a rank other than 1 or 2, a ``targets`` length mismatch, or
        NaN/inf with ``nan_policy="raise"``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import windows
        >>> series = np.arange(6.0)
        >>> inputs, targets = windows(series, window=3)            # inputs[i] = series[i : i + 3]
        >>> inputs
        array([[0., 1., 2.],
               [1., 2., 3.],
               [2., 3., 4.]])
        >>> targets                                                # series[i + 3]
        array([3., 4., 5.])
        >>> windows(series, window=3, horizon=2)[1]                # two steps ahead
        array([4., 5.])
    """
    window = check_positive_int("window", window)
    horizon = check_positive_int("horizon", horizon)
    stride = check_positive_int("stride", stride)
    check_policy = "raise" if nan_policy == "raise" else "propagate"
    if nan_policy not in ("raise", "propagate", "omit"):
        raise ValueError(f"nan_policy must be 'raise', 'propagate' or 'omit', got {nan_policy!r}")
    x = as_series(series, "series", nan_policy=check_policy)
    if targets is None:
        y_source = x
    else:
        y_source = as_series(targets, "targets", nan_policy=check_policy)
        check_same_length(x, y_source, "series", "targets")
    length = x.shape[0]
    if length < window + horizon:
        raise ValueError(
            f"series is too short: windows needs at least window + horizon = "
            f"{window} + {horizon} = {window + horizon} steps, got {length}"
        )
    n = num_windows(length, window, horizon, stride)
    views = sliding_window_view(x, window, axis=0)  # [time - window + 1, (features,) window]
    if x.ndim == 2:
        views = np.moveaxis(views, -1, 1)  # [.., window, features], still a view
    inputs = views[: (n - 1) * stride + 1 : stride]
    first_target = window + horizon - 1
    y = y_source[first_target : first_target + (n - 1) * stride + 1 : stride].view()
    y.flags.writeable = False
    if nan_policy == "omit":
        keep = _finite_rows(inputs) & _finite_rows(y)
        inputs, y = inputs[keep], y[keep]
    return inputs, y


def _finite_rows(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "fc":
        return np.ones(a.shape[0], dtype=bool)
    return np.isfinite(a).reshape(a.shape[0], -1).all(axis=1)

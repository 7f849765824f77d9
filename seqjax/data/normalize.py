"""Normalisation: per-batch standardisation and a train-only :class:`Standardizer`.

Sigmoid and tanh units work in their useful (non-saturated) range when their inputs have
zero mean and unit variance. Two ways to get there:

- :func:`standardize_batch` standardises each batch with its own statistics (what the
  lecture suggests) and returns them, so predictions can be mapped back.
- :class:`Standardizer` is fitted on the **training split only** and then applied, frozen,
  to validation and test data: fitting on the whole series leaks test statistics into
  training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqjax.data.checks import as_series

__all__ = ["Standardizer", "standardize_batch"]


def _axes(ndim: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(max(ndim - 1, 1)))  # everything but the trailing feature axis
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for an array of rank {ndim}")
    return tuple(a % ndim for a in axes)


def standardize_batch(
    batch: np.ndarray,
    *,
    axis: int | Sequence[int] | None = None,
    mask: np.ndarray | None = None,
    eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardises one batch to zero mean and unit variance with its own statistics.

    Args:
      batch: e.g. ``[batch, timesteps, features]``, ``[batch, window]`` or ``[time]``.
      axis: axes to reduce over. Default: all but the last axis (per-feature statistics;
        for a rank-1 array, axis 0). For the stacked stateful layout
        ``[num_batches, B, S, F]`` pass ``axis=(1, 2)`` for per-batch, per-feature statistics.
      mask: optional boolean array broadcastable to ``batch``; only ``True`` entries count
        towards the statistics (padding does not), and masked entries are returned as 0.
      eps: floor for the standard deviation (a constant feature maps to 0, not NaN).

    Returns:
      ``(standardised, mean, std)``; ``mean`` and ``std`` keep the reduced axes with size 1,
      so ``standardised * std + mean`` restores ``batch`` (on unmasked entries).

    Example:
        >>> import numpy as np
        >>> from seqjax.data import standardize_batch
        >>> batch = np.array([[1.0, 3.0], [5.0, 7.0]])
        >>> z, mean, scale = standardize_batch(batch)
        >>> z
        array([[-1., -1.],
               [ 1.,  1.]])
        >>> mean, scale                                            # reduced axes kept: z * scale + mean
        (array([[3., 5.]]), array([[2., 2.]]))
    """
    x = np.asarray(batch)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"batch must be numeric, got dtype {x.dtype}")
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    axes = _axes(x.ndim, axis)
    if mask is None:
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True)
    else:
        m = np.broadcast_to(np.asarray(mask, dtype=bool), x.shape)
        count = np.maximum(m.sum(axis=axes, keepdims=True), 1)
        mean = np.where(m, x, 0).sum(axis=axes, keepdims=True) / count
        var = np.where(m, (x - mean) ** 2, 0).sum(axis=axes, keepdims=True) / count
        std = np.sqrt(var)
    std = np.maximum(std, eps).astype(x.dtype)
    mean = mean.astype(x.dtype)
    out = (x - mean) / std
    if mask is not None:
        out = np.where(m, out, 0).astype(x.dtype)
    return out, mean, std


class Standardizer:
    """Per-feature standardisation fitted on the training split only.

    ``fit`` computes the mean and standard deviation of a ``[time]``, ``[time, features]``
    or ``[N, time, features]`` array over every axis but the last (for rank 1: over time).
    ``transform`` and ``inverse_transform`` apply the frozen statistics to any array with
    the same trailing feature shape; they never change them.

    Example::

        train, val, test = chronological_split(series)
        scaler = Standardizer().fit(train)
        train_z, val_z, test_z = (scaler.transform(s) for s in (train, val, test))
        predictions = scaler.inverse_transform(model_output)

    Attributes:
      mean_: ``[features]`` (or ``[]`` for a rank-1 fit), float64.
      scale_: ``[features]`` standard deviations, floored at ``eps``.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import Standardizer
        >>> train = np.array([[1.0, 10.0], [3.0, 30.0]])           # [time, features]
        >>> scaler = Standardizer().fit(train)                     # statistics of the training part only
        >>> scaler.mean_, scaler.scale_
        (array([ 2., 20.]), array([ 1., 10.]))
        >>> scaler.transform(np.array([[2.0, 50.0]]))
        array([[0., 3.]])
        >>> scaler.inverse_transform(scaler.transform(train))
        array([[ 1., 10.],
               [ 3., 30.]])
    """

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self._rank1 = False

    def fit(self, train: np.ndarray, *, nan_policy: str = "raise") -> Standardizer:
        """Fits the statistics on ``train`` (``nan_policy="omit"`` ignores NaNs)."""
        if nan_policy not in ("raise", "omit"):
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
        policy = "raise" if nan_policy == "raise" else "propagate"
        x = as_series(train, "train", ranks=(1, 2, 3), nan_policy=policy)
        if x.shape[0] == 0:
            raise ValueError("train must have at least one time step, got 0")
        self._rank1 = x.ndim == 1
        axes = tuple(range(max(x.ndim - 1, 1)))
        x64 = x.astype(np.float64)
        mean_fn, std_fn = (np.nanmean, np.nanstd) if nan_policy == "omit" else (np.mean, np.std)
        self.mean_ = np.asarray(mean_fn(x64, axis=axes))
        self.scale_ = np.maximum(np.asarray(std_fn(x64, axis=axes)), self.eps)
        return self

    def _check_fitted(self, x: np.ndarray) -> None:
        if self.mean_ is None:
            raise ValueError("Standardizer is not fitted: call fit(train) first")
        if not self._rank1 and (x.ndim < 1 or x.shape[-1:] != self.mean_.shape):
            raise ValueError(
                f"expected an array whose last axis has {self.mean_.shape[0]} features "
                f"(as fitted), got shape {x.shape}"
            )

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean_) / scale_``; the dtype stays floating (float32 stays float32)."""
        a = np.asarray(x)
        self._check_fitted(a)
        dtype = np.result_type(a.dtype, np.float32)
        return ((a - self.mean_) / self.scale_).astype(dtype)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """``z * scale_ + mean_``: maps standardised values (e.g. predictions) back."""
        a = np.asarray(z)
        self._check_fitted(a)
        dtype = np.result_type(a.dtype, np.float32)
        return (a * self.scale_ + self.mean_).astype(dtype)

    def fit_transform(self, train: np.ndarray) -> np.ndarray:
        """``fit(train).transform(train)``."""
        return self.fit(train).transform(train)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted statistics, e.g. to store next to a checkpoint."""
        if self.mean_ is None or self.scale_ is None:
            raise ValueError("Standardizer is not fitted: call fit(train) first")
        return {"mean": self.mean_.copy(), "scale": self.scale_.copy()}

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray], eps: float = 1e-8) -> Standardizer:
        """Rebuilds a fitted Standardizer from :meth:`state_dict` output."""
        s = cls(eps)
        s.mean_ = np.asarray(state["mean"], dtype=np.float64)
        s.scale_ = np.asarray(state["scale"], dtype=np.float64)
        s._rank1 = s.mean_.ndim == 0
        return s

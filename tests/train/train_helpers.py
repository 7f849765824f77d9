"""Builders shared by the seqjax.train tests: NumPy batches (no seqjax.data needed)."""

from __future__ import annotations

import numpy as np


def stream_data(
    num_batches: int = 4, batch: int = 4, time: int = 5, features: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    """Stacked random regression batches ``[N, B, T, F]`` -> targets ``[N, B, T, 1]``.

    The target is a smoothed copy of the first input feature, so there is something to learn.
    """
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(num_batches, batch, time, features)).astype(np.float32)
    flat = inputs.transpose(1, 0, 2, 3).reshape(batch, num_batches * time, features)
    smooth = 0.5 * flat[..., :1] + 0.5 * np.roll(flat[..., :1], 1, axis=1)
    targets = smooth.reshape(batch, num_batches, time, 1).transpose(1, 0, 2, 3)
    return {"inputs": inputs, "targets": np.ascontiguousarray(targets, np.float32)}

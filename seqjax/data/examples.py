"""Independent examples (images, windows) in the stacked batch layout of ``seqjax.train.fit``.

``padded_batches(inputs, targets, batch_size)`` cuts ``N`` examples into ``ceil(N / B)`` batches
of exactly ``B`` rows; the last batch is padded with copies of the first example and
``mask = 0`` on them, so every example is scored exactly once (masked losses) and jitted steps
compile once.
"""

from __future__ import annotations

import numpy as np

from seqjax.data.checks import check_positive_int

__all__ = ["padded_batches"]


def padded_batches(
    inputs: np.ndarray, targets: np.ndarray, batch_size: int
) -> dict[str, np.ndarray]:
    """``{"inputs": [n, B, ...], "targets": [n, B, ...], "mask": [n, B]}``, ``n = ceil(N / B)``.

    >>> batches = padded_batches(np.arange(5.0)[:, None], np.arange(5), batch_size=2)
    >>> batches["inputs"].shape, batches["mask"].tolist()
    ((3, 2, 1), [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])

    Args:
      inputs: ``[N, ...]`` examples (images ``[N, H, W, C]``, windows ``[N, T, F]``).
      targets: ``[N, ...]`` targets (integer labels ``[N]``, values ``[N, O]``).
      batch_size: ``B`` rows per batch, >= 1; fewer examples than ``B`` give one padded batch.

    Raises:
      ValueError: different numbers of inputs and targets, no example, or ``B < 1``.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    n = len(inputs)
    if n == 0 or len(targets) != n:
        raise ValueError(
            f"padded_batches needs as many targets as inputs (>= 1); got {n} inputs and "
            f"{len(targets)} targets."
        )
    count = -(-n // batch_size)
    pad = count * batch_size - n
    index = np.concatenate([np.arange(n), np.zeros(pad, np.int64)])
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])

    def stack(a: np.ndarray) -> np.ndarray:
        return a[index].reshape((count, batch_size) + a.shape[1:])

    return {
        "inputs": stack(inputs),
        "targets": stack(targets),
        "mask": mask.reshape(count, batch_size),
    }

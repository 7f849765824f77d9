"""Data preparation for sequence learning, NumPy on the host (no TensorFlow needed).

Modules (one concept each):

- ``windows``: sliding windows ``(inputs, targets)`` for 1D CNNs / forecasters.
- ``stateful``: one long series in the stateful layout ``[batches, streams, timesteps, F]``.
- ``checks``: input validation (``ValueError`` naming expected and actual).
"""

from seqjax.data.checks import as_series, check_finite
from seqjax.data.stateful import (
    RemainderWarning,
    stateful_batches,
    stateful_layout,
    stateful_restore,
)
from seqjax.data.windows import num_windows, windows

__all__ = [
    "RemainderWarning",
    "as_series",
    "check_finite",
    "num_windows",
    "stateful_batches",
    "stateful_layout",
    "stateful_restore",
    "windows",
]

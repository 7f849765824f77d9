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


def cue_task(
    epoch: int,
    *,
    streams: int = 32,
    time: int = 5,
    chunks: int = 4,
    seed: int = 0,
    score_later_chunks_only: bool = False,
) -> list[dict[str, np.ndarray]]:
    """The memory task of the stateful test: recall a cue shown in an earlier batch.

    Each of ``streams`` streams has a sign ``s = ±1`` (drawn per epoch). The input is ``s`` at the
    first step of the first chunk and 0 everywhere else; the target is ``s`` at every step of every
    chunk. From the second batch on, the answer exists only in the carry, so a model whose carry
    is reset every batch can do no better than predicting 0 (MSE 1), while a stateful LSTM learns
    to latch ``s`` within chunk 0 (truncated BPTT still spans those ``time`` steps) and to read it
    back from the incoming carry later. ``score_later_chunks_only`` masks the first chunk's targets.
    """
    rng = np.random.default_rng([seed, epoch])
    sign = rng.choice([-1.0, 1.0], size=streams).astype(np.float32)
    targets = np.repeat(sign[:, None, None], time, axis=1)
    batches = []
    for k in range(chunks):
        inputs = np.zeros((streams, time, 1), np.float32)
        if k == 0:
            inputs[:, 0, 0] = sign
        batch = {"inputs": inputs, "targets": targets}
        if score_later_chunks_only:
            batch["mask"] = np.full((streams, time), float(k > 0), np.float32)
        batches.append(batch)
    return batches

"""Stateful and ordinary training of sequence models.

- :class:`TrainState`, :func:`create_train_state`: parameters, optimiser, step, rng.
- :func:`train_step`, :func:`eval_step`, :func:`predict_step`: pure steps that thread the carry
  (truncated BPTT by construction); jit them at the call site with ``donate_argnums``.
- :func:`zero_carry`, :func:`reset_carry`, :func:`check_batch_size`: the carry outside the state.
- :func:`online_step`, :func:`online_fit`: an update per observation, TBPTT(1, k).
- :func:`fit`: the one training loop: epochs or a step budget (:class:`FreshBatches`),
  validation, early stopping, test, checkpoints with auto-resume, NaN guard; models with or
  without a carry (image classifiers), frozen parameters, starting from given variables.
- losses: :func:`mse`, :func:`mae`, :func:`huber`, :func:`softmax_cross_entropy`,
  :func:`accuracy` with target masks, many-to-one and many-to-many.
- sharding: :func:`make_mesh`, :func:`shard_batch`, :func:`initialize_distributed`.
"""

from seqjax.train.batches import (
    BATCH_KEYS,
    Batch,
    BatchSource,
    FreshBatches,
    check_batch,
    epoch_batches,
)
from seqjax.train.carry import check_batch_size, reset_carry, zero_carry
from seqjax.train.checkpoint import Checkpointer, NonFiniteError
from seqjax.train.loop import FitResult, fit
from seqjax.train.losses import accuracy, huber, mae, masked_mean, mse, softmax_cross_entropy
from seqjax.train.metrics_writer import MetricsWriter
from seqjax.train.models import SequenceModel
from seqjax.train.online import OnlineState, create_online_state, online_fit, online_step
from seqjax.train.sharding import (
    batch_sharding,
    initialize_distributed,
    make_mesh,
    replicate,
    replicated,
    shard_batch,
    shard_carry,
)
from seqjax.train.state import TrainState, create_train_state
from seqjax.train.steps import eval_step, predict_step, train_step

__all__ = [
    "BATCH_KEYS",
    "Batch",
    "Checkpointer",
    "BatchSource",
    "FitResult",
    "FreshBatches",
    "MetricsWriter",
    "NonFiniteError",
    "OnlineState",
    "SequenceModel",
    "TrainState",
    "accuracy",
    "batch_sharding",
    "check_batch",
    "check_batch_size",
    "create_online_state",
    "create_train_state",
    "epoch_batches",
    "eval_step",
    "fit",
    "huber",
    "initialize_distributed",
    "mae",
    "make_mesh",
    "masked_mean",
    "mse",
    "online_fit",
    "online_step",
    "predict_step",
    "replicate",
    "replicated",
    "reset_carry",
    "shard_batch",
    "shard_carry",
    "softmax_cross_entropy",
    "train_step",
    "zero_carry",
]

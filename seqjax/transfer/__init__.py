"""Transfer learning: freeze parameters with optax masks, new heads, fine-tuning.

- :mod:`~seqjax.transfer.partition`: labels and masks from parameter paths (glob, regex,
  predicate; first match wins; a pattern that matches nothing raises).
- :mod:`~seqjax.transfer.freeze`: ``freeze(tx, mask)`` (zero updates, no optimizer state, no
  weight decay for frozen leaves), ``unfreeze_top``, per-module parameter summaries.
- :mod:`~seqjax.transfer.finetune`: train/eval steps with the backbone in inference mode, epoch
  loop with validation.
- :mod:`~seqjax.transfer.workflow`: the Keras guide's recipe, end to end.
- :mod:`~seqjax.transfer.digits`: an offline task on scikit-learn's digits (needs scikit-learn).
"""

from seqjax.transfer.digits import Splits, digits_transfer_data, load_digit_images
from seqjax.transfer.finetune import (
    TrainState,
    batches,
    cross_entropy,
    evaluate,
    fit,
    init_state,
    make_eval_step,
    make_train_step,
    train_epoch,
)
from seqjax.transfer.freeze import (
    ModuleCount,
    ParamSummary,
    count_params,
    freeze,
    optimizer_state_size,
    summarize,
    unfreeze_top,
)
from seqjax.transfer.partition import label_params, mask_params, named_leaves, path_of
from seqjax.transfer.workflow import (
    TransferConfig,
    TransferResult,
    imagenet_backbone,
    pretrain_backbone,
    run_transfer,
)

__all__ = [
    "ModuleCount",
    "ParamSummary",
    "Splits",
    "TrainState",
    "TransferConfig",
    "TransferResult",
    "batches",
    "count_params",
    "cross_entropy",
    "digits_transfer_data",
    "evaluate",
    "fit",
    "freeze",
    "imagenet_backbone",
    "init_state",
    "label_params",
    "load_digit_images",
    "make_eval_step",
    "make_train_step",
    "mask_params",
    "named_leaves",
    "optimizer_state_size",
    "path_of",
    "pretrain_backbone",
    "run_transfer",
    "summarize",
    "train_epoch",
    "unfreeze_top",
]

"""Transfer learning: freezing parameters and fine-tuning, trained by :func:`seqjax.train.fit`.

- :mod:`~seqjax.transfer.partition`: labels and masks from parameter paths (glob, regex,
  predicate; first match wins; a pattern that matches nothing raises).
- :mod:`~seqjax.transfer.summary`: trainable/frozen parameter counts per module, optimizer state
  size.
- :mod:`~seqjax.transfer.workflow`: the Keras guide's recipe (pretrain, frozen backbone + new
  head, fine-tune the top blocks at 1e-5, test once), each phase one ``seqjax.train.fit``.

Freezing is ``seqjax.train.fit(..., frozen=mask)`` (no gradient for frozen leaves, optimizer
``optax.transforms.selective_transform(tx, freeze_mask=mask)``); the top blocks of a MobileNetV2
are :func:`seqjax.models.unfreeze_top`; the digits task is :mod:`seqjax.data.digits`.

>>> import jax.numpy as jnp
>>> params = {"backbone": {"conv": {"kernel": jnp.zeros((3, 3))}}, "head": {"bias": jnp.zeros(2)}}
>>> mask_params(params, "backbone/*")
{'backbone': {'conv': {'kernel': True}}, 'head': {'bias': False}}
>>> mask_params(params, "encoder/*")
Traceback (most recent call last):
ValueError: pattern 'encoder/*' matches no parameter; paths look like 'backbone/conv/kernel', 'head/bias'
"""

import importlib
import warnings

from seqjax.transfer.partition import label_params, mask_params, named_leaves, path_of
from seqjax.transfer.summary import (
    ModuleCount,
    ParamSummary,
    count_params,
    optimizer_state_size,
    summarize,
)
from seqjax.transfer.workflow import (
    TransferConfig,
    TransferResult,
    imagenet_backbone,
    pretrain_backbone,
    run_transfer,
    train_classifier,
)

__all__ = [
    "ModuleCount",
    "ParamSummary",
    "TransferConfig",
    "TransferResult",
    "count_params",
    "imagenet_backbone",
    "label_params",
    "mask_params",
    "named_leaves",
    "optimizer_state_size",
    "path_of",
    "pretrain_backbone",
    "run_transfer",
    "summarize",
    "train_classifier",
]

# Names that moved (a DeprecationWarning for one release, then gone): name -> (module, name).
_MOVED = {
    "Splits": ("seqjax.data.digits", "Splits"),
    "digits_transfer_data": ("seqjax.data.digits", "digits_transfer_data"),
    "load_digit_images": ("seqjax.data.digits", "load_digit_images"),
    "unfreeze_top": ("seqjax.models.mobilenet_v2", "unfreeze_top"),
}

# Names that are gone: the second trainer and the hand-made freeze. name -> replacement.
_TRAINER = (
    "seqjax.train.fit(model, batches, ..., loss='cross_entropy', metrics=('accuracy',), "
    "stateful=False, variables=..., frozen=mask) (or seqjax.transfer.train_classifier)"
)
_REMOVED = {
    "freeze": "optax.transforms.selective_transform(tx, freeze_mask=mask), or "
    "seqjax.train.fit(..., frozen=mask), which also computes no gradient for frozen leaves",
    "fit": _TRAINER,
    "train_epoch": _TRAINER,
    "evaluate": "seqjax.train.fit(..., test_data=...) or seqjax.train.eval_step",
    "TrainState": "seqjax.train.TrainState",
    "init_state": "seqjax.train.create_train_state(model, tx, example, variables=...)",
    "make_train_step": "seqjax.train.train_step (the model's backbone_batch_norm sets the mode)",
    "make_eval_step": "seqjax.train.eval_step",
    "batches": "seqjax.data.padded_batches",
    "cross_entropy": "seqjax.train.softmax_cross_entropy (loss='cross_entropy')",
}


class RemovedNameError(ImportError):
    """A public name of ``seqjax.transfer`` that was removed; the message names its replacement."""


def __getattr__(name: str):
    if name in _MOVED:
        module, new = _MOVED[name]
        warnings.warn(
            f"seqjax.transfer.{name} moved to {module}.{new}; the old name goes in the next "
            "release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    if name in _REMOVED:
        raise RemovedNameError(f"seqjax.transfer.{name} was removed: use {_REMOVED[name]}.")
    raise AttributeError(f"module 'seqjax.transfer' has no attribute {name!r}")

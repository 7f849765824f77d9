"""The Keras transfer-learning guide's recipe, end to end, for a MobileNetV2 backbone.

1. Backbone: ImageNet weights if given, else pretrain a MobileNetV2 (no top) with its own head
   on a source task (the whole network trains, BatchNorm in training mode).
2. Transfer: freeze the backbone, put a new head (global average pooling, dropout, dense) on
   it, train on the target task with a validation epoch after each training epoch. The backbone
   runs in inference mode; its parameters and ``batch_stats`` stay bit-identical.
3. Fine-tune: unfreeze the top blocks, fresh optimizer at a very small learning rate (1e-5),
   BatchNorm still in inference mode, validation after each epoch.
4. Evaluate once on the target test split.

``run_transfer`` is the whole recipe for a :class:`TransferConfig`; an experiment is a config plus
data (e.g. :func:`seqjax.transfer.digits_transfer_data`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqjax.models.classifier_head import BackboneClassifier, ClassifierHead
from seqjax.models.keras_init import keras_style_init
from seqjax.models.mobilenet_v2 import MobileNetV2
from seqjax.transfer.digits import Splits
from seqjax.transfer.finetune import (
    evaluate,
    fit,
    init_state,
    make_eval_step,
    make_train_step,
)
from seqjax.transfer.freeze import ParamSummary, freeze, summarize, unfreeze_top
from seqjax.transfer.partition import mask_params

__all__ = [
    "TransferConfig",
    "TransferResult",
    "imagenet_backbone",
    "pretrain_backbone",
    "run_transfer",
]

Variables = dict[str, Any]
History = list[dict[str, float]]


@dataclass(frozen=True)
class TransferConfig:
    """Settings of :func:`run_transfer` (defaults: a small, CPU-friendly digits run)."""

    alpha: float = 0.35  # MobileNetV2 width
    dropout: float = 0.2  # head dropout (the guide's value)
    batch_size: int = 32
    seed: int = 0
    # 1. pretraining on the source task (skipped when backbone variables are given)
    pretrain_epochs: int = 8
    pretrain_lr: float = 1e-3
    pretrain_bn_momentum: float = 0.9  # Keras' 0.999 needs thousands of steps to settle
    # 2. frozen backbone, new head
    head_epochs: int = 10
    head_lr: float = 1e-3
    # 3. fine-tuning the top blocks of the backbone
    finetune_epochs: int = 3
    finetune_lr: float = 1e-5
    finetune_blocks: int = 4  # of the 19 units in seqjax.models.mobilenet_v2.BLOCKS
    weight_decay: float = 0.0  # AdamW decay (never applied to frozen parameters)


@dataclass
class TransferResult:
    """What :func:`run_transfer` measured and trained."""

    pretrain_history: History
    head_history: History
    finetune_history: History
    test: dict[str, float]
    pretrained: Variables  # the backbone the transfer started from
    variables: Variables  # the final {"params", "batch_stats"} of the BackboneClassifier
    head_summary: ParamSummary
    finetune_summary: ParamSummary
    log: list[str] = field(default_factory=list)


def _tx(lr: float, weight_decay: float) -> optax.GradientTransformation:
    return optax.adamw(lr, weight_decay=weight_decay)


def _log_epoch(log: Callable[[str], None], phase: str) -> Callable[[dict[str, float]], None]:
    def emit(row: dict[str, float]) -> None:
        parts = [f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"]
        log(f"[{phase}] epoch {row['epoch']}: " + " ".join(parts))

    return emit


def imagenet_backbone(alpha: float, *, path: str | None = None) -> Variables | None:
    """Keras' ImageNet MobileNetV2 weights (no top) as backbone variables, or ``None``.

    Reads ``path`` if given, else the first of Keras' cached files for ``alpha`` (any training
    resolution, 224 first: the weights fit any input size). Never downloads.
    """
    from seqjax.models.mobilenet_v2_weights import (
        IMAGENET_ALPHAS,
        IMAGENET_ROWS,
        load_imagenet_weights,
    )

    if path is None and alpha not in IMAGENET_ALPHAS:
        return None
    for rows in sorted(IMAGENET_ROWS, reverse=True) if path is None else [224]:
        try:
            return load_imagenet_weights(alpha, rows, path=path)
        except FileNotFoundError:
            continue
    return None


def pretrain_backbone(
    config: TransferConfig, source: Splits, *, log: Callable[[str], None] = print
) -> tuple[Variables, History]:
    """Train a MobileNetV2 (no top) plus a head on ``source`` from scratch, with a validation
    epoch after each epoch; return the backbone's ``{"params", "batch_stats"}`` and the history."""
    model = BackboneClassifier(
        MobileNetV2(alpha=config.alpha, include_top=False, bn_momentum=config.pretrain_bn_momentum),
        ClassifierHead(source.num_classes, config.dropout),
    )
    fit_rng = jax.random.key(config.seed)
    variables = keras_style_init(model, jnp.asarray(source.train[0][:1]), seed=config.seed)
    tx = _tx(config.pretrain_lr, config.weight_decay)
    state, history = fit(
        init_state(variables, tx),
        make_train_step(model, tx, backbone_train=True),
        make_eval_step(model),
        source.train,
        source.val,
        epochs=config.pretrain_epochs,
        batch_size=config.batch_size,
        rng=fit_rng,
        log=_log_epoch(log, "pretrain"),
    )
    backbone = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
    return backbone, history


def run_transfer(
    config: TransferConfig,
    target: Splits,
    *,
    source: Splits | None = None,
    backbone: Variables | None = None,
    log: Callable[[str], None] = print,
) -> TransferResult:
    """The guide's recipe: backbone -> frozen + new head -> fine-tune top blocks -> test once.

    Args:
        config: the settings.
        target: the new task (train/val/test).
        source: the source task to pretrain on when ``backbone`` is ``None``.
        backbone: MobileNetV2 (no top) variables, e.g. from :func:`imagenet_backbone`.
        log: called with one line per epoch and phase.

    Returns:
        A :class:`TransferResult` with every epoch's metrics and the test metrics.
    """
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    pretrain_history: History = []
    if backbone is None:
        if source is None:
            raise ValueError("give either pretrained backbone variables or a source task")
        backbone, pretrain_history = pretrain_backbone(config, source, log=say)

    backbone_module = MobileNetV2(alpha=config.alpha, include_top=False)
    head = ClassifierHead(target.num_classes, config.dropout)
    model = BackboneClassifier(backbone_module, head)
    head_rng, finetune_rng = jax.random.split(jax.random.key(config.seed + 1))
    features = jax.eval_shape(backbone_module.apply, backbone, jnp.asarray(target.train[0][:1]))
    head_params = keras_style_init(head, features, seed=config.seed + 1)
    params = {"backbone": backbone["params"], "head": head_params["params"]}
    batch_stats = {"backbone": backbone["batch_stats"]}
    eval_step = make_eval_step(model)

    # 2. Frozen backbone (inference mode), new head.
    frozen = mask_params(params, "backbone/*")
    head_summary = summarize(params, frozen, batch_stats=batch_stats)
    say(f"[head] trainable={head_summary.trainable:,} frozen={head_summary.frozen:,}")
    tx = freeze(_tx(config.head_lr, config.weight_decay), frozen)
    state = init_state({"params": params, "batch_stats": batch_stats}, tx)
    state, head_history = fit(
        state,
        make_train_step(model, tx),
        eval_step,
        target.train,
        target.val,
        epochs=config.head_epochs,
        batch_size=config.batch_size,
        rng=head_rng,
        log=_log_epoch(say, "head"),
    )

    # 3. Fine-tune the top blocks at a small learning rate, BatchNorm still in inference mode.
    finetune_history: History = []
    unfrozen = unfreeze_top(frozen, config.finetune_blocks)
    finetune_summary = summarize(state.params, unfrozen, batch_stats=state.batch_stats)
    if config.finetune_epochs > 0:
        say(
            f"[finetune] trainable={finetune_summary.trainable:,} "
            f"frozen={finetune_summary.frozen:,}"
        )
        tx = freeze(_tx(config.finetune_lr, config.weight_decay), unfrozen)
        state = state.replace(opt_state=jax.jit(tx.init)(state.params))  # a fresh optimizer
        state, finetune_history = fit(
            state,
            make_train_step(model, tx),
            eval_step,
            target.train,
            target.val,
            epochs=config.finetune_epochs,
            batch_size=config.batch_size,
            rng=finetune_rng,
            log=_log_epoch(say, "finetune"),
        )

    # 4. Test once.
    test = evaluate(state, eval_step, target.test, batch_size=config.batch_size)
    say(f"[test] loss={test['loss']:.4f} accuracy={test['accuracy']:.4f}")
    return TransferResult(
        pretrain_history=pretrain_history,
        head_history=head_history,
        finetune_history=finetune_history,
        test=test,
        pretrained=backbone,
        variables={"params": state.params, "batch_stats": state.batch_stats},
        head_summary=head_summary,
        finetune_summary=finetune_summary,
        log=lines,
    )

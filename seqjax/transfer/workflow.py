"""The Keras transfer-learning guide's recipe, end to end, for a MobileNetV2 backbone, trained by
:func:`seqjax.train.fit` (validation, checkpoints and resume, NaN guard, metrics, TensorBoard).

1. Backbone: ImageNet weights if given, else pretrain a MobileNetV2 (no top) with its own head
   on a source task (the whole network trains, BatchNorm in training mode).
2. Transfer: freeze the backbone, put a new head (global average pooling, dropout, dense) on
   it, train on the target task with a validation epoch after each training epoch. The backbone
   runs in inference mode; its parameters and ``batch_stats`` stay bit-identical.
3. Fine-tune: unfreeze the top blocks, fresh optimizer at a very small learning rate (1e-5),
   BatchNorm still in inference mode, validation after each epoch.
4. Evaluate once on the target test split.

Each phase is one ``fit`` with its own workdir (``<workdir>/pretrain``, ``head``, ``finetune``),
so a second run with the same workdir resumes (or skips) finished phases.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax

from seqjax.data.digits import Split, Splits
from seqjax.data.examples import padded_batches
from seqjax.models.classifier_head import BackboneClassifier, ClassifierHead
from seqjax.models.keras_init import keras_style_init
from seqjax.models.mobilenet_v2 import MobileNetV2, unfreeze_top
from seqjax.train import FitResult, fit
from seqjax.transfer.partition import mask_params
from seqjax.transfer.summary import ParamSummary, summarize

__all__ = [
    "TransferConfig",
    "TransferResult",
    "imagenet_backbone",
    "pretrain_backbone",
    "run_transfer",
    "train_classifier",
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


def _rows(result: FitResult) -> History:
    """``fit``'s history as Keras-like rows: epoch (from 1), loss, accuracy, val_loss, ..."""
    rows = []
    for record in result.history:
        row = {"epoch": record["epoch"] + 1}
        row |= {k: v for k, v in record["train"].items() if k in ("loss", "accuracy")}
        row |= {f"val_{k}": v for k, v in (record["val"] or {}).items() if k != "count"}
        rows.append(row)
    return rows


def _log_rows(log: Callable[[str], None], phase: str, rows: History) -> None:
    for row in rows:
        parts = [f"{k}={v:.4f}" for k, v in row.items() if k != "epoch" and v is not None]
        log(f"[{phase}] epoch {row['epoch']}: " + " ".join(parts))


def train_classifier(
    model: BackboneClassifier,
    variables: Variables,
    train: Split,
    val: Split | None,
    *,
    learning_rate: float,
    epochs: int,
    workdir: str | Path,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    frozen: Any = None,
    test: Split | None = None,
    seed: int = 0,
) -> FitResult:
    """One phase: ``seqjax.train.fit`` on ``(images, labels)`` splits, cross-entropy, accuracy.

    Training batches are reshuffled every epoch; every split is cut into batches of
    ``batch_size`` whose last one is padded with masked rows, so every image counts once. The
    optimizer is AdamW with a fresh state; ``frozen`` parameters do not train (see ``fit``).
    """

    def batches(split: Split) -> dict:
        return padded_batches(split[0], split[1], min(batch_size, len(split[1])))

    def optional(split: Split | None) -> dict | None:
        return None if split is None else batches(split)

    return fit(
        model,
        batches(train),
        val_data=optional(val),
        test_data=optional(test),
        optimizer=optax.adamw(learning_rate, weight_decay=weight_decay),
        workdir=workdir,
        num_epochs=epochs,
        loss="cross_entropy",
        metrics=("accuracy",),
        stateful=False,
        shuffle=True,
        seed=seed,
        variables=variables,
        frozen=frozen,
        progress=False,
        tensorboard=False,
    )


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
    config: TransferConfig,
    source: Splits,
    *,
    log: Callable[[str], None] = print,
    workdir: str | Path | None = None,
) -> tuple[Variables, History]:
    """Train a MobileNetV2 (no top) plus a head on ``source`` from scratch (BatchNorm in training
    mode), with a validation epoch after each epoch; return the backbone's ``{"params",
    "batch_stats"}`` and the history. ``workdir`` (default: a temporary folder) holds its
    checkpoints; a second call with the same one resumes."""
    model = BackboneClassifier(
        MobileNetV2(alpha=config.alpha, include_top=False, bn_momentum=config.pretrain_bn_momentum),
        ClassifierHead(source.num_classes, config.dropout),
        backbone_batch_norm="train",
    )
    variables = keras_style_init(model, jnp.asarray(source.train[0][:1]), seed=config.seed)
    with tempfile.TemporaryDirectory() as scratch:
        result = train_classifier(
            model,
            variables,
            source.train,
            source.val,
            learning_rate=config.pretrain_lr,
            epochs=config.pretrain_epochs,
            workdir=workdir or scratch,
            batch_size=config.batch_size,
            weight_decay=config.weight_decay,
            seed=config.seed,
        )
    history = _rows(result)
    _log_rows(log, "pretrain", history)
    state = result.state
    backbone = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
    return backbone, history


def run_transfer(
    config: TransferConfig,
    target: Splits,
    *,
    source: Splits | None = None,
    backbone: Variables | None = None,
    log: Callable[[str], None] = print,
    workdir: str | Path | None = None,
) -> TransferResult:
    """The guide's recipe: backbone -> frozen + new head -> fine-tune top blocks -> test once.

    Args:
        config: the settings.
        target: the new task (train/val/test).
        source: the source task to pretrain on when ``backbone`` is ``None``.
        backbone: MobileNetV2 (no top) variables, e.g. from :func:`imagenet_backbone`.
        log: called with one line per epoch and phase.
        workdir: the phases' checkpoints and metrics (``pretrain/``, ``head/``, ``finetune/``);
            default: a temporary folder.

    Returns:
        A :class:`TransferResult` with every epoch's metrics and the test metrics.
    """
    with tempfile.TemporaryDirectory() as scratch:
        return _run_transfer(config, target, source, backbone, log, Path(workdir or scratch))


def _run_transfer(config, target, source, backbone, log, workdir: Path) -> TransferResult:
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        log(line)

    pretrain_history: History = []
    if backbone is None:
        if source is None:
            raise ValueError("give either pretrained backbone variables or a source task")
        backbone, pretrain_history = pretrain_backbone(
            config, source, log=say, workdir=workdir / "pretrain"
        )

    backbone_module = MobileNetV2(alpha=config.alpha, include_top=False)
    head = ClassifierHead(target.num_classes, config.dropout)
    model = BackboneClassifier(backbone_module, head, backbone_batch_norm="inference")
    features = jax.eval_shape(backbone_module.apply, backbone, jnp.asarray(target.train[0][:1]))
    head_params = keras_style_init(head, features, seed=config.seed + 1)
    variables = {
        "params": {"backbone": backbone["params"], "head": head_params["params"]},
        "batch_stats": {"backbone": backbone["batch_stats"]},
    }
    phase = dict(batch_size=config.batch_size, weight_decay=config.weight_decay)
    finetuning = config.finetune_epochs > 0

    # 2. Frozen backbone (inference mode), new head.
    frozen = mask_params(variables["params"], "backbone/*")
    head_summary = summarize(variables["params"], frozen, batch_stats=variables["batch_stats"])
    say(f"[head] trainable={head_summary.trainable:,} frozen={head_summary.frozen:,}")
    result = train_classifier(
        model,
        variables,
        target.train,
        target.val,
        learning_rate=config.head_lr,
        epochs=config.head_epochs,
        workdir=workdir / "head",
        frozen=frozen,
        test=None if finetuning else target.test,
        seed=config.seed + 1,
        **phase,
    )
    head_history = _rows(result)
    _log_rows(say, "head", head_history)

    # 3. Fine-tune the top blocks at a small learning rate, BatchNorm still in inference mode.
    finetune_history: History = []
    unfrozen = unfreeze_top(frozen, config.finetune_blocks)
    state = result.state
    finetune_summary = summarize(state.params, unfrozen, batch_stats=state.batch_stats)
    if finetuning:
        say(
            f"[finetune] trainable={finetune_summary.trainable:,} "
            f"frozen={finetune_summary.frozen:,}"
        )
        result = train_classifier(
            model,
            {"params": state.params, "batch_stats": state.batch_stats},
            target.train,
            target.val,
            learning_rate=config.finetune_lr,
            epochs=config.finetune_epochs,
            workdir=workdir / "finetune",
            frozen=unfrozen,
            test=target.test,
            seed=config.seed + 2,
            **phase,
        )
        finetune_history = _rows(result)
        _log_rows(say, "finetune", finetune_history)

    # 4. Test once (fit's test pass, after the last phase).
    assert result.test is not None  # the last phase was given test=target.test
    test = {k: float(result.test[k]) for k in ("loss", "accuracy")}
    say(f"[test] loss={test['loss']:.4f} accuracy={test['accuracy']:.4f}")
    return TransferResult(
        pretrain_history=pretrain_history,
        head_history=head_history,
        finetune_history=finetune_history,
        test=test,
        pretrained=backbone,
        variables={"params": result.state.params, "batch_stats": result.state.batch_stats},
        head_summary=head_summary,
        finetune_summary=finetune_summary,
        log=lines,
    )

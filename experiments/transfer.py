"""Transfer learning: a frozen pretrained backbone, a new head, then fine-tuning at 1e-5.

Claim (3) of the lecture, with the Keras guide's recipe as ``seqjax.transfer.run_transfer`` runs
it: a MobileNetV2 backbone pretrained on a source task (offline: scikit-learn's digits 0-4, or
Keras' ImageNet weights if ``backbone.imagenet_weights`` names a local file), frozen, with a new
head trained on the target task (digits 5-9) and a validation epoch after each epoch; then the top
blocks unfrozen and fine-tuned at a tiny learning rate with BatchNorm in inference mode; the
target test split is scored once. For comparison, the same network trained from scratch on the
target task alone (``scratch_epochs``; 0 turns it off).

``transfer.py:study`` runs the label-budget study instead (:mod:`experiments.transfer_study`):
a stronger source model (augmented digits 0-4), then from scratch, linear probe, frozen backbone
+ new head and fine-tuned at 5, 20, 50 and all labelled images per class, several seeds.

This module is a thin config over ``seqjax.transfer``; every phase is one ``seqjax.train.fit``
with its own workdir (``pretrain/``, ``head/``, ``finetune/``, ``scratch/``: checkpoints,
``metrics.jsonl``), so a second run resumes or skips the finished phases.
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections
from tqdm.auto import tqdm

from experiments import plots, transfer_study
from experiments.workdir import Workdir
from seqjax import transfer
from seqjax.data.digits import digits_transfer_data


def transfer_config(config: ml_collections.ConfigDict, **overrides: Any) -> transfer.TransferConfig:
    t = config.transfer
    values = dict(
        alpha=t.alpha,
        dropout=t.dropout,
        batch_size=t.batch_size,
        seed=config.seed,
        pretrain_epochs=t.pretrain_epochs,
        pretrain_lr=t.pretrain_lr,
        head_epochs=t.head_epochs,
        head_lr=t.head_lr,
        finetune_epochs=t.finetune_epochs,
        finetune_lr=t.finetune_lr,
        finetune_blocks=t.finetune_blocks,
    )
    values.update(overrides)
    return transfer.TransferConfig(**values)


def _imagenet_backbone(config, tc) -> Any:
    """Keras' ImageNet weights from a local file, or None (then pretrain on the source task)."""
    if not config.backbone.imagenet_weights:
        return None
    weights = transfer.imagenet_backbone(tc.alpha, path=config.backbone.imagenet_weights)
    if weights is None:
        raise FileNotFoundError(config.backbone.imagenet_weights)
    return weights


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Pretrain (or restore) the backbone, transfer, fine-tune, test once; returns the results.
    With ``config.study.enabled`` (``transfer.py:study``): the label-budget study instead."""
    if config.study.enabled:
        return transfer_study.run(config, workdir, log=tqdm.write)
    wd = Workdir(workdir)
    wd.write_config(config)
    tick = time.perf_counter()
    source, target = digits_transfer_data(
        config.data.image_size, limit=config.data.limit or None, seed=config.seed
    )
    tc = transfer_config(config)
    total = tc.pretrain_epochs + tc.head_epochs + tc.finetune_epochs + config.scratch_epochs
    bar = tqdm(total=total, desc="transfer", unit="epoch")

    def say(line: str) -> None:
        if "] epoch " in line:
            bar.update(1)
            bar.set_postfix_str(line.split("]")[0].strip("["))
        tqdm.write(line)

    backbone = _imagenet_backbone(config, tc)
    origin = "source task" if backbone is None else "imagenet"
    if backbone is not None:
        bar.update(tc.pretrain_epochs)
    result = transfer.run_transfer(
        tc, target, source=source, backbone=backbone, log=say, workdir=wd.path
    )
    pretrain_history = result.pretrain_history

    scratch = None
    if config.scratch_epochs:
        # The same network, no pretraining: the "source task" is the target task itself.
        sc = transfer_config(config, pretrain_epochs=config.scratch_epochs)
        _, scratch_history = transfer.pretrain_backbone(
            sc, target, log=say, workdir=wd.part("scratch")
        )
        scratch = {
            "val_accuracy": scratch_history[-1]["val_accuracy"],
            "epochs": len(scratch_history),
        }
    bar.close()

    curves = {
        "validation accuracy (target task)": {
            "frozen backbone + new head": [r["val_accuracy"] for r in result.head_history],
            "fine-tuning (continues)": [r["val_accuracy"] for r in result.finetune_history],
        },
        "validation loss (target task)": {
            "frozen backbone + new head": [r["val_loss"] for r in result.head_history],
            "fine-tuning (continues)": [r["val_loss"] for r in result.finetune_history],
        },
    }
    if scratch is not None:
        for panel, key in (
            ("validation accuracy (target task)", "val_accuracy"),
            ("validation loss (target task)", "val_loss"),
        ):
            curves[panel]["from scratch, target only"] = [r[key] for r in scratch_history]
    png = plots.histories(
        wd.path / "transfer.png", curves, title="digits 0-4 -> 5-9, MobileNetV2 backbone"
    )
    results = {
        "task": "digits 0-4 (source) -> 5-9 (target), scikit-learn's 8x8 digits upsampled",
        "backbone": origin,
        "target_sizes": {k: int(len(getattr(target, k)[1])) for k in ("train", "val", "test")},
        "head": {
            "trainable": result.head_summary.trainable,
            "frozen": result.head_summary.frozen,
            "val_accuracy": _last(result.head_history, "val_accuracy"),
        },
        "finetune": {
            "trainable": result.finetune_summary.trainable,
            "frozen": result.finetune_summary.frozen,
            "learning_rate": tc.finetune_lr,
            "val_accuracy": _last(result.finetune_history, "val_accuracy"),
        },
        "pretrain_val_accuracy": _last(pretrain_history, "val_accuracy"),
        "test": {k: float(v) for k, v in result.test.items()},
        "scratch": scratch,
        "seconds_this_session": round(time.perf_counter() - tick, 1),
        "plots": [str(png)],
    }
    wd.write_results(results)
    return results


def _last(history: list[dict[str, float]], key: str) -> float | None:
    return float(history[-1][key]) if history else None


def summary(results: dict[str, Any]) -> str:
    """A Markdown table of the phases (or of the study)."""
    if results.get("study"):
        return transfer_study.summary(results)
    head, ft = results["head"], results["finetune"]
    lines = [
        "| phase | trainable params | frozen params | val accuracy |",
        "|---|---|---|---|",
        f"| pretrain on the source task | all | 0 | {_fmt(results['pretrain_val_accuracy'])} |",
        f"| frozen backbone + new head | {head['trainable']:,} | {head['frozen']:,} | "
        f"{_fmt(head['val_accuracy'])} |",
        f"| fine-tune top blocks at lr {ft['learning_rate']:g} | {ft['trainable']:,} | "
        f"{ft['frozen']:,} | {_fmt(ft['val_accuracy'])} |",
    ]
    if results["scratch"]:
        s = results["scratch"]
        lines.append(
            f"| from scratch on the target ({s['epochs']} epochs) | all | 0 | "
            f"{_fmt(s['val_accuracy'])} |"
        )
    t = results["test"]
    lines.append(
        f"\nTest (once, {results['target_sizes']['test']} target images): "
        f"accuracy {t['accuracy']:.4f}, loss {t['loss']:.4f}."
    )
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

"""Does transfer help, and when? A label-budget study on digits 0-4 -> 5-9, every model one
``seqjax.train.fit``.

1. **Source model.** A MobileNetV2 (no top) with a head, trained from scratch on scikit-learn's
   real digits 0-4 with a new augmented batch every step (``seqjax.data.digits.augmented_batch``:
   random shifts, rotations, zooms, shears, noise), AdamW with a warm-up cosine schedule; its
   validation split and a held-out split (real digits never trained on) are scored at the end.
   Trained once, reused by every cell (``<workdir>/source``).
2. **Cells.** On the target task (digits 5-9) a fixed test split (``test_per_class`` images of
   each class, never trained on or used to choose anything) and a pool of the rest. For each
   label budget ``k`` (images per class; 0 = the whole pool) and seed, ``k`` labelled images per
   class are drawn from the pool and cut into training and validation per class
   (``val_per_class(k)``: a fifth, at least one). The same architecture is then trained by four
   methods, each with the same step budget ``steps[k]`` and a grid of ``len(lrs)`` constant
   Adam learning rates, the one with the best final validation accuracy (then loss) kept and
   scored once on the test split:

   - ``scratch``: the whole network from random initialisation (BatchNorm in training mode);
   - ``probe``: a linear layer on the frozen backbone's pooled features (no dropout);
   - ``head``: the frozen backbone and the experiment's new head (pooling, dropout 0.2, dense);
   - ``finetune``: continues the selected ``head`` model with the top ``finetune_blocks``
     blocks unfrozen, BatchNorm in inference mode, for ``finetune_steps`` of ``steps[k]``; the
     lecture's 1e-5 run is in its grid and scored on the test split as well, selected or not.

Resumable: every fit resumes from its workdir, and a finished cell
(``cells/k<k>/seed<s>/<method>.json``) is skipped; ``max_minutes`` stops before the next cell
once exceeded, so a study spans several sittings.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
import optax

from experiments.seeds import spread
from experiments.workdir import Workdir
from seqjax.data.digits import augmented_batch, load_digit_images, per_class_split
from seqjax.data.examples import padded_batches
from seqjax.models.classifier_head import BackboneClassifier, ClassifierHead
from seqjax.models.keras_init import keras_style_init
from seqjax.models.mobilenet_v2 import MobileNetV2, unfreeze_top
from seqjax.train import FreshBatches, fit
from seqjax.transfer import mask_params

matplotlib.use("Agg")

METHODS = ("scratch", "probe", "head", "finetune")
#: A control, on with ``study.controls``: the linear probe on a randomly initialised frozen
#: backbone (are the pretrained features better than random ones?).
CONTROLS = ("random_probe",)
LABELS = {
    "random_probe": "linear probe, random frozen backbone",
    "scratch": "from scratch",
    "probe": "linear probe (frozen)",
    "head": "frozen backbone + new head",
    "finetune": "fine-tuned (BN inference)",
}
EVAL_BATCH = 32
Split = tuple[np.ndarray, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Data


def study_data(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The source task's train/val/held-out splits and the target task's test split and pool,
    each ``(images, labels)``, plus ``"index"``: each split's indices into scikit-learn's digits.

    All from scikit-learn's real digits, cut per class with ``config.study.data_seed`` (fixed
    across the study's seeds): the source held-out split and the target test split are the same
    images in every cell. Labels are ``0..4`` for digits 0-4 (source) and 5-9 (target).
    """
    s = config.study
    images, labels = load_digit_images(config.data.image_size)
    source = np.flatnonzero(labels < 5)
    target = np.flatnonzero(labels >= 5)
    held, val, train = per_class_split(
        labels[source],
        [s.source_heldout_per_class, s.source_val_per_class, s.source_train_per_class or None],
        seed=[s.data_seed, 0],
    )
    test, pool = per_class_split(
        labels[target], [s.test_per_class, s.pool_per_class or None], seed=[s.data_seed, 1]
    )
    index = {
        "source": {"train": source[train], "val": source[val], "heldout": source[held]},
        "target": {"test": target[test], "pool": target[pool]},
    }
    out: dict[str, Any] = {"index": index}
    for task, parts in index.items():
        shift = 0 if task == "source" else 5
        out[task] = {
            name: (images[i], (labels[i] - shift).astype(np.int32)) for name, i in parts.items()
        }
    return out


def val_per_class(k: int, pool_labels: np.ndarray) -> int:
    """Validation images per class at a budget of ``k`` per class: a fifth, at least one
    (``k = 0``, the whole pool: a fifth of the smallest class)."""
    if k == 0:
        k = int(np.bincount(pool_labels).min())
    return max(1, round(k / 5))


def budget_indices(pool_labels: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` indices into the pool: ``k`` labelled images per class (0: all of
    them), of which ``val_per_class(k)`` per class validate; disjoint, a pure function of
    ``(seed, k)``."""
    v = val_per_class(k, pool_labels)
    val, train = per_class_split(pool_labels, [v, None if k == 0 else k - v], seed=[seed, k, 2])
    return train, val


def label_budget(pool: Split, k: int, seed: int) -> tuple[Split, Split, dict[str, int]]:
    """The training and validation splits of :func:`budget_indices`, and their sizes."""
    x, y = pool
    train, val = budget_indices(y, k, seed)
    per_class = k or round(len(y) / (int(y.max()) + 1))
    sizes = {"train": len(train), "val": len(val), "per_class": per_class}
    return (x[train], y[train]), (x[val], y[val]), sizes


def cycled_batch(split: Split, batch_size: int, seed: int, step: int) -> dict[str, np.ndarray]:
    """Batch ``step`` of an endless stream of the split's examples, reshuffled every pass (a new
    permutation per pass, a pure function of ``seed``): every example equally often."""
    x, y = split
    n = len(y)
    positions = np.arange(step * batch_size, (step + 1) * batch_size)
    passes = positions // n
    index = np.empty(batch_size, np.int64)
    for p in np.unique(passes):
        order = np.random.default_rng([seed, int(p)]).permutation(n)
        index[passes == p] = order[positions[passes == p] % n]
    return {"inputs": x[index], "targets": y[index]}


def budget_steps(config: ml_collections.ConfigDict, k: int) -> int:
    """The step budget of every method at ``k`` labels per class (``study.steps`` lists one per
    entry of ``study.budgets``)."""
    s = config.study
    return int(s.steps[list(s.budgets).index(k)])


def _eval_batches(split: Split) -> dict[str, np.ndarray]:
    return padded_batches(split[0], split[1], EVAL_BATCH)


# ---------------------------------------------------------------------------------------------
# Models and fits


@functools.lru_cache(maxsize=64)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    """One optimizer object per learning rate: fit's compiled steps are reused across cells."""
    return optax.adam(learning_rate)


def _backbone(config: ml_collections.ConfigDict) -> MobileNetV2:
    return _module(config.transfer.alpha, config.study.bn_momentum, None, None)


def _classifier(config: ml_collections.ConfigDict, method: str) -> BackboneClassifier:
    dropout = 0.0 if method in ("probe", "random_probe") else config.transfer.dropout
    mode = "train" if method in ("scratch", "source") else "inference"
    return _module(config.transfer.alpha, config.study.bn_momentum, dropout, mode)


@functools.lru_cache(maxsize=16)
def _module(alpha: float, bn_momentum: float, dropout: float | None, mode: str | None):
    """One module object per setting: ``model.apply`` is a static argument of fit's jitted
    steps, and a new (equal) module would compile them again."""
    backbone = MobileNetV2(alpha=alpha, include_top=False, bn_momentum=bn_momentum)
    if mode is None:
        return backbone
    return BackboneClassifier(backbone, ClassifierHead(5, dropout), backbone_batch_norm=mode)


def _fit(
    model,
    variables,
    train: Callable,
    *,
    steps: int,
    evals: int,
    optimizer,
    workdir,
    val: Split,
    test: Split | None,
    frozen: Any,
    seed: int,
):
    """One ``seqjax.train.fit``: a step budget, ``evals`` validation passes."""
    return fit(
        model,
        FreshBatches(train, steps // evals),
        optimizer=optimizer,
        workdir=workdir,
        num_steps=steps,
        val_data=_eval_batches(val),
        test_data=None if test is None else _eval_batches(test),
        loss="cross_entropy",
        metrics=("accuracy",),
        monitor="accuracy",
        monitor_mode="max",
        stateful=False,
        seed=seed,
        variables=variables,
        frozen=frozen,
        progress=False,
        tensorboard=False,
        max_to_keep=1,
    )


def _variables(state) -> dict[str, Any]:
    return {"params": state.params, "batch_stats": state.batch_stats}


def train_source(config, data, wd: Workdir, log: Callable[[str], None]) -> tuple[dict, dict]:
    """The source model (resumed or skipped when its workdir has finished); returns the
    backbone's ``{"params", "batch_stats"}`` and its accuracies."""
    s = config.study
    src = data["source"]
    model = _classifier(config, "source")
    variables = keras_style_init(model, jnp.asarray(src["train"][0][:1]), seed=s.source_seed)
    schedule = optax.warmup_cosine_decay_schedule(0.0, s.source_lr, s.source_warmup, s.source_steps)
    augment = dict(s.augment)

    def batch(step: int) -> dict[str, np.ndarray]:
        x, y = src["train"]
        return augmented_batch(x, y, config.transfer.batch_size, [s.source_seed, step], **augment)

    tick = time.perf_counter()
    result = _fit(
        model,
        variables,
        batch,
        steps=s.source_steps,
        evals=s.source_steps // s.source_eval_every,
        optimizer=optax.adamw(schedule, weight_decay=s.source_weight_decay),
        workdir=wd.part("source"),
        val=src["val"],
        test=src["heldout"],
        frozen=None,
        seed=s.source_seed,
    )
    info = {
        "steps": s.source_steps,
        "train_images": len(src["train"][1]),
        "val_images": len(src["val"][1]),
        "heldout_images": len(src["heldout"][1]),
        "val_accuracy": result.history[-1]["val"]["accuracy"],
        "heldout_accuracy": float(result.test["accuracy"]),
        "heldout_loss": float(result.test["loss"]),
        "val_curve": [(h["step"], h["val"]["accuracy"]) for h in result.history],
        "seconds_this_session": round(time.perf_counter() - tick, 1),
    }
    log(
        f"[source] val {info['val_accuracy']:.4f} held-out {info['heldout_accuracy']:.4f} "
        f"({info['heldout_images']} real digits 0-4 never trained on)"
    )
    state = result.state
    backbone = {"params": state.params["backbone"], "batch_stats": state.batch_stats["backbone"]}
    return backbone, info


def feature_diagnostics(config, backbone: dict, images: np.ndarray) -> dict[str, float]:
    """How much of the backbone's pooled feature space ``images`` use: channels active
    (non-zero) on any image, the total variance (trace of the features' covariance), and the
    participation ratio ``(sum l)^2 / sum l^2`` of its eigenvalues ``l`` (an effective number
    of dimensions, independent of scale)."""
    apply = _jitted_apply(_backbone(config))
    feats = np.concatenate(
        [
            np.asarray(jnp.mean(apply(backbone, jnp.asarray(images[i : i + EVAL_BATCH])), (1, 2)))
            for i in range(0, len(images), EVAL_BATCH)
        ]
    ).astype(np.float64)
    return {
        "channels": int(feats.shape[1]),
        "active_channels": int((feats.max(0) > 0).sum()),
        **spectrum(feats),
    }


@functools.lru_cache(maxsize=4)
def _jitted_apply(module: MobileNetV2) -> Callable:
    return jax.jit(module.apply)


def spectrum(features: np.ndarray) -> dict[str, float]:
    """``total_variance`` (trace of the covariance of ``features`` ``(N, F)``) and
    ``participation_ratio`` ``(sum l)^2 / sum l^2`` of the covariance's eigenvalues ``l``
    (``k`` for ``k`` equal, independent directions; 0 for constant features).

    >>> x = np.random.default_rng(0).normal(size=(20000, 6)) * [1, 1, 1, 0, 0, 0]
    >>> round(spectrum(x)["participation_ratio"], 1)
    3.0
    """
    eig = np.clip(
        np.linalg.eigvalsh(np.cov(np.asarray(features, np.float64), rowvar=False)), 0, None
    )
    squares = float((eig**2).sum())
    return {
        "total_variance": float(eig.sum()),
        "participation_ratio": float(eig.sum() ** 2 / squares) if squares > 0 else 0.0,
    }


def _start(config, method: str, backbone: dict, example: np.ndarray, seed: int):
    """Model, initial variables and frozen mask of a method (``finetune`` starts elsewhere)."""
    model = _classifier(config, method)
    if method == "scratch":
        return model, keras_style_init(model, jnp.asarray(example), seed=seed), None
    if method == "random_probe":  # Keras' initial values: BatchNorm mean 0, variance 1
        backbone = keras_style_init(model.backbone, jnp.asarray(example), seed=seed + 1000)
    features = jax.eval_shape(model.backbone.apply, backbone, jnp.asarray(example))
    head = keras_style_init(model.head, features, seed=seed)
    variables = {
        "params": {"backbone": backbone["params"], "head": head["params"]},
        "batch_stats": {"backbone": backbone["batch_stats"]},
    }
    return model, variables, mask_params(variables["params"], "backbone/*")


def _same(a: Any, b: Any) -> bool:
    """Whether two pytrees have the same structure and bit-identical leaves."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return _same_where(a, b, [True] * len(leaves_a)) if len(leaves_a) == len(leaves_b) else False


def _same_where(a: Any, b: Any, flags: list[bool]) -> bool:
    """Whether the leaves of ``a`` and ``b`` flagged True are bit-identical."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y, flag in zip(leaves_a, leaves_b, flags, strict=True)
        if flag
    )


def run_cell(
    config,
    method: str,
    k: int,
    seed: int,
    splits: dict,
    backbone: dict,
    head_start: dict | None,
    directory: Path,
) -> tuple[dict, Any]:
    """One (budget, seed, method): the learning-rate grid, selection on validation, one test
    pass. Returns the cell's record and the selected final state."""
    s = config.study
    train, val, test = splits["train"], splits["val"], splits["test"]
    steps = budget_steps(config, k)
    if method == "finetune":
        steps = int(steps * s.finetune_steps)
        assert head_start is not None
        model = _classifier(config, "finetune")
        variables = head_start
        frozen = unfreeze_top(mask_params(variables["params"], "backbone/*"), s.finetune_blocks)
        if not any(jax.tree.leaves(frozen)):
            frozen = None  # every parameter trains
    else:
        model, variables, frozen = _start(config, method, backbone, train[0][:1], seed)
    batch_size = config.transfer.batch_size

    def batch(step: int) -> dict[str, np.ndarray]:
        return cycled_batch(train, batch_size, seed, step)

    def fit_at(lr: float, test_data):
        """The fit of one learning rate (its own workdir: a second call resumes, finished)."""
        return _fit(
            model,
            variables,
            batch,
            steps=steps,
            evals=s.evals,
            optimizer=_adam(lr),
            workdir=directory / f"lr{lr:g}",
            val=val,
            test=test_data,
            frozen=frozen,
            seed=seed,
        )

    runs: dict[float, Any] = {lr: fit_at(lr, None) for lr in s.lrs[method]}

    def score(lr: float) -> tuple[float, float]:
        last = runs[lr].history[-1]["val"]
        return (last["accuracy"], -last["loss"])

    chosen = max(runs, key=score)
    tested = [chosen] + [
        lr for lr in (s.report_lrs if method == "finetune" else ()) if lr != chosen and lr in runs
    ]
    record: dict[str, Any] = {
        "method": method,
        "k": k,
        "seed": seed,
        "steps": steps,
        "selected_lr": chosen,
        "runs": {},
    }
    for lr in runs:
        entry = {
            "val_accuracy": runs[lr].history[-1]["val"]["accuracy"],
            "val_loss": runs[lr].history[-1]["val"]["loss"],
        }
        if lr in tested:  # resume the finished fit: no step, one test pass
            again = fit_at(lr, test)
            entry["test_accuracy"] = float(again.test["accuracy"])
            entry["test_loss"] = float(again.test["loss"])
        if method != "scratch":  # frozen leaves and BatchNorm statistics: bit-identical
            state = runs[lr].state
            entry["batch_stats_unchanged"] = _same(variables["batch_stats"], state.batch_stats)
            if frozen is not None:
                entry["frozen_unchanged"] = _same_where(
                    variables["params"], state.params, jax.tree.leaves(frozen)
                )
        record["runs"][f"{lr:g}"] = entry
    best = record["runs"][f"{chosen:g}"]
    record |= {
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "test_loss": best["test_loss"],
    }
    return record, runs[chosen].state


def _restore_head(config, k, seed, splits, backbone, directory: Path, lr: float) -> dict:
    """The selected head model of a finished cell (its fit resumed: no step)."""
    s = config.study
    model, variables, frozen = _start(config, "head", backbone, splits["train"][0][:1], seed)
    result = _fit(
        model,
        variables,
        lambda step: cycled_batch(splits["train"], config.transfer.batch_size, seed, step),
        steps=budget_steps(config, k),
        evals=s.evals,
        optimizer=_adam(lr),
        workdir=directory / f"lr{lr:g}",
        val=splits["val"],
        test=None,
        frozen=frozen,
        seed=seed,
    )
    return _variables(result.state)


# ---------------------------------------------------------------------------------------------
# The study


def run(config: ml_collections.ConfigDict, workdir: str, log: Callable[[str], None] = print):
    """Source model, then every (seed, budget, method) cell not finished yet; results, table,
    plot. Returns the results (``complete`` is False when ``max_minutes`` stopped it)."""
    wd = Workdir(workdir)
    wd.write_config(config)
    s = config.study
    tick = time.perf_counter()
    data = study_data(config)
    backbone, source = train_source(config, data, wd, log)
    test = data["target"]["test"]
    cells_dir = wd.path / "cells"
    trained = 0
    complete = True
    seeds = seeds_per_budget(config)
    for seed in range(max(seeds.values())):
        for k in s.budgets:
            if seed >= seeds[k]:
                continue
            train, val, sizes = label_budget(data["target"]["pool"], k, seed)
            splits = {"train": train, "val": val, "test": test}
            directory = cells_dir / f"k{k}" / f"seed{seed}"
            head_state = None
            for method in methods(config):
                path = directory / f"{method}.json"
                if path.exists():
                    continue
                minutes = (time.perf_counter() - tick) / 60
                if s.max_minutes and minutes >= s.max_minutes:
                    log(f"[study] stopping after {minutes:.1f} min (max_minutes={s.max_minutes})")
                    complete = False
                    break
                start = None
                if method == "finetune":
                    start = head_state
                    if start is None:
                        head = json.loads((directory / "head.json").read_text())
                        start = _restore_head(
                            config,
                            k,
                            seed,
                            splits,
                            backbone,
                            directory / "head",
                            head["selected_lr"],
                        )
                cell_tick = time.perf_counter()
                record, state = run_cell(
                    config, method, k, seed, splits, backbone, start, directory / method
                )
                record["sizes"] = sizes
                record["seconds"] = round(time.perf_counter() - cell_tick, 1)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1))
                trained += 1
                if method == "head":
                    head_state = _variables(state)
                log(
                    f"[k={k or 'all'} seed={seed}] {method}: lr {record['selected_lr']:g} "
                    f"val {record['val_accuracy']:.3f} test {record['test_accuracy']:.4f} "
                    f"({record['seconds']:.0f} s)"
                )
            if not complete:
                break
        if not complete:
            break

    cells = [json.loads(p.read_text()) for p in sorted(cells_dir.glob("k*/seed*/*.json"))]
    example = data["source"]["train"][0][:1]
    random = keras_style_init(_backbone(config), jnp.asarray(example), seed=s.source_seed + 1000)
    features = {  # on training images only (source train, target pool): never the test split
        f"{name}, {task}": feature_diagnostics(config, weights, data[task][part][0])
        for name, weights in (("pretrained", backbone), ("random", random))
        for task, part in (("source", "train"), ("target", "pool"))
    }
    results = {
        "study": True,
        "complete": complete,
        "source": source,
        "target_test_images": len(test[1]),
        "pool_images": len(data["target"]["pool"][1]),
        "table": table(cells, s.budgets),
        "finetune_1e-5": finetune_gain(cells),
        "features": features,
        "cells": cells,
        "cells_trained_this_session": trained,
        "seconds_this_session": round(time.perf_counter() - tick, 1),
    }
    if cells:
        results["plots"] = [str(plot(wd.path / "transfer_study.png", results, s.budgets))]
    wd.write_results(results)
    return results


def seeds_per_budget(config: ml_collections.ConfigDict) -> dict[int, int]:
    """Seeds of each budget: ``study.seeds``, or ``study.seeds_by_budget`` (one per budget)."""
    s = config.study
    if not s.seeds_by_budget:
        return {k: int(s.seeds) for k in s.budgets}
    if len(s.seeds_by_budget) != len(s.budgets):
        raise ValueError(
            f"study.seeds_by_budget needs one count per budget {tuple(s.budgets)}; got "
            f"{tuple(s.seeds_by_budget)}"
        )
    return {k: int(n) for k, n in zip(s.budgets, s.seeds_by_budget, strict=True)}


def methods(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The methods of each cell, in training order: :data:`METHODS`, then the controls."""
    unknown = set(config.study.controls) - set(CONTROLS)
    if unknown:
        raise ValueError(f"unknown study.controls {sorted(unknown)}; known: {CONTROLS}")
    return METHODS + tuple(c for c in CONTROLS if c in config.study.controls)


def table(cells: list[dict], budgets) -> dict[str, dict[str, Any]]:
    """``{"k": {method: {mean, std, min, max, n, values, per_class}}}`` of test accuracy."""
    out: dict[str, dict[str, Any]] = {}
    for k in budgets:
        row = {}
        for method in METHODS + CONTROLS:
            mine = [c for c in cells if c["k"] == k and c["method"] == method]
            if mine:
                row[method] = spread([c["test_accuracy"] for c in mine])
                row[method]["per_class"] = mine[0]["sizes"]["per_class"]
        if row:
            out[str(k)] = row
    return out


def finetune_gain(cells: list[dict]) -> dict[str, Any]:
    """The lecture's step: fine-tuning at 1e-5 after the frozen head, test accuracy change per
    budget (the 1e-5 run whether or not validation selected it)."""
    out: dict[str, Any] = {}
    by_key = {(c["k"], c["seed"], c["method"]): c for c in cells}
    for (k, seed, method), cell in sorted(by_key.items()):
        if method != "finetune" or "1e-05" not in cell["runs"]:
            continue
        run = cell["runs"]["1e-05"]
        head = by_key.get((k, seed, "head"))
        if head is None or "test_accuracy" not in run:
            continue
        out.setdefault(str(k), []).append(run["test_accuracy"] - head["test_accuracy"])
    return {k: spread(v) for k, v in out.items()}


def plot(path: Path, results: dict, budgets) -> Path:
    """Test accuracy against labelled images per class (log x), mean and min-max band."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.4))
    for i, method in enumerate(METHODS + CONTROLS):
        points = [
            (row[method]["per_class"], row[method])
            for row in results["table"].values()
            if method in row
        ]
        if not points:
            continue
        points.sort(key=lambda p: p[0])
        x = np.array([p[0] for p in points], float)
        mean = np.array([p[1]["mean"] for p in points])
        style = "o--" if method in CONTROLS else "o-"
        ax.plot(x, mean, style, color=f"C{i}", label=LABELS[method])
        ax.fill_between(
            x,
            [p[1]["min"] for p in points],
            [p[1]["max"] for p in points],
            color=f"C{i}",
            alpha=0.15,
        )
    ax.axhline(0.2, color="gray", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ticks = {
        row_k: next(iter(row.values()))["per_class"] for row_k, row in results["table"].items()
    }
    ax.set_xticks(list(ticks.values()))
    ax.set_xticklabels([f"all ({v})" if k == "0" else str(v) for k, v in ticks.items()])
    ax.minorticks_off()
    ax.set_xlabel("labelled images per class (target digits 5-9; 'all' = the whole pool)")
    ax.set_ylabel(f"test accuracy ({results['target_test_images']} images)")
    ax.set_ylim(0, 1.01)
    src = results["source"]["heldout_accuracy"]
    ax.set_title(
        f"MobileNetV2-0.35 pretrained on digits 0-4 (held-out {src:.3f}); mean and "
        "min-max over seeds",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary(results: dict) -> str:
    """Markdown: the source model and the budget x method table of test accuracy."""
    src = results["source"]
    shown = [m for m in METHODS + CONTROLS if any(m in row for row in results["table"].values())]
    lines = [
        f"Source: held-out accuracy {src['heldout_accuracy']:.4f} on {src['heldout_images']} "
        f"real digits 0-4 never trained on (validation {src['val_accuracy']:.4f}).",
        "",
        "| labels per class | " + " | ".join(LABELS[m] for m in shown) + " |",
        "|---|" + "---|" * len(shown),
    ]
    for k, row in results["table"].items():
        cells = []
        for method in shown:
            e = row.get(method)
            cells.append("-" if e is None else f"{e['mean']:.3f} ± {e['std']:.3f} (n={e['n']})")
        name = "all (" + str(next(iter(row.values()))["per_class"]) + ")" if k == "0" else k
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    gain = results["finetune_1e-5"]
    if gain:
        lines.append(
            "\nFine-tuning at 1e-5 after the frozen head, test accuracy change: "
            + ", ".join(
                f"k={'all' if k == '0' else k}: {g['mean']:+.4f} ± {g['std']:.4f}"
                for k, g in gain.items()
            )
        )
    if "features" in results:
        lines.append(
            "\nPooled features on training images (active channels of the total, total "
            "variance, participation ratio):"
        )
        for name, f in results["features"].items():
            lines.append(
                f"- {name}: {f['active_channels']}/{f['channels']}, {f['total_variance']:.3g}, "
                f"{f['participation_ratio']:.1f}"
            )
    lines.append(
        f"\nTest split: {results['target_test_images']} images; complete: {results['complete']}."
    )
    return "\n".join(lines)

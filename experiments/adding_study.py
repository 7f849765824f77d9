"""The adding problem at T = 100, 500, 1000: a resumable study over models, seeds and a search.

Hochreiter & Schmidhuber (1997), Experiment 4 (Table 7): the LSTM solves the adding problem at
T = 100, 500 and 1000. This study trains every cell of a grid ``T x model x seed`` (plus a small
learning-rate / initialisation search for the GRU and the SimpleRNN at ``search.length``) through
``seqjax.train.fit`` with the layers' default engine, each cell in its own fit workdir
``<workdir>/T<T>/<model>[-lr<lr>]/seed<s>/`` (checkpoints, ``metrics.jsonl``, ``sessions.jsonl``
and, once finished, ``cell.json``). Cells run in a stated priority order:

1. seed 0 of every model of ``config.models`` at every T (in the order of ``config.lengths``);
2. the search at ``search.length``, seed 0 (``search.gru`` and ``search.srn`` initialisations x
   ``search.learning_rates``);
3. the best GRU and SimpleRNN setting of the search (chosen on the final *validation* figures, never
   the test set) at every T, seed 0, when it is not the default;
4. seeds ``1 .. seeds-1`` of all of the above, T by T.

A finished cell is skipped (its ``cell.json`` read back); an interrupted one resumes from its
checkpoint (fit resumes exactly: batches are a function of the seed and the step). Training runs
in chunks of ``train.chunk_steps`` steps; with ``max_minutes`` the study stops between chunks once
the time is spent, aggregates what is finished, and lists the rest as pending.

**Two figures per cell.** Every cell trains for the fixed budget of its T (the same for every
model). Every ``eval_every`` steps it scores ``data.stop_size`` (2,048) fresh validation sequences:
the paper's stopping rule ("the average training error is below 0.01 and the 2,000 most recent
sequences were processed correctly", |error| < 0.04) is implemented on them as "all 2,048 solved
and their MSE below 0.01" (the MSE condition is implied: |error| < 0.04 gives a squared error
below 0.0016). The rule's granularity is ``eval_every`` steps (6,400 sequences at batch 64). fit's
``keep_best`` with ``monitor="solved"`` keeps the parameters of the first evaluation that reaches
the maximum, i.e. those at which the rule first fired (checked against the history); they are
scored on the 2,560 test sequences ("at the rule"), and the parameters at the end of the budget
are scored too ("at the budget"): one training run gives both, nothing is trained twice.

Writes ``results.json``, ``results.md`` (the table beside the paper's) and the plots
``learning_curves_T<T>.png`` and ``gradient_by_lag_T<T>.png`` into the workdir.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import long_range, plots
from experiments.seeds import spread
from experiments.workdir import Workdir, latest_checkpoint_step
from seqjax.data import adding_problem
from seqjax.nn import GRU, SimpleRNN
from seqjax.train import FreshBatches, NonFiniteError, fit
from seqjax.train.steps import eval_step

# Hochreiter & Schmidhuber (1997), Table 7 (Experiment 4), the LSTM's row per T: wrong
# predictions among 2,560 test sequences and training sequences to the stopping rule.
PAPER = {
    100: {"wrong": 1, "sequences": 74_000},
    500: {"wrong": 0, "sequences": 209_000},
    1000: {"wrong": 1, "sequences": 853_000},
}

LABELS = {
    **long_range.MODEL_LABELS,
    "gru_chrono": "GRU (update-gate bias chrono, T_max={T})",
    "srn_identity": "SimpleRNN (identity recurrent init)",
}
FAMILIES = {"gru": "gru", "srn": "srn"}  # the search's families and their default model


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run: the adding problem at ``length`` with ``model`` at ``lr``, ``seed``."""

    length: int
    model: str
    lr: float
    seed: int

    def variant(self, default_lr: float) -> str:
        """The model's directory name: ``gru``, or ``gru_chrono-lr0.01`` off the default lr."""
        return self.model if self.lr == default_lr else f"{self.model}-lr{self.lr:g}"

    def path(self, root: Path, default_lr: float) -> Path:
        return root / f"T{self.length}" / self.variant(default_lr) / f"seed{self.seed}"


def _csv(text: str) -> list[str]:
    return [w.strip() for w in str(text).split(",") if w.strip()]


def budgets(config: ml_collections.ConfigDict) -> dict[int, int]:
    """``{T: steps}`` from ``config.budgets`` (``"T:steps,..."``); each a multiple of the chunk
    and of ``eval_every``."""
    out = {}
    for item in _csv(config.budgets):
        length, _, steps = item.partition(":")
        out[int(length)] = int(steps)
    for length, steps in out.items():
        if steps % config.train.eval_every or config.train.chunk_steps % config.train.eval_every:
            raise ValueError(
                f"budget {steps} at T={length} and chunk_steps {config.train.chunk_steps} must "
                f"be multiples of eval_every ({config.train.eval_every})"
            )
    missing = [t for t in lengths(config) if t not in out]
    if missing:
        raise ValueError(f"config.budgets has no budget for T={missing}: {config.budgets!r}")
    return out


def lengths(config: ml_collections.ConfigDict) -> list[int]:
    return [int(t) for t in _csv(config.lengths)]


def label(model: str, length: int, lr: float, default_lr: float) -> str:
    text = LABELS[model].format(fb=1.0, T=length)
    return text if lr == default_lr else f"{text}, lr {lr:g}"


def check_models(config: ml_collections.ConfigDict) -> None:
    names = _csv(config.models) + _csv(config.search.gru) + _csv(config.search.srn)
    for name in names:
        if name not in LABELS or name in ("srn_exploding", "lstm"):
            raise ValueError(f"unknown model {name!r}; choose from {sorted(LABELS)}")


# ---- models -----------------------------------------------------------------------------------
@functools.lru_cache
def _update_gate_bias(length: int):
    """A GRU ``bias_init`` putting chrono biases on the update gate ``z`` (block 2 of r, z, n).

    ``h = z * h + (1 - z) * n``: ``z`` is the GRU's forget gate, so chrono (Tallec & Ollivier
    2018) sets its bias to ``log(u)`` with ``u`` in ``[1, T_max - 1]``, here log-spaced
    deterministically (quantiles, so ``bias`` and ``recurrent_bias``, which both get this
    initialiser, get the same values: each holds half, their sum is the chrono bias).
    """

    def init(key, shape, dtype=jnp.float32):
        del key  # deterministic quantiles
        h = shape[0] // 3
        u = 1.0 + (length - 2.0) * (np.arange(h) + 0.5) / h
        z = jnp.asarray(np.log(u) / 2.0, dtype)
        return jnp.zeros(shape, dtype).at[h : 2 * h].set(z)

    return init


def _identity(key, shape, dtype=jnp.float32):
    """Identity recurrent weights (Le et al. 2015's IRNN initialisation; here with tanh)."""
    del key
    return jnp.eye(shape[0], shape[1], dtype=dtype)


def cell_config(config: ml_collections.ConfigDict, cell: Cell) -> ml_collections.ConfigDict:
    """The ``experiments.long_range``-shaped config of one cell (its batches and layers)."""
    c = ml_collections.ConfigDict()
    c.seed = cell.seed
    c.data = ml_collections.ConfigDict(
        {"length": cell.length, "batch_size": config.data.batch_size}
    )
    c.model = ml_collections.ConfigDict(
        {
            "hidden": config.model.hidden,
            "implementation": config.model.implementation,
            "forget_bias": 1.0,
        }
    )
    c.diagnostics = ml_collections.ConfigDict(config.diagnostics.to_dict())
    return c


def make_recurrent(cell: Cell, config: ml_collections.ConfigDict):
    h, impl = config.model.hidden, config.model.implementation
    if cell.model == "gru_chrono":
        return GRU(h, bias_init=_update_gate_bias(cell.length), implementation=impl)
    if cell.model == "srn_identity":
        return SimpleRNN(h, recurrent_kernel_init=_identity, implementation=impl)
    return long_range.make_recurrent(cell.model, cell_config(config, cell))


# ---- data and scoring -------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _eval_sets(length: int, stop_size: int, test_size: int, eval_batch: int):
    """The stopping rule's and the test's fresh sequences at ``length`` (the same for every model
    and seed), in batches of ``eval_batch``."""

    def split(n, seed):
        x, y, lens = adding_problem(n, length, seed=seed)
        return [
            long_range.batch(x[i : i + eval_batch], y[i : i + eval_batch], lens[i : i + eval_batch])
            for i in range(0, n, eval_batch)
        ]

    return split(stop_size, 10_001), split(test_size, 20_002)


_evaluate = jax.jit(functools.partial(eval_step, loss="mse", metrics=long_range.METRICS))


def score(state, data: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Test MSE, fraction solved, wrong predictions and count of ``state`` on ``data``."""
    totals = {"mse": 0.0, "solved": 0.0, "count": 0.0}
    for batch in data:
        _, metrics = _evaluate(state, None, batch)
        metrics = jax.device_get(metrics)
        n = float(metrics["count"])
        totals["mse"] += float(metrics["mse"]) * n
        totals["solved"] += float(metrics["solved"]) * n
        totals["count"] += n
    return _figures(totals["mse"] / totals["count"], totals["solved"] / totals["count"], totals)


def _figures(mse: float, solved: float, metrics: dict[str, float]) -> dict[str, float]:
    count = int(round(float(metrics["count"])))
    return {
        "test_mse": float(mse),
        "test_solved": float(solved),
        "test_wrong": int(round((1.0 - float(solved)) * count)),
        "test_count": count,
    }


def stopping_step(
    history: list[dict[str, Any]], *, min_solved: float = 1.0, max_mse: float = 0.01
) -> int | None:
    """The first step at which the stopping rule held on the validation pass: every validation
    sequence solved (``val solved >= min_solved``) and ``val mse < max_mse``; None if never.

    >>> stopping_step([{"step": 100, "val": {"solved": 0.99, "mse": 0.002}},
    ...                {"step": 200, "val": {"solved": 1.0, "mse": 0.0004}}])
    200
    >>> stopping_step([{"step": 100, "val": {"solved": 0.5, "mse": 0.03}}]) is None
    True
    """
    for record in history:
        val = record.get("val") or {}
        solved, mse = val.get("solved"), val.get("mse")
        if solved is None or mse is None:
            continue
        if solved >= min_solved - 1e-9 and mse < max_mse:
            return int(record["step"])
    return None


# ---- one cell ---------------------------------------------------------------------------------
def _sessions(path: Path) -> list[dict[str, Any]]:
    file = path / "sessions.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def _now() -> float:
    """The wall clock the deadline is checked against (a seam for the tests)."""
    return time.time()


class OutOfTime(Exception):
    """The study's ``max_minutes`` ran out (between two chunks)."""


def run_cell(
    cell: Cell, config: ml_collections.ConfigDict, root: Path, deadline: float | None
) -> dict[str, Any]:
    """Trains (or resumes, or reads back) one cell; returns its ``cell.json`` figures.

    Raises:
      OutOfTime: ``deadline`` (``time.time()``) passed before the cell finished; its latest
        checkpoint holds the progress.
    """
    default_lr = config.train.learning_rate
    path = cell.path(root, default_lr)
    if (path / "cell.json").exists():
        return json.loads((path / "cell.json").read_text())
    path.mkdir(parents=True, exist_ok=True)
    budget = budgets(config)[cell.length]
    cfg = cell_config(config, cell)
    model = long_range.adding_model(make_recurrent(cell, config))
    stop_set, test_set = _eval_sets(
        cell.length, config.data.stop_size, config.data.test_size, config.data.eval_batch
    )
    info: dict[str, Any] = {
        "T": cell.length,
        "model": cell.model,
        "lr": cell.lr,
        "seed": cell.seed,
        "variant": cell.variant(default_lr),
        "label": label(cell.model, cell.length, cell.lr, default_lr),
        "budget_steps": budget,
        "batch_size": config.data.batch_size,
    }
    result = None
    try:
        while True:
            done = latest_checkpoint_step(path)
            if deadline is not None and _now() >= deadline:
                raise OutOfTime(f"{path}: at step {done} of {budget}")
            target = min(budget, done + config.train.chunk_steps)
            tick = time.perf_counter()
            result = fit(
                model,
                FreshBatches(
                    functools.partial(long_range.train_batch, cfg),
                    steps_per_epoch=config.train.eval_every,
                ),
                optimizer=optax.adam(cell.lr),
                clip_norm=config.train.clip_norm or None,
                workdir=path,
                num_steps=budget,
                max_steps=target,
                val_data=stop_set,
                test_data=test_set,
                loss="mse",
                metrics=long_range.METRICS,
                stateful=False,
                monitor="solved",
                monitor_mode="max",
                keep_best=True,
                seed=cell.seed,
                checkpoint_every=config.train.checkpoint_every,
                log_every=config.train.eval_every,
                progress=False,
                tensorboard=False,
            )
            seconds = time.perf_counter() - tick
            session = {
                "from_step": done,
                "to_step": target,
                "seconds": round(seconds, 2),
                "load": [round(x, 2) for x in os.getloadavg()],
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pid": os.getpid(),  # one process per sitting
            }
            with (path / "sessions.jsonl").open("a") as f:
                f.write(json.dumps(session) + "\n")
            print(
                f"  {info['label']} T={cell.length} seed {cell.seed}: step {target}/{budget} "
                f"({seconds:.0f} s, load {session['load'][0]})",
                flush=True,
            )
            if result.test is not None:
                break
    except NonFiniteError as error:
        info.update(status="diverged", error=str(error), steps_trained=latest_checkpoint_step(path))
        info.update(_time(path))
        Workdir(path).write_json("cell.json", info)
        return info

    assert result is not None
    history = result.history
    curve = long_range.curve_records(history)
    test = result.test
    info["status"] = "finished"
    info["steps_trained"] = int(history[-1]["step"])
    info["at_budget"] = {
        "steps": int(history[-1]["step"]),
        "sequences": int(history[-1]["step"]) * config.data.batch_size,
        **_figures(test["mse"], test["solved"], test),
    }
    info["val_final"] = {"solved": history[-1]["val"]["solved"], "mse": history[-1]["val"]["mse"]}
    info["first_step_val_solved_99"] = next(
        (r["step"] for r in curve if r["val_solved"] >= 0.99), None
    )
    stop = stopping_step(history)
    at_stop: dict[str, Any] = {"fired": stop is not None, "step": stop}
    if stop is not None:
        best_step = history[result.best_epoch]["step"] if result.best_epoch is not None else None
        at_stop["sequences"] = stop * config.data.batch_size
        if best_step == stop and result.best_state is not None:
            at_stop.update(score(result.best_state, test_set))
        else:  # not expected: fit keeps the first evaluation at the maximum
            at_stop["error"] = f"kept best state at step {best_step}, the rule fired at {stop}"
    info["at_stop"] = at_stop
    info.update(_time(path))
    if cell.seed == 0 and str(cell.length) in _csv(config.diagnostics.lengths):
        init = long_range._init(model, cell.seed, stop_set[0])
        info["gradient_by_lag"] = {
            "init": _gradient_curve(model, init, cell.length, config).tolist(),
            "trained": _gradient_curve(model, result.state.params, cell.length, config).tolist(),
        }
    info["curve"] = curve
    Workdir(path).write_json("cell.json", info)
    return info


def _time(path: Path) -> dict[str, Any]:
    sessions = _sessions(path)
    return {
        "seconds": round(sum(s["seconds"] for s in sessions), 1),
        "sittings": len({s["pid"] for s in sessions}),
        "chunks": len(sessions),
        "load_range": [
            min((s["load"][0] for s in sessions), default=None),
            max((s["load"][0] for s in sessions), default=None),
        ],
    }


def _gradient_curve(model, params, length: int, config) -> np.ndarray:
    """``||dL/dh||`` by lag ``k = T - 1 - t`` on a fixed-length batch (``seqjax.diagnostics``)."""
    rng = np.random.default_rng([0, 3])
    x, y, lens = adding_problem(
        config.diagnostics.batch_size, length, rng=rng, variable_length=False
    )
    return np.asarray(long_range._gradient_by_step(model, params, x, y, lens))[::-1].copy()


# ---- the plan ---------------------------------------------------------------------------------
def search_cells(config: ml_collections.ConfigDict, family: str) -> list[Cell]:
    length = int(config.search.length)
    lrs = [float(v) for v in _csv(config.search.learning_rates)]
    return [Cell(length, m, lr, 0) for m in _csv(config.search[family]) for lr in lrs]


def best_setting(
    config: ml_collections.ConfigDict, root: Path, family: str
) -> tuple[str, float] | None:
    """The search's best ``(model, lr)`` of ``family`` by the final validation figures (solved,
    then MSE; never the test set); None until all of its search cells have finished."""
    scored = []
    for cell in search_cells(config, family):
        file = cell.path(root, config.train.learning_rate) / "cell.json"
        if not file.exists():
            return None
        info = json.loads(file.read_text())
        val = info.get("val_final") or {"solved": 0.0, "mse": float("inf")}
        scored.append((-(val["solved"] or 0.0), val["mse"] or float("inf"), cell.model, cell.lr))
    if not scored:
        return None
    _, _, model, lr = min(scored)
    return model, lr


def _val_solved(config: ml_collections.ConfigDict, root: Path, cell: Cell) -> float:
    """A finished cell's final validation fraction solved (0.0 when not finished)."""
    file = cell.path(root, config.train.learning_rate) / "cell.json"
    if not file.exists():
        return 0.0
    return (json.loads(file.read_text()).get("val_final") or {}).get("solved") or 0.0


def plan(config: ml_collections.ConfigDict, root: Path) -> list[Cell]:
    """Every cell of the study in priority order (the best settings once the search is done):
    seed 0 of the grid at every T; the search; the other seeds at the search's T (grid and best
    settings: cheap); the best settings at the longer T, seed 0, then the other seeds T by T.
    A best setting is run at a longer T only if it solved ``search.min_solved_to_extend`` of the
    validation set at the search's T (a setting that fails there is not expected to bridge longer
    lags; the default's cells show the longer T)."""
    lr = config.train.learning_rate
    grid_lengths = lengths(config)
    search_length = int(config.search.length)
    models = _csv(config.models)
    cells = [Cell(t, m, lr, 0) for t in grid_lengths for m in models]
    if search_length in grid_lengths:
        cells += search_cells(config, "gru") + search_cells(config, "srn")
    best, extend = [], []
    for family, default in FAMILIES.items():
        setting = best_setting(config, root, family)
        if setting is not None and setting != (default, lr):
            best.append(setting)
            solved = _val_solved(config, root, Cell(search_length, *setting, 0))
            if solved >= config.search.min_solved_to_extend:
                extend.append(setting)
    seeds = range(1, config.seeds)
    if search_length in grid_lengths:
        cells += [Cell(search_length, m, r, 0) for m, r in best]
        for seed in seeds:
            cells += [Cell(search_length, m, lr, seed) for m in models]
            cells += [Cell(search_length, m, r, seed) for m, r in best]
    longer = [t for t in grid_lengths if t != search_length]
    cells += [Cell(t, m, r, 0) for t in longer for m, r in extend]
    for t in longer:
        for seed in seeds:
            cells += [Cell(t, m, lr, seed) for m in models]
            cells += [Cell(t, m, r, seed) for m, r in extend]
    unique: list[Cell] = []
    for cell in cells:
        if cell not in unique:
            unique.append(cell)
    return unique


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs (or continues) the study in ``workdir``; returns the aggregated results."""
    check_models(config)
    budgets(config)
    root = Path(workdir)
    wd = Workdir(root)
    wd.write_config(config)
    start = _now()
    deadline = start + 60 * config.max_minutes if config.max_minutes else None
    finished: set[Cell] = set()
    stopped = None
    while stopped is None:
        todo = [c for c in plan(config, root) if c not in finished]
        if not todo:
            break
        cell = todo[0]
        try:
            run_cell(cell, config, root, deadline)
        except OutOfTime as error:
            stopped = str(error)
            break
        finished.add(cell)
    results = aggregate(config, root)
    results["sitting"] = {
        "seconds": round(_now() - start, 1),
        "stopped_by_max_minutes": stopped,
    }
    wd.write_results(results)
    (root / "results.md").write_text(summary(results) + "\n")
    return results


# ---- aggregation ------------------------------------------------------------------------------
def _cells_on_disk(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("T*/*/seed*/cell.json"))]


def aggregate(config: ml_collections.ConfigDict, root: Path) -> dict[str, Any]:
    """Every finished cell on disk, grouped by ``(T, variant)`` over seeds; the pending cells of
    the current plan with their progress; the plots."""
    cells = _cells_on_disk(root)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for info in cells:
        row = rows.setdefault(
            (info["T"], info["variant"]),
            {"T": info["T"], "variant": info["variant"], "label": info["label"], "cells": []},
        )
        row["cells"].append(info)
    table = []
    for key in sorted(rows, key=lambda k: (k[0], _order(config, k[1]))):
        row = rows[key]
        done = [c for c in row["cells"] if c["status"] == "finished"]
        fired = [c for c in done if c["at_stop"]["fired"]]
        table.append(
            {
                "T": row["T"],
                "variant": row["variant"],
                "label": row["label"],
                "seeds": sorted(c["seed"] for c in row["cells"]),
                "diverged_seeds": sorted(c["seed"] for c in row["cells"] if c not in done),
                "budget_steps": row["cells"][0]["budget_steps"],
                "budget_sequences": row["cells"][0]["budget_steps"] * config.data.batch_size,
                "solved_at_budget": spread([c["at_budget"]["test_solved"] for c in done]),
                "wrong_at_budget": spread([c["at_budget"]["test_wrong"] for c in done]),
                "mse_at_budget": spread([c["at_budget"]["test_mse"] for c in done]),
                "rule_fired": f"{len(fired)}/{len(done)}",
                "sequences_to_rule": spread([c["at_stop"]["sequences"] for c in fired]),
                "wrong_at_rule": spread(
                    [c["at_stop"]["test_wrong"] for c in fired if "test_wrong" in c["at_stop"]]
                ),
                "seconds": spread([c["seconds"] for c in row["cells"]]),
                "load_range": [
                    min(c["load_range"][0] for c in row["cells"] if c["load_range"][0] is not None),
                    max(c["load_range"][1] for c in row["cells"] if c["load_range"][1] is not None),
                ]
                if any(c["load_range"][0] is not None for c in row["cells"])
                else None,
                "paper": PAPER.get(row["T"]) if row["variant"].startswith("lstm") else None,
            }
        )
    pending = []
    for cell in plan(config, root):
        path = cell.path(root, config.train.learning_rate)
        if not (path / "cell.json").exists():
            pending.append(
                {
                    "T": cell.length,
                    "variant": cell.variant(config.train.learning_rate),
                    "seed": cell.seed,
                    "steps_done": latest_checkpoint_step(path),
                    "budget_steps": budgets(config)[cell.length],
                }
            )
    search = {f: best_setting(config, root, f) for f in FAMILIES}
    results = {
        "task": "adding problem (H&S 1997 Exp. 4), lengths T..T+T//10, |error| < 0.04 solved",
        "rule": (
            f"all {config.data.stop_size} fresh validation sequences solved and their MSE < 0.01,"
            f" checked every {config.train.eval_every} steps"
        ),
        "test_sequences": config.data.test_size,
        "paper": {str(k): v for k, v in PAPER.items()},
        "rows": table,
        "search": {
            f: (None if s is None else {"model": s[0], "lr": s[1]}) for f, s in search.items()
        },
        "search_cells": [
            {
                "variant": c["variant"],
                "val_final": c.get("val_final"),
                "solved_at_budget": (c.get("at_budget") or {}).get("test_solved"),
                "status": c["status"],
            }
            for c in cells
            if c["T"] == int(config.search.length)
            and c["seed"] == 0
            and (c["model"].startswith("gru") or c["model"].startswith("srn"))
        ],
        "pending": pending,
        "plots": _plots(config, root, cells),
    }
    return results


def _order(config, variant: str) -> tuple[int, str]:
    models = _csv(config.models)
    base = variant.split("-lr")[0]
    return (models.index(base) if base in models else len(models), variant)


def _plots(config, root: Path, cells: list[dict[str, Any]]) -> list[str]:
    out = []
    for length in sorted({c["T"] for c in cells}):
        seed0 = [c for c in cells if c["T"] == length and c["seed"] == 0 and "curve" in c]
        if seed0:
            out.append(
                str(
                    plots.learning_curves(
                        root / f"learning_curves_T{length}.png",
                        {c["label"]: c["curve"] for c in seed0},
                        title=(
                            f"Adding problem, T={length}, seed 0: the stopping rule's "
                            f"{config.data.stop_size} validation sequences"
                        ),
                        baseline=long_range.BASELINE_MSE,
                    )
                )
            )
        with_grads = [c for c in seed0 if "gradient_by_lag" in c]
        if with_grads:
            curves = {}
            for c in with_grads:
                curves[f"{c['label']}, init"] = np.asarray(c["gradient_by_lag"]["init"])
                curves[f"{c['label']}, trained"] = np.asarray(c["gradient_by_lag"]["trained"])
            out.append(
                str(
                    plots.gradient_by_lag(
                        root / f"gradient_by_lag_T{length}.png",
                        curves,
                        title=f"Gradient reaching h_t, adding problem T={length}",
                    )
                )
            )
    return out


def _scaled(figures: dict[str, Any] | None, factor: float) -> dict[str, float] | None:
    """The mean, min and max of a :func:`experiments.seeds.spread` times ``factor`` (units)."""
    if figures is None:
        return None
    return {key: figures[key] * factor for key in ("mean", "min", "max")}


def _fmt(spread: dict[str, float] | None, pattern: str, n: int) -> str:
    if spread is None:
        return "-"
    if n == 1 or spread["min"] == spread["max"]:
        return pattern.format(spread["mean"])
    lo, hi = pattern.format(spread["min"]), pattern.format(spread["max"])
    return f"{pattern.format(spread['mean'])} ({lo}-{hi})"


def summary(results: dict[str, Any]) -> str:
    """The Markdown table: per (T, model) over seeds, mean (min-max), beside the paper."""
    n = results["test_sequences"]
    lines = [
        f"| T | model | seeds | solved at budget (of {n:,}) | wrong at budget | test MSE | "
        "rule fired | sequences to rule | wrong at rule | budget (sequences) | min per cell | "
        "paper (LSTM): wrong, sequences |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        k = len(row["seeds"]) - len(row["diverged_seeds"])
        solved_pct = _scaled(row["solved_at_budget"], 100)
        paper = row["paper"]
        seeds = f"{len(row['seeds'])}"
        if row["diverged_seeds"]:
            seeds += f" ({len(row['diverged_seeds'])} diverged)"
        minutes = _scaled(row["seconds"], 1 / 60)
        lines.append(
            f"| {row['T']} | {row['label']} | {seeds} | {_fmt(solved_pct, '{:.2f}%', k)} | "
            f"{_fmt(row['wrong_at_budget'], '{:.0f}', k)} | "
            f"{_fmt(row['mse_at_budget'], '{:.5f}', k)} | {row['rule_fired']} | "
            f"{_fmt(row['sequences_to_rule'], '{:,.0f}', k)} | "
            f"{_fmt(row['wrong_at_rule'], '{:.0f}', k)} | {row['budget_sequences']:,} | "
            f"{_fmt(minutes, '{:.1f}', len(row['seeds']))} | "
            + (f"{paper['wrong']}, {paper['sequences']:,}" if paper else "")
            + " |"
        )
    if results.get("pending"):
        lines.append("")
        lines.append(
            "Pending (resumable by the same command): "
            + ", ".join(
                f"T={p['T']} {p['variant']} seed {p['seed']} ({p['steps_done']}/{p['budget_steps']})"
                for p in results["pending"]
            )
        )
    return "\n".join(lines)

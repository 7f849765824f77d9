"""Why the stateful LSTM trails the windowed one on sunspots: one factor changed at a time.

Each *row* is the forecast experiment (``experiments/forecast.py``, the same ``fit`` call, data,
split and models) with a few config overrides, trained once per seed; a row's spec is
``"<model>: key=value key=value"`` with keys of the forecast config (``config.study.specs``), so
its command is ``python -m experiments.main --config=experiments/configs/forecast.py:sunspots
--config.models=<model> --config.<key>=<value> ... --config.seed=<seed>``.

Every trained stateful model is scored on the test part under several evaluation protocols,
without training again (``stateful_predictions``):

- ``reported``: what the forecast experiment reports, the parameters of the best validation
  epoch; for the stateful model one pass over the whole series from a zero carry (the carry has
  run through 2,500+ months before the first test month);
- ``burn_in=N`` (``config.study.burn_ins``): the pass starts ``N`` months before the first test
  month (``0``: a cold start), the windowed models' situation for ``N = window``;
- ``last``: ``reported`` with the last epoch's parameters instead of the best validation epoch's.

Windowed models get ``reported`` and ``last``. All as test RMSE / persistence RMSE, per seed and
as mean, sample standard deviation, min and max over seeds.

Resumable: each ``(row, seed)`` trains in ``<workdir>/<row>/seed<k>`` (``fit`` resumes it) and
writes ``<workdir>/<row>/seed<k>.json`` when done; a finished run is read back, not repeated
(its spec must match the config's, else ValueError).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import ml_collections
import numpy as np

from experiments import forecast
from experiments.seeds import spread
from experiments.workdir import Workdir

__all__ = ["parse_spec", "row_config", "run", "summary"]


def parse_spec(spec: str, base: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """``(model, {dotted key: value})`` of a row spec; every key must exist in ``base`` (typed
    like its value there).

    >>> from experiments.configs import forecast as forecast_config
    >>> parse_spec("stateful_lstm: stateful.epochs=96 train.learning_rate=3e-3",
    ...            forecast_config.get_config("sunspots"))
    ('stateful_lstm', {'stateful.epochs': 96, 'train.learning_rate': 0.003})
    >>> parse_spec("stateful_lstm: stateful.epoch=96", forecast_config.get_config())
    Traceback (most recent call last):
    ValueError: row spec 'stateful_lstm: stateful.epoch=96': no config key 'stateful.epoch'
    """
    model, _, rest = spec.partition(":")
    model = model.strip()
    if model not in forecast.MODEL_LABELS:
        raise ValueError(
            f"row spec {spec!r}: unknown model {model!r}; "
            f"choose from {sorted(forecast.MODEL_LABELS)}"
        )
    overrides: dict[str, Any] = {}
    for item in rest.split():
        key, eq, value = item.partition("=")
        if not eq or not value:
            raise ValueError(f"row spec {spec!r}: expected key=value, got {item!r}")
        node: Any = base
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise ValueError(f"row spec {spec!r}: no config key {key!r}")
        kind = type(node[leaf])
        try:
            overrides[key] = kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ValueError(
                f"row spec {spec!r}: {key}={value!r} is not a {kind.__name__}"
            ) from None
        if kind is int and overrides[key] != float(value):
            raise ValueError(f"row spec {spec!r}: {key}={value!r} is not an int")
    return model, overrides


def row_config(
    base: ml_collections.ConfigDict, model: str, overrides: dict[str, Any], seed: int
) -> ml_collections.ConfigDict:
    """A copy of ``base`` training only ``model``, with ``overrides`` and ``seed``."""
    config = copy.deepcopy(base)
    config.models = model
    config.seed = seed
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config


def updates_per_epoch(model: str, config: ml_collections.ConfigDict, data, wins) -> int:
    """Adam steps in one epoch of ``model`` under ``config``."""
    train, _ = forecast.training_source(model, config, data, wins)
    return int(np.asarray(train["inputs"]).shape[0])


def _ratios(model, net, params, data, wins, persistence_rmse, burn_ins) -> dict[str, float]:
    """Test RMSE / persistence RMSE under each evaluation protocol for ``params``."""
    times = np.arange(data["splits"]["test"].start, data["splits"]["test"].stop)
    truth = data["raw"][times]
    out = {}
    if model == "stateful_lstm":
        protocols: dict[str, int | None] = {"reported": None}
        protocols.update({f"burn_in={n}": int(n) for n in burn_ins})
        for name, burn_in in protocols.items():
            z_pred = forecast.stateful_predictions(net, params, data["z"], times, burn_in)
            rmse = forecast.errors(forecast.to_price(data, times, z_pred), truth)["rmse"]
            out[name] = rmse / persistence_rmse
    else:
        x, _, win_times = wins["test"]
        assert np.array_equal(win_times, times)
        z_pred = forecast.window_predictions(net, params, x)
        rmse = forecast.errors(forecast.to_price(data, times, z_pred), truth)["rmse"]
        out["reported"] = rmse / persistence_rmse
    return out


def run_one(name, spec, seed, config, data, wins, wd: Workdir, persistence_rmse) -> dict:
    """Trains (or resumes) one row at one seed; returns and stores its record."""
    model, overrides = parse_spec(spec, config.base)
    record_name = f"{name}/seed{seed}.json"
    done = wd.read_json(record_name)
    if done is not None:
        if done["spec"] != spec:
            raise ValueError(
                f"{wd.path / record_name} holds spec {done['spec']!r}, the config says {spec!r}: "
                "use another workdir or remove that row's directory"
            )
        return done
    row = row_config(config.base, model, overrides, seed)
    net, result, seconds = forecast.fit_model(
        model, row, data, wins, wd.part(name) / f"seed{seed}", progress=False
    )
    burn_ins = list(config.study.burn_ins)
    best = _ratios(model, net, result.best_state.params, data, wins, persistence_rmse, burn_ins)
    last = _ratios(model, net, result.state.params, data, wins, persistence_rmse, [])
    ratios = {**best, "last": last["reported"]}
    per_epoch = updates_per_epoch(model, row, data, wins)
    epochs = forecast.epochs_of(model, row, data, wins)
    record = {
        "row": name,
        "spec": spec,
        "model": model,
        "overrides": overrides,
        "seed": seed,
        "updates_per_epoch": per_epoch,
        "epochs": epochs,
        "adam_steps": per_epoch * epochs,
        "best_epoch": 1 + int(result.best_epoch),
        "best_val_mse": float(min(h["val"]["loss"] for h in result.history)),
        "final_train_mse": float(result.history[-1]["train"]["loss"]),
        "ratios": ratios,
        "seconds": round(seconds, 1),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    wd.write_json(record_name, record)
    return record


def row_names(config: ml_collections.ConfigDict) -> list[str]:
    """The rows to run, in order; each must have a spec."""
    names = [n.strip() for n in config.study.rows.split(",") if n.strip()]
    for n in names:
        if n not in config.study.specs:
            raise ValueError(
                f"config.study.rows: no spec for row {n!r}; rows with a spec: "
                f"{', '.join(sorted(config.study.specs))}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"config.study.rows names a row twice: {config.study.rows!r}")
    return names


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Every row of ``config.study.rows`` at seeds ``0 .. config.study.seeds - 1``."""
    names = row_names(config)
    if config.study.seeds < 1:
        raise ValueError(f"config.study.seeds must be >= 1, got {config.study.seeds}")
    for name in names:  # every spec is checked before anything trains
        parse_spec(config.study.specs[name], config.base)
    wd = Workdir(workdir)
    wd.write_config(config)
    tick = time.perf_counter()
    data = forecast.load(config.base)
    data["transform"] = config.base.data.transform
    wins = forecast.window_data(data, config.base.data.window)
    raw, splits = data["raw"], data["splits"]
    times = np.arange(max(splits["test"].start, 1), splits["test"].stop)
    persistence_rmse = forecast.errors(raw[times - 1], raw[times])["rmse"]
    order = config.base.baselines.ar_order
    train_times = np.arange(order + data["first"], splits["train"].stop)
    ar = forecast.ar_fit_predict(data["z"], order, train_times, times)
    ar_rmse = forecast.errors(forecast.to_price(data, times, ar), raw[times])["rmse"]

    rows = {}
    for name in names:
        spec = config.study.specs[name]
        records = [
            run_one(name, spec, seed, config, data, wins, wd, persistence_rmse)
            for seed in range(config.study.seeds)
        ]
        protocols = list(records[0]["ratios"])
        rows[name] = {
            "spec": spec,
            "model": records[0]["model"],
            "adam_steps": records[0]["adam_steps"],
            "epochs": records[0]["epochs"],
            "updates_per_epoch": records[0]["updates_per_epoch"],
            "ratios": {p: spread([r["ratios"][p] for r in records]) for p in protocols},
            "per_seed": {p: [r["ratios"][p] for r in records] for p in protocols},
            "best_epochs": [r["best_epoch"] for r in records],
            "best_val_mse": spread([r["best_val_mse"] for r in records]),
            "seconds_per_run": spread([r["seconds"] for r in records]),
            "load_average": [r["load_average"] for r in records],
        }
        print(f"{name}: {_cell(rows[name]['ratios'][protocols[0]])}", flush=True)
    results = {
        "series": data["name"],
        "split_sizes": {k: v.stop - v.start for k, v in splits.items()},
        "persistence_rmse": persistence_rmse,
        "ar_ratio": ar_rmse / persistence_rmse,
        "seeds": config.study.seeds,
        "rows": rows,
        "seconds_this_session": round(time.perf_counter() - tick, 1),
    }
    results["plots"] = [str(_plot(wd, rows, results["ar_ratio"]))]
    wd.write_results(results)
    return results


def _plot(wd: Workdir, rows: dict[str, Any], ar_ratio: float):
    """One line per row (top to bottom in order): every seed's test RMSE / persistence as a dot,
    their mean as a bar; stateful rows blue, windowed rows orange; Adam steps in the label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.26 * len(rows) + 1.2))
    for y, row in enumerate(rows.values()):
        color = "C0" if row["model"] == "stateful_lstm" else "C1"
        seeds = row["per_seed"]["reported"]
        ax.plot(seeds, [y] * len(seeds), "o", color=color, ms=3, alpha=0.7)
        ax.plot([np.mean(seeds)] * 2, [y - 0.35, y + 0.35], color=color, lw=2)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{n} ({r['adam_steps']} steps)" for n, r in rows.items()], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=0.8, ls="--", label="persistence")
    ax.axvline(ar_ratio, color="gray", lw=0.8, ls=":", label=f"linear AR ({ar_ratio:.3f})")
    ax.plot([], [], "o", color="C0", label="stateful LSTM (dots: seeds, bar: mean)")
    ax.plot([], [], "o", color="C1", label="LSTM on shuffled windows")
    ax.set_xlabel("test RMSE / persistence RMSE")
    ax.set_title("monthly sunspots: stateful vs windowed LSTM, one factor at a time", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", lw=0.3)
    fig.tight_layout()
    path = wd.path / "study.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cell(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.3f} ± {stats['std']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def summary(results: dict[str, Any]) -> str:
    """A Markdown table: one line per row, test RMSE / persistence under each protocol."""
    protocols = []
    for row in results["rows"].values():
        protocols += [p for p in row["ratios"] if p not in protocols]
    lines = [
        "| row | spec | Adam steps | " + " | ".join(protocols) + " | best epochs | s/run |",
        "|---|---|---|" + "---|" * len(protocols) + "---|---|",
    ]
    for name, row in results["rows"].items():
        cells = [_cell(row["ratios"][p]) if p in row["ratios"] else "" for p in protocols]
        lines.append(
            f"| {name} | `{row['spec']}` | {row['adam_steps']} | "
            + " | ".join(cells)
            + f" | {row['best_epochs']} | {row['seconds_per_run']['mean']:.0f} |"
        )
    lines.append(
        f"\ntest RMSE / persistence RMSE ({results['persistence_rmse']:.4f}), mean ± sd (min-max) "
        f"over {results['seeds']} seeds; linear AR: {results['ar_ratio']:.3f}."
    )
    return "\n".join(lines)

"""Matplotlib figures of the experiments (Agg backend: no display needed). Each returns its path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 90


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def learning_curves(
    path: Path,
    curves: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    title: str,
    baseline: float | None = None,
) -> Path:
    """Validation MSE (log scale) and fraction solved against training step, one line per model."""
    fig, (ax_mse, ax_solved) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, records in curves.items():
        steps = [r["step"] for r in records]
        ax_mse.plot(steps, [r["val_mse"] for r in records], label=name)
        ax_solved.plot(steps, [100 * r["val_solved"] for r in records], label=name)
    if baseline is not None:
        ax_mse.axhline(baseline, color="gray", ls="--", lw=1, label="predict 0.5 (baseline)")
    ax_mse.set_yscale("log")
    ax_mse.set_xlabel("training step")
    ax_mse.set_ylabel("validation MSE")
    ax_solved.axhline(99, color="gray", ls=":", lw=1)
    ax_solved.set_xlabel("training step")
    ax_solved.set_ylabel("% sequences with |error| < 0.04")
    ax_solved.set_ylim(0, 101)
    ax_mse.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def gradient_by_lag(path: Path, curves: Mapping[str, np.ndarray], *, title: str) -> Path:
    """``||dL/dh_t||`` against lag, log scale; init dashed, trained solid."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors: dict[str, Any] = {}
    for name, values in curves.items():
        model = name.rsplit(", ", 1)[0]
        color = colors.setdefault(model, f"C{len(colors)}")
        style = "--" if name.endswith("init") else "-"
        ax.plot(np.arange(len(values)), values, style, color=color, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("lag k (steps back from the output)")
    ax.set_ylabel("mean ||dL/dh_{T-1-k}||")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, path)


def forecasts(
    path: Path,
    time: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    title: str,
    ylabel: str,
    zoom: int | None = None,
) -> Path:
    """Test-period predictions against the truth; a second panel zooms on the last ``zoom`` steps."""
    panels = 2 if zoom else 1
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3.4 * panels), squeeze=False)
    for ax, part in zip(
        axes[:, 0], [slice(None), slice(-zoom, None) if zoom else None], strict=False
    ):
        if part is None:
            continue
        ax.plot(time[part], truth[part], color="black", lw=1.5, label="truth")
        for k, (name, values) in enumerate(predictions.items()):
            ax.plot(time[part], values[part], lw=0.9, color=f"C{k}", label=name)
        ax.set_ylabel(ylabel)
    axes[0, 0].set_title(title, fontsize=10)
    axes[0, 0].legend(fontsize=7, ncol=3)
    return _save(fig, path)


def histories(
    path: Path, curves: Mapping[str, Mapping[str, Sequence[float]]], *, title: str
) -> Path:
    """Per-epoch curves: ``{panel: {line: values}}``, one panel per key."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (panel, lines) in zip(axes[0], curves.items(), strict=True):
        for name, values in lines.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=name)
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)

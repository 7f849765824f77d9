"""Every experiment end to end with its tiny config, in a temporary workdir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import long_range
from experiments.configs import long_range as long_range_config

ROOT = Path(__file__).resolve().parents[2]


def _check_files(workdir: Path, plots: list[str]) -> dict:
    for name in ["config.json", "metrics.jsonl", "results.json", *plots]:
        assert (workdir / name).is_file(), name
    assert (workdir / "checkpoints").is_dir()
    for name in plots:
        assert (workdir / name).stat().st_size < 200_000
    return json.loads((workdir / "results.json").read_text())


def test_long_range_tiny_runs_and_resumes(tmp_path):
    config = long_range_config.get_config("tiny")
    config.models = "srn,lstm"
    results = long_range.run(config, str(tmp_path))
    saved = _check_files(tmp_path, ["learning_curves.png", "gradient_by_lag.png"])
    assert set(saved["models"]) == {"srn", "lstm"}
    for info in saved["models"].values():
        assert {"test_mse", "test_solved", "test_wrong", "steps_trained"} <= set(info)
        assert 0.0 <= info["test_solved"] <= 1.0
        assert info["steps_trained"] == config.train.steps
    curves = saved["gradient_by_lag"]
    exploding = next(v for k, v in curves.items() if "exploding" in k)
    assert exploding[-1] > exploding[0]  # large recurrent weights: the gradient grows with lag
    # A second run resumes from the final checkpoints: no training step is repeated.
    again = long_range.run(config, str(tmp_path))
    for name, info in again["models"].items():
        assert info["test_mse"] == pytest.approx(results["models"][name]["test_mse"], rel=1e-5)
        assert info["train_seconds_this_session"] < 5
    assert "| SimpleRNN |" in long_range.summary(again)


def test_long_range_with_the_cpu_kernel_gives_the_scans_results(tmp_path):
    # The same function either way: test MSE and the gradient curves agree (float32 sums in a
    # different order, so not bit for bit).
    results = {}
    for impl in ("scan", "cpu_kernel"):
        config = long_range_config.get_config("tiny")
        config.models = "srn,lstm"
        config.model.implementation = impl
        results[impl] = long_range.run(config, str(tmp_path / impl))
    assert set(results["scan"]["models"]) == {"srn", "lstm"}
    assert len(results["scan"]["gradient_by_lag"]) == 5  # init + trained per model, exploding SRN
    for name, info in results["scan"]["models"].items():
        kernel = results["cpu_kernel"]["models"][name]
        assert kernel["test_mse"] == pytest.approx(info["test_mse"], rel=1e-3)
    for key, curve in results["scan"]["gradient_by_lag"].items():
        got = results["cpu_kernel"]["gradient_by_lag"][key]
        assert got == pytest.approx(curve, rel=1e-3)


def test_config_variants():
    assert long_range_config.get_config().models == "srn,gru,lstm_chrono"
    assert long_range_config.get_config().data.length == 100
    assert long_range_config.get_config("init").models == "lstm_fb1,lstm,lstm_chrono"
    assert long_range_config.get_config("T=500").data.length == 500
    with pytest.raises(ValueError, match="unknown model"):
        config = long_range_config.get_config("tiny")
        config.models = "transformer"
        long_range.model_names(config)


def test_main_rejects_a_missing_workdir():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.main",
            "--config=experiments/configs/long_range.py:tiny",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "workdir" in proc.stderr

"""Every experiment end to end with its tiny config, in a temporary workdir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import long_range, quickstart
from experiments.configs import forecast as forecast_config
from experiments.configs import long_range as long_range_config
from experiments.configs import transfer as transfer_config

ROOT = Path(__file__).resolve().parents[2]


def _check_files(workdir: Path, plots: list[str], parts: list[str]) -> dict:
    for name in ["config.json", "results.json", *plots]:
        assert (workdir / name).is_file(), name
    for part in parts:  # one seqjax.train.fit workdir per model
        assert (workdir / part / "metrics.jsonl").is_file(), part
        assert (workdir / part / "checkpoints").is_dir(), part
    for name in plots:
        assert (workdir / name).stat().st_size < 200_000
    return json.loads((workdir / "results.json").read_text())


def test_long_range_tiny_runs_and_resumes(tmp_path):
    config = long_range_config.get_config("tiny")
    config.models = "srn,lstm"
    results = long_range.run(config, str(tmp_path))
    saved = _check_files(tmp_path, ["learning_curves.png", "gradient_by_lag.png"], ["srn", "lstm"])
    assert set(saved["models"]) == {"srn", "lstm"}
    for info in saved["models"].values():
        assert {"test_mse", "test_solved", "test_wrong", "steps_trained"} <= set(info)
        assert 0.0 <= info["test_solved"] <= 1.0
        assert info["steps_trained"] == info["steps_this_session"] == config.train.steps
        assert info["first_step_val_solved_99"] in (None, 20, 40, 60)  # evaluated every 20
    curves = saved["gradient_by_lag"]
    exploding = next(v for k, v in curves.items() if "exploding" in k)
    assert exploding[-1] > exploding[0]  # large recurrent weights: the gradient grows with lag
    # A second run resumes from the final checkpoints: no training step is repeated.
    again = long_range.run(config, str(tmp_path))
    for name, info in again["models"].items():
        assert info["test_mse"] == pytest.approx(results["models"][name]["test_mse"], rel=1e-5)
        assert info["steps_this_session"] == 0
        assert info["steps_trained"] == config.train.steps
    assert "| SimpleRNN |" in long_range.summary(again)


def test_long_range_with_the_default_engine_gives_the_scans_results(tmp_path):
    # The same function either way: test MSE and the gradient curves agree (float32 sums in a
    # different order, so not bit for bit).
    results = {}
    for impl in ("scan", "auto"):  # auto: the CPU kernel on CPU
        config = long_range_config.get_config("tiny")
        config.models = "srn,lstm"
        config.model.implementation = impl
        results[impl] = long_range.run(config, str(tmp_path / impl))
    assert set(results["scan"]["models"]) == {"srn", "lstm"}
    assert len(results["scan"]["gradient_by_lag"]) == 5  # init + trained per model, exploding SRN
    for name, info in results["scan"]["models"].items():
        kernel = results["auto"]["models"][name]
        assert kernel["test_mse"] == pytest.approx(info["test_mse"], rel=1e-3)
    for key, curve in results["scan"]["gradient_by_lag"].items():
        got = results["auto"]["gradient_by_lag"][key]
        assert got == pytest.approx(curve, rel=1e-3)


def test_config_variants():
    assert long_range_config.get_config().models == "srn,gru,lstm_chrono"
    assert long_range_config.get_config().data.length == 100
    assert long_range_config.get_config("init").models == "lstm_fb1,lstm,lstm_chrono"
    assert long_range_config.get_config("T=500").data.length == 500
    assert long_range_config.get_config("tiny,T=30").data.length == 30
    assert long_range_config.get_config("steps=7").train.steps == 7


@pytest.mark.parametrize("module", [long_range_config, forecast_config, transfer_config])
def test_configs_reject_unknown_variant_words(module):
    """A typo must not silently run the full job: it raises, naming the valid words."""
    with pytest.raises(ValueError, match=r"unknown config variant 'tnyi'; valid: .*tiny"):
        module.get_config("tnyi")
    with pytest.raises(ValueError, match="given twice"):
        module.get_config("tiny,tiny")
    assert module.get_config("tiny") != module.get_config()  # every config has its tiny run


def test_quickstart_trains_through_fit(tmp_path):
    result = quickstart.train(
        str(tmp_path), steps=40, batch=16, length=10, hidden=8, learning_rate=1e-2, seed=0
    )
    assert [h["step"] for h in result.history] == [40]
    assert result.test["count"] == 2560 and 0.0 <= result.test["solved"] <= 1.0
    assert result.history[-1]["train"]["loss"] < 0.2
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


def test_workdir_logs_and_checkpoints_parts_outside_fit(tmp_path):
    import numpy as np

    from experiments.workdir import Workdir

    wd = Workdir(tmp_path)
    assert wd.part("lstm") == tmp_path / "lstm" and wd.resumed_step("lstm") == 0
    assert not (tmp_path / "metrics.jsonl").exists()  # nothing written until something is logged
    wd.log("online", 1, mse=0.5)
    wd.log("online", 1, mse=0.25)  # the last record of a step wins
    wd.save("online", 1, {"w": np.arange(3.0)})
    wd.close()
    again = Workdir(tmp_path)
    assert [r["mse"] for r in again.metrics("online")] == [0.25]
    step, tree = again.restore("online", {"w": np.zeros(3)})
    assert step == 1 and tree["w"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(Exception, match="step 2"):
        again.log("online", 2, mse=float("nan"))
    again.close()

"""The online-learning and deploy experiments end to end with their tiny configs (through
experiments.main), and their configs' strict variant parsing."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import pytest
from absl import flags

from experiments import main as experiments_main
from experiments.configs import deploy as deploy_config
from experiments.configs import online as online_config

ROOT = Path(__file__).resolve().parents[2]


def _main(config: str, workdir: Path) -> str:
    argv = ["main", f"--config={ROOT / config}", f"--workdir={workdir}"]
    saved_argv, sys.argv = sys.argv, argv
    out = io.StringIO()
    try:
        flags.FLAGS(argv)
        with contextlib.redirect_stdout(out):
            experiments_main.main(argv[:1])
    finally:
        sys.argv = saved_argv
        flags.FLAGS.unparse_flags()
    return out.getvalue()


def test_online_tiny(tmp_path):
    out = _main("experiments/configs/online.py:tiny", tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    models = results["models"]
    assert set(models) == {"persistence", "drift", "batched", "online_k1", "online_k4"}
    assert models["persistence"]["mse_gain_vs_persistence"] == 0.0
    for name, model in results["models"].items():
        assert model["rmse"] > 0 and model["mae"] > 0, name
    assert results["models"]["online_k4"]["updates"] == results["train_days"] - 1
    assert "prequential" in results["models"]["online_k1"]
    assert results["winner"] in results["models"]
    assert "lowest test RMSE" in out


def test_deploy_tiny(tmp_path):
    out = _main("experiments/configs/deploy.py:tiny", tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["seqjax_imported_by_server"] is False
    assert results["equal_within_rtol"] is True
    assert results["max_relative_error_predictions"] < 1e-5
    assert results["platforms"] == ["cpu", "cuda", "tpu"]
    assert results["days_served"] == 599  # 600 prices, 599 daily returns, one call each
    assert abs(results["memory"]["traced_growth_per_call_bytes"]) < 64  # constant per call
    assert (tmp_path / "msft_lstm.step").stat().st_size == results["artifact_bytes"]
    assert "time per call" in out


@pytest.mark.parametrize("module", [online_config, deploy_config])
def test_unknown_variant_raises(module):
    assert module.get_config("tiny").data.limit == 600
    with pytest.raises(ValueError, match="unknown config variant 'huge'; valid: .*tiny"):
        module.get_config("tiny,huge")

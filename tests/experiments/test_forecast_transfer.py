"""The forecast (through main.py) and transfer experiments end to end with their tiny configs,\nin this process: a second interpreter would import JAX, Flax and orbax again."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from experiments import forecast, transfer
from experiments import main as experiments_main
from experiments.configs import forecast as forecast_config
from experiments.configs import transfer as transfer_config
from tests.experiments.xla_settings import fast_compile

ROOT = Path(__file__).resolve().parents[2]


def _main(config: str, workdir: Path, *overrides: str) -> str:
    """``python -m experiments.main`` in this process (its flags parsed as from the command line);
    returns what it printed."""
    argv = ["main", f"--config={ROOT / config}", f"--workdir={workdir}", *overrides]
    saved_argv, sys.argv = sys.argv, argv  # config_flags reads the overrides from sys.argv
    out = io.StringIO()
    try:
        flags.FLAGS(argv)
        with fast_compile(), contextlib.redirect_stdout(out):
            experiments_main.main(argv[:1])
    finally:
        sys.argv = saved_argv
        flags.FLAGS.unparse_flags()
    return out.getvalue()


def _files(workdir: Path, plots: list[str], parts: list[str]) -> dict:
    for name in ["config.json", "results.json", *plots]:
        assert (workdir / name).is_file(), name
    for part in parts:  # one seqjax.train.fit workdir per model or phase
        assert (workdir / part / "metrics.jsonl").is_file(), part
        assert (workdir / part / "checkpoints").is_dir(), part
    return json.loads((workdir / "results.json").read_text())


def test_forecast_tiny_end_to_end(tmp_path):
    out = _main(
        "experiments/configs/forecast.py:tiny", tmp_path, "--config.models=stateful_lstm,cnn"
    )
    results = _files(tmp_path, ["forecasts.png", "validation.png"], ["stateful_lstm", "cnn"])
    assert set(results["models"]) == {"persistence", "linear_ar", "stateful_lstm", "cnn"}
    for entry in results["models"].values():
        assert entry["test"]["rmse"] > 0 and entry["test"]["mae"] > 0
        assert isinstance(entry["beats_persistence"], bool)
    assert "persistence" in out and "forecasts.png" in out
    for name in ("stateful_lstm", "cnn"):
        assert 1 <= results["models"][name]["best_epoch"] <= 2  # tiny: two epochs
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["models"] == "stateful_lstm,cnn"


def test_forecast_price_mapping_and_ar_baseline():
    config = forecast_config.get_config("tiny")
    data = forecast.load(config)
    data["transform"] = config.data.transform
    times = np.arange(data["splits"]["test"].start, data["splits"]["test"].stop)
    exact = data["scaler"].transform(np.diff(np.log(data["raw"]))[times - 1])
    np.testing.assert_allclose(forecast.to_price(data, times, exact), data["raw"][times], rtol=1e-5)
    zero_return = data["scaler"].transform(np.zeros(len(times)))
    np.testing.assert_allclose(
        forecast.to_price(data, times, zero_return), data["raw"][times - 1], rtol=1e-6
    )  # = persistence
    # The AR fit recovers an AR(2) process.
    rng = np.random.default_rng(0)
    z = np.zeros(3000)
    for t in range(2, 3000):
        z[t] = 0.5 * z[t - 1] - 0.3 * z[t - 2] + 0.1 * rng.normal()
    pred = forecast.ar_fit_predict(z, 2, np.arange(2, 2500), np.arange(2500, 3000))
    assert np.sqrt(np.mean((pred - z[2500:]) ** 2)) < 0.11
    with pytest.raises(ValueError, match="unknown model"):
        config.models = "arima"
        forecast.model_names(config)


def test_transfer_tiny_end_to_end(tmp_path):
    with fast_compile():
        transfer.run(transfer_config.get_config("tiny"), str(tmp_path))
    results = _files(tmp_path, ["transfer.png"], ["pretrain", "head", "finetune"])
    out = transfer.summary(results)
    assert results["finetune"]["learning_rate"] == 1e-5
    assert results["head"]["frozen"] > results["head"]["trainable"] > 0
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    assert "fine-tune" in out
    assert transfer_config.get_config().transfer.finetune_lr == 1e-5

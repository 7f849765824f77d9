"""The stateful-vs-windowed forecasting study: its tiny config end to end (resumed without
training again), strict row specs, and the burn-in evaluation against windowed passes."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import forecast, forecast_study
from experiments.configs import forecast as forecast_config
from experiments.configs import forecast_study as study_config
from seqjax.nn import LSTM
from seqjax.train import SequenceModel


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    config = study_config.get_config("tiny")
    jax.config.update("jax_disable_most_optimizations", True)  # a few steps: compile fast
    try:
        results = forecast_study.run(config, str(workdir))
    finally:
        jax.config.update("jax_disable_most_optimizations", False)
    return config, workdir, results


def test_tiny_study_end_to_end(tiny_study):
    config, workdir, results = tiny_study
    assert list(results["rows"]) == ["steps_75", "lr_3e-3", "windowed"]
    stateful = results["rows"]["steps_75"]
    assert set(stateful["ratios"]) == {"reported", "burn_in=0", "burn_in=20", "last"}
    assert set(results["rows"]["windowed"]["ratios"]) == {"reported", "last"}
    for name, row in results["rows"].items():
        assert len(row["per_seed"]["reported"]) == 2
        stats = row["ratios"]["reported"]
        assert stats["min"] <= stats["mean"] <= stats["max"]
        assert stats["mean"] == pytest.approx(np.mean(row["per_seed"]["reported"]))
        for seed in range(2):
            record = json.loads((workdir / name / f"seed{seed}.json").read_text())
            assert record["seed"] == seed and record["spec"] == config.study.specs[name]
            assert (workdir / name / f"seed{seed}" / "metrics.jsonl").is_file()
    # Adam steps = batches per epoch x epochs, counted from the layout (tiny: 4 streams x 20
    # steps over the 674 training inputs: 8 batches; windows: 655 // 64 = 10), 2 epochs.
    assert stateful["adam_steps"] == 8 * 2
    assert results["rows"]["windowed"]["adam_steps"] == 10 * 2
    # The learning rate override reached the optimiser: another model than the shipped one.
    assert results["rows"]["lr_3e-3"]["per_seed"]["reported"] != stateful["per_seed"]["reported"]
    # Seeds differ.
    assert len(set(stateful["per_seed"]["reported"])) == 2
    table = forecast_study.summary(results)
    assert "| steps_75 | `stateful_lstm:` | 16 |" in table
    assert (workdir / "study.png").is_file()


def test_tiny_study_row_is_the_forecast_experiment(tiny_study):
    """The row ``steps_75`` at seed 0 scores what ``forecast.run`` reports for the same config."""
    config, _, results = tiny_study
    base = forecast_study.row_config(config.base, "stateful_lstm", {}, seed=0)
    import tempfile

    jax.config.update("jax_disable_most_optimizations", True)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            shipped = forecast.run(base, workdir)
    finally:
        jax.config.update("jax_disable_most_optimizations", False)
    ratio = shipped["models"]["stateful_lstm"]["rmse_vs_persistence"]
    assert results["rows"]["steps_75"]["per_seed"]["reported"][0] == pytest.approx(ratio, rel=1e-5)


def test_tiny_study_resumes_without_training(tiny_study, monkeypatch):
    config, workdir, results = tiny_study

    def no_training(*args, **kwargs):
        raise AssertionError("a finished (row, seed) was trained again")

    monkeypatch.setattr(forecast, "fit_model", no_training)
    again = forecast_study.run(config, str(workdir))
    assert again["rows"] == results["rows"]
    changed = study_config.get_config("tiny")
    changed.study.specs["steps_75"] = "stateful_lstm: stateful.epochs=3"
    with pytest.raises(ValueError, match="holds spec 'stateful_lstm:'"):
        forecast_study.run(changed, str(workdir))


def test_row_specs_are_strict():
    base = forecast_config.get_config("sunspots")
    model, overrides = forecast_study.parse_spec(
        "stateful_lstm: stateful.batch_size=1 stateful.learning_rate=3e-3", base
    )
    assert model == "stateful_lstm"
    assert overrides == {"stateful.batch_size": 1, "stateful.learning_rate": 3e-3}
    with pytest.raises(ValueError, match="unknown model 'gru'"):
        forecast_study.parse_spec("gru: train.epochs=3", base)
    with pytest.raises(ValueError, match="no config key 'stateful.epoch'"):
        forecast_study.parse_spec("stateful_lstm: stateful.epoch=3", base)
    with pytest.raises(ValueError, match="no config key 'nothing.epochs'"):
        forecast_study.parse_spec("stateful_lstm: nothing.epochs=3", base)
    with pytest.raises(ValueError, match="is not an int"):
        forecast_study.parse_spec("stateful_lstm: stateful.epochs=2.5", base)
    with pytest.raises(ValueError, match="is not a float"):
        forecast_study.parse_spec("stateful_lstm: train.learning_rate=fast", base)
    with pytest.raises(ValueError, match="expected key=value"):
        forecast_study.parse_spec("stateful_lstm: stateful.epochs", base)
    config = forecast_study.row_config(base, model, overrides, seed=4)
    assert (config.models, config.seed, config.stateful.batch_size) == ("stateful_lstm", 4, 1)
    assert base.stateful.batch_size == 8  # the base is not modified


def test_every_shipped_spec_parses_and_rows_are_checked():
    config = study_config.get_config()
    assert forecast_study.row_names(config) == list(study_config.SPECS)
    for spec in config.study.specs.values():
        forecast_study.parse_spec(spec, config.base)
    config.study.rows = "steps_75,nonsense"
    with pytest.raises(ValueError, match="no spec for row 'nonsense'"):
        forecast_study.row_names(config)
    config.study.rows = "steps_75,steps_75"
    with pytest.raises(ValueError, match="names a row twice"):
        forecast_study.row_names(config)
    with pytest.raises(ValueError, match=r"unknown config variant 'tnyi'; valid: tiny"):
        study_config.get_config("tnyi")


def test_stateful_predictions_burn_in_equals_a_window():
    """A pass with burn-in ``N`` predicts target ``t + k`` from the ``N + k + 1`` inputs before
    it, from a zero carry: the same as the model applied to that window alone."""
    model = SequenceModel(LSTM(4), output_features=1)
    z = np.random.default_rng(0).normal(size=40).astype(np.float32)
    params = model.init(jax.random.key(0), jnp.zeros((1, 5, 1)))["params"]

    def window_last(lo, hi):  # the prediction after the inputs z[lo:hi], from zeros
        return float(
            model.apply({"params": params}, jnp.asarray(z[lo:hi])[None, :, None])[1][0, -1, 0]
        )

    times = np.arange(25, 32)
    for burn_in in (0, 3, 10):
        got = forecast.stateful_predictions(model, params, z, times, burn_in)
        start = times[0] - 1 - burn_in
        want = [window_last(start, t) for t in times]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    whole = forecast.stateful_predictions(model, params, z, times)
    want = [window_last(0, t) for t in times]
    np.testing.assert_allclose(whole, want, rtol=1e-5, atol=1e-6)
    # A burn-in longer than the history is the whole history.
    longer = forecast.stateful_predictions(model, params, z, times, burn_in=100)
    np.testing.assert_allclose(longer, whole, rtol=0, atol=0)


def test_docstring_examples_run():
    import doctest

    failures, tried = doctest.testmod(forecast_study, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert tried >= 2 and failures == 0


def test_stateful_epochs_default_to_the_windowed_models_updates():
    config = forecast_config.get_config("tiny")
    data = forecast.load(config)
    data["transform"] = config.data.transform
    wins = forecast.window_data(data, config.data.window)
    windowed_per_epoch = len(wins["train"][0]) // config.train.batch_size
    assert forecast.epochs_of("lstm", config, data, wins) == config.train.epochs
    assert forecast.epochs_of("stateful_lstm", config, data, wins) == 2  # tiny pins it
    config.stateful.epochs = 0  # the default: the windowed models' updates, rounded up
    train, _ = forecast.training_source("stateful_lstm", config, data, wins)
    per_epoch = train["inputs"].shape[0]
    epochs = forecast.epochs_of("stateful_lstm", config, data, wins)
    assert (epochs - 1) * per_epoch < config.train.epochs * windowed_per_epoch <= epochs * per_epoch
    assert forecast_config.get_config().stateful.epochs == 0
    assert forecast_config.get_config("sunspots").stateful.epochs == 0


def test_train_burn_in_masks_the_first_steps_of_every_stream():
    config = forecast_config.get_config("tiny")  # 4 streams x 20 steps
    data = forecast.load(config)
    data["transform"] = config.data.transform
    wins = forecast.window_data(data, config.data.window)
    plain, _ = forecast.training_source("stateful_lstm", config, data, wins)
    assert "mask" not in plain
    config.stateful.train_burn_in = 25  # all of the first part, 5 steps of the second
    train, _ = forecast.training_source("stateful_lstm", config, data, wins)
    mask = train["mask"]
    assert mask.shape == train["inputs"].shape[:3]
    assert (mask[0] == 0).all() and (mask[1, :, :5] == 0).all()
    assert (mask[1, :, 5:] == 1).all() and (mask[2:] == 1).all()
    config.stateful.drop = "middle"
    with pytest.raises(ValueError, match="stateful.drop must be 'end' or 'start'"):
        forecast.training_source("stateful_lstm", config, data, wins)

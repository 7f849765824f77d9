"""The adding-problem study (experiments/adding_study.py): the tiny study end to end, resume, the
stopping rule, the search's choice, the GRU's update-gate initialisation and the config variants."""

from __future__ import annotations

import itertools
import json

import jax
import numpy as np
import pytest

from experiments import adding_study
from experiments.adding_study import Cell
from experiments.configs import adding_study as study_config


def _tiny(**changes):
    config = study_config.get_config("tiny,seeds=1")
    config.lengths = "12"
    config.budgets = "12:40"
    config.search.length = 12
    config.diagnostics.lengths = "12"
    config.models = "lstm_chrono"
    config.search.learning_rates = "3e-3"
    config.train.chunk_steps = 40
    for key, value in changes.items():
        parent = config
        *path, last = key.split(".")
        for part in path:
            parent = parent[part]
        parent[last] = value
    return config


def test_tiny_study_runs_end_to_end_and_a_second_run_skips_the_finished_cells(tmp_path):
    config = _tiny()
    results = adding_study.run(config, str(tmp_path))
    # the grid (lstm_chrono) and the search (gru_chrono, srn), seed 0; the best settings are
    # search cells already run
    cells = {str(p.parent.relative_to(tmp_path)) for p in tmp_path.glob("T*/*/seed*/cell.json")}
    assert cells == {"T12/lstm_chrono/seed0", "T12/gru_chrono/seed0", "T12/srn/seed0"}
    assert results["pending"] == []
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == ["lstm_chrono", "gru_chrono", "srn"]
    assert saved["search"] == {
        "gru": {"model": "gru_chrono", "lr": 3e-3},
        "srn": {"model": "srn", "lr": 3e-3},
    }
    for row in saved["rows"]:
        assert row["seeds"] == [0] and row["budget_sequences"] == 40 * config.data.batch_size
        assert 0.0 <= row["solved_at_budget"]["mean"] <= 1.0
    lstm = json.loads((tmp_path / "T12/lstm_chrono/seed0/cell.json").read_text())
    assert lstm["status"] == "finished" and lstm["steps_trained"] == 40
    assert lstm["at_budget"]["test_count"] == config.data.test_size
    assert [r["step"] for r in lstm["curve"]] == [10, 20, 30, 40]
    assert len(lstm["gradient_by_lag"]["init"]) == 12  # seed 0 at a diagnostics length
    assert lstm["chunks"] == 1 and lstm["seconds"] > 0
    for name in ("results.md", "learning_curves_T12.png", "gradient_by_lag_T12.png"):
        assert (tmp_path / name).is_file()
    assert "| 12 | LSTM (chrono init, T_max=12) | 1 |" in (tmp_path / "results.md").read_text()

    sessions = (tmp_path / "T12/lstm_chrono/seed0/sessions.jsonl").read_text()
    again = adding_study.run(config, str(tmp_path))  # every cell finished: nothing trains
    assert (tmp_path / "T12/lstm_chrono/seed0/sessions.jsonl").read_text() == sessions
    assert again["rows"] == results["rows"]


def test_an_interrupted_cell_resumes_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    config = _tiny(**{"train.chunk_steps": 20})
    cell = Cell(12, "srn", config.train.learning_rate, 0)
    whole = adding_study.run_cell(cell, config, tmp_path / "whole", None)

    clock = itertools.chain([0.0], itertools.repeat(100.0))  # the deadline passes after a chunk
    monkeypatch.setattr(adding_study, "_now", lambda: next(clock))
    with pytest.raises(adding_study.OutOfTime, match="at step 20 of 40"):
        adding_study.run_cell(cell, config, tmp_path / "cut", 50.0)
    path = cell.path(tmp_path / "cut", config.train.learning_rate)
    assert not (path / "cell.json").exists()
    monkeypatch.setattr(adding_study, "_now", lambda: 0.0)
    resumed = adding_study.run_cell(cell, config, tmp_path / "cut", None)
    sessions = [json.loads(line) for line in (path / "sessions.jsonl").read_text().splitlines()]
    assert [(s["from_step"], s["to_step"]) for s in sessions] == [(0, 20), (20, 40)]
    assert resumed["chunks"] == 2 and resumed["steps_trained"] == 40
    assert resumed["at_budget"]["test_mse"] == pytest.approx(whole["at_budget"]["test_mse"])
    assert len(resumed["curve"]) == len(whole["curve"])
    for got, want in zip(resumed["curve"], whole["curve"], strict=True):
        assert got == pytest.approx(want)


def test_max_minutes_stops_the_study_between_cells_and_lists_the_pending(tmp_path, monkeypatch):
    config = _tiny(max_minutes=1.0, **{"train.chunk_steps": 20})
    clock = itertools.chain([0.0, 0.0], itertools.repeat(1000.0))  # start, one chunk, then late
    monkeypatch.setattr(adding_study, "_now", lambda: next(clock))
    results = adding_study.run(config, str(tmp_path))
    assert results["sitting"]["stopped_by_max_minutes"]
    assert [r["variant"] for r in results["rows"]] == []  # the first cell needs two chunks
    assert results["pending"][0] == {
        "T": 12,
        "variant": "lstm_chrono",
        "seed": 0,
        "steps_done": 20,
        "budget_steps": 40,
    }
    assert (
        "Pending (resumable by the same command): T=12 lstm_chrono seed 0 (20/40)"
        in (tmp_path / "results.md").read_text()
    )


def test_the_stopping_rule_scores_the_parameters_at_which_it_fired(tmp_path):
    # A stop set of 4 sequences at T=12: the rule fires well before the budget; the parameters
    # kept by fit (keep_best, monitor "solved") must be those of that evaluation.
    config = _tiny(
        **{
            "budgets": "12:600",
            "models": "lstm_chrono",
            "train.learning_rate": 1e-2,
            "train.chunk_steps": 600,
            "data.stop_size": 4,
            "data.eval_batch": 4,
            "data.batch_size": 32,
        }
    )
    info = adding_study.run_cell(Cell(12, "lstm_chrono", 1e-2, 0), config, tmp_path, None)
    stop = info["at_stop"]
    assert stop["fired"], info["curve"]
    first = next(r for r in info["curve"] if r["val_solved"] == 1.0)
    assert stop["step"] == first["step"] < 600 and stop["sequences"] == stop["step"] * 32
    assert "error" not in stop and stop["test_count"] == config.data.test_size
    # Scored on the same test set as at the budget, but other parameters: other figures.
    assert stop["test_mse"] != info["at_budget"]["test_mse"]


def test_stopping_step_on_constructed_histories():
    def record(step, solved, mse):
        return {"step": step, "val": {"solved": solved, "mse": mse}}

    history = [
        record(100, 0.5, 0.04),
        {"step": 200, "val": None},  # no validation pass
        record(300, 1.0, 0.02),  # all solved but the MSE condition fails
        record(400, 0.9995, 0.001),  # one wrong of 2,048
        record(500, 1.0, 0.0009),
        record(600, 1.0, 0.0001),
    ]
    assert adding_study.stopping_step(history) == 500
    assert adding_study.stopping_step(history[:5][:-1]) is None
    assert adding_study.stopping_step(history, max_mse=0.05) == 300
    assert adding_study.stopping_step([]) is None


def test_the_search_picks_its_best_setting_on_validation_figures(tmp_path):
    config = _tiny()
    config.search.gru = "gru,gru_chrono"
    config.search.learning_rates = "1e-3,1e-2"
    vals = {  # (model, lr): final validation (solved, mse); the test figures must not matter
        ("gru", 1e-3): (0.2, 0.03),
        ("gru", 1e-2): (0.9, 0.004),
        ("gru_chrono", 1e-3): (0.9, 0.002),
        ("gru_chrono", 1e-2): (0.5, 0.01),
    }
    cells = adding_study.search_cells(config, "gru")
    assert {(c.model, c.lr) for c in cells} == set(vals)
    for i, cell in enumerate(cells):
        path = cell.path(tmp_path, config.train.learning_rate)
        path.mkdir(parents=True)
        solved, mse = vals[(cell.model, cell.lr)]
        info = {"val_final": {"solved": solved, "mse": mse}, "at_budget": {"test_solved": i}}
        (path / "cell.json").write_text(json.dumps(info))
        last = i == len(cells) - 1
        best = adding_study.best_setting(config, tmp_path, "gru")
        assert best == (("gru_chrono", 1e-3) if last else None)  # None until all finished


def test_plan_follows_the_stated_priority_order(tmp_path):
    config = study_config.get_config()
    cells = adding_study.plan(config, tmp_path)
    lr = config.train.learning_rate
    assert cells[:5] == [
        Cell(100, "lstm_chrono", lr, 0),
        Cell(100, "lstm_fb1", lr, 0),
        Cell(100, "gru", lr, 0),
        Cell(100, "srn", lr, 0),
        Cell(500, "lstm_chrono", lr, 0),
    ]
    assert cells[11] == Cell(1000, "srn", lr, 0)
    search = cells[12:22]  # (2 GRU + 2 SRN settings) x 3 lr, less the 2 defaults of the grid
    assert {c.length for c in search} == {100} and {c.seed for c in search} == {0}
    assert Cell(100, "gru_chrono", 1e-2, 0) in search
    assert all(c.seed > 0 for c in cells[22:]) and len(cells) == 22 + 2 * 12
    assert cells[22].length == 100 and cells[-1] == Cell(1000, "srn", lr, 2)
    assert [c.length for c in adding_study.plan(study_config.get_config("T=500"), tmp_path)] == [
        500
    ] * 12


def test_gru_update_gate_bias_is_chrono_split_over_both_biases():
    from seqjax.nn import GRU

    h, length = 4, 100
    layer = GRU(h, bias_init=adding_study._update_gate_bias(length))
    params = layer.init(jax.random.key(0), np.zeros((1, 3, 2), np.float32))["params"]
    total = np.asarray(params["bias"]) + np.asarray(params["recurrent_bias"])
    u = 1.0 + (length - 2.0) * (np.arange(h) + 0.5) / h  # independent: the chrono quantiles
    np.testing.assert_allclose(total[h : 2 * h], np.log(u), rtol=1e-6)
    np.testing.assert_array_equal(total[:h], 0.0)  # reset gate
    np.testing.assert_array_equal(total[2 * h :], 0.0)  # candidate
    assert 0.0 < total[h] < total[2 * h - 1] < np.log(length - 1)


def test_config_variants_and_strict_parsing():
    default = study_config.get_config()
    assert default.lengths == "100,500,1000" and default.seeds == 3
    assert adding_study.budgets(default) == {100: 3000, 500: 5000, 1000: 6000}
    assert study_config.get_config("T=500").lengths == "500"
    assert study_config.get_config("T=1000").lengths == "1000"
    assert study_config.get_config("seeds=5,max_minutes=2.5").max_minutes == 2.5
    assert study_config.get_config("tiny") != default
    with pytest.raises(ValueError, match="the study's lengths are 100,500,1000"):
        study_config.get_config("T=200")
    with pytest.raises(ValueError, match=r"unknown config variant 'tnyi'; valid: .*tiny"):
        study_config.get_config("tnyi")
    with pytest.raises(ValueError, match="given twice"):
        study_config.get_config("T=500,T=500")
    bad = study_config.get_config()
    bad.models = "lstm_chrono,transformer"
    with pytest.raises(ValueError, match="unknown model 'transformer'"):
        adding_study.check_models(bad)
    bad = study_config.get_config()
    bad.budgets = "100:3000,500:5050,1000:6000"
    with pytest.raises(ValueError, match="multiples of eval_every"):
        adding_study.budgets(bad)


def test_a_best_setting_runs_at_longer_lags_only_if_it_solved_the_search_length(tmp_path):
    config = study_config.get_config()
    lr = config.train.learning_rate
    for family, (best, solved) in {
        "gru": (("gru_chrono", 1e-2), 0.9),
        "srn": (("srn", 1e-3), 0.2),
    }.items():
        for cell in adding_study.search_cells(config, family):
            path = cell.path(tmp_path, lr)
            path.mkdir(parents=True)
            value = solved if (cell.model, cell.lr) == best else 0.1
            info = {"val_final": {"solved": value, "mse": 0.03}}
            (path / "cell.json").write_text(json.dumps(info))
    cells = adding_study.plan(config, tmp_path)
    assert Cell(500, "gru_chrono", 1e-2, 0) in cells and Cell(1000, "gru_chrono", 1e-2, 2) in cells
    assert Cell(100, "srn", 1e-3, 2) in cells  # seeds at the search's T either way
    assert Cell(500, "srn", 1e-3, 0) not in cells  # failed at T=100: not run at T=500
    # The cheap seeds at T=100 come before the best settings at the longer T.
    assert cells.index(Cell(100, "srn", lr, 2)) < cells.index(Cell(500, "gru_chrono", 1e-2, 0))


def test_the_docstring_examples_run():
    import doctest

    result = doctest.testmod(adding_study, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0

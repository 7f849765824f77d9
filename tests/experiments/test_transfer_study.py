"""The transfer label-budget study (experiments/transfer_study.py, ``transfer.py:study``): the
tiny study end to end, the label budgets, resuming, and the frozen backbone left bit-identical."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from experiments import transfer, transfer_study  # noqa: E402
from experiments.configs import transfer as transfer_config  # noqa: E402
from experiments.workdir import Workdir  # noqa: E402
from tests.experiments.xla_settings import fast_compile  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    config = transfer_config.get_config("study,tiny")
    with fast_compile():
        results = transfer.run(config, str(workdir))
    return config, workdir, results


def test_tiny_study_end_to_end(tiny):
    config, workdir, results = tiny
    assert results["complete"] and results["study"]
    assert (workdir / "results.json").is_file() and (workdir / "transfer_study.png").is_file()
    assert set(results["table"]) == {"2", "0"}
    for row in results["table"].values():
        assert set(row) == {*transfer_study.METHODS, "random_probe"}
        for entry in row.values():
            assert entry["n"] == config.study.seeds and 0.0 <= entry["mean"] <= 1.0
    assert len(results["cells"]) == 2 * 5 * config.study.seeds
    for cell in results["cells"]:
        grid = config.study.lrs[cell["method"]]
        assert set(cell["runs"]) == {f"{lr:g}" for lr in grid}
        assert cell["selected_lr"] in grid
        for run in cell["runs"].values():  # every fit of the grid kept its files
            assert np.isfinite(run["val_loss"])
        workdirs = list(
            (workdir / "cells").glob(
                f"k{cell['k']}/seed{cell['seed']}/{cell['method']}/lr*/metrics.jsonl"
            )
        )
        assert len(workdirs) == len(grid)
        if cell["method"] in ("probe", "head", "random_probe"):
            assert all(
                r["frozen_unchanged"] and r["batch_stats_unchanged"] for r in cell["runs"].values()
            )
    assert set(results["finetune_1e-5"]) == {"2", "0"}
    assert 0 < results["source"]["heldout_images"] and 0 <= results["source"]["heldout_accuracy"]
    out = transfer.summary(results)
    assert "linear probe" in out and "all (6)" in out and "1e-5" in out


def test_label_budgets_give_exactly_k_per_class_disjoint_from_val_and_test():
    config = transfer_config.get_config("study")
    data = transfer_study.study_data(config)
    index = data["index"]
    test, pool = index["target"]["test"], index["target"]["pool"]
    labels = np.concatenate([data["target"]["test"][1], data["target"]["pool"][1]])
    assert np.bincount(data["target"]["test"][1]).tolist() == [80] * 5
    assert len(np.intersect1d(test, pool)) == 0 and len(labels) == 896  # all of digits 5-9
    source = np.concatenate(list(index["source"].values()))
    assert len(np.unique(source)) == len(source) == 901  # held-out never trained on
    assert len(np.intersect1d(source, np.concatenate([test, pool]))) == 0
    pool_labels = data["target"]["pool"][1]
    for k in (5, 20, 50, 0):
        for seed in (0, 1):
            train, val = transfer_study.budget_indices(pool_labels, k, seed)
            v = transfer_study.val_per_class(k, pool_labels)
            assert len(np.intersect1d(train, val)) == 0
            assert np.bincount(pool_labels[val]).tolist() == [v] * 5
            if k:
                assert np.bincount(pool_labels[train]).tolist() == [k - v] * 5
            else:
                assert len(train) + len(val) == len(pool_labels)
            # pool positions -> digit indices: never a test image
            assert len(np.intersect1d(pool[np.concatenate([train, val])], test)) == 0
    assert transfer_study.val_per_class(5, pool_labels) == 1
    a = transfer_study.budget_indices(pool_labels, 20, 3)
    b = transfer_study.budget_indices(pool_labels, 20, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_frozen_backbone_and_batch_stats_stay_bit_identical(tiny):
    """Independently of the cells' own flags: the finished fits restored from their workdirs."""
    config, workdir, _ = tiny
    data = transfer_study.study_data(config)
    backbone, _ = transfer_study.train_source(config, data, Workdir(workdir), log=lambda _: None)
    pool = data["target"]["pool"]
    train, val, _ = transfer_study.label_budget(pool, 2, 0)
    splits = {"train": train, "val": val, "test": data["target"]["test"]}
    cell = workdir / "cells" / "k2" / "seed0"
    for method in ("probe", "head"):
        record = json.loads((cell / f"{method}.json").read_text())
        for lr in config.study.lrs[method]:
            model, variables, frozen = transfer_study._start(
                config, method, backbone, train[0][:1], 0
            )
            state = transfer_study._fit(
                model,
                variables,
                lambda step: transfer_study.cycled_batch(
                    train, config.transfer.batch_size, 0, step
                ),
                steps=record["steps"],
                evals=config.study.evals,
                optimizer=transfer_study._adam(lr),
                workdir=cell / method / f"lr{lr:g}",
                val=val,
                test=None,
                frozen=frozen,
                seed=0,
            ).state
            assert int(state.step) == record["steps"]  # restored, finished
            for a, b in zip(
                jax.tree.leaves(backbone),
                jax.tree.leaves(
                    {
                        "params": state.params["backbone"],
                        "batch_stats": state.batch_stats["backbone"],
                    }
                ),
                strict=True,
            ):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            head_after = jax.tree.leaves(state.params["head"])
            head_before = jax.tree.leaves(variables["params"]["head"])
            assert any(
                not np.array_equal(a, b) for a, b in zip(head_before, head_after, strict=True)
            )
    head = json.loads((cell / "head.json").read_text())
    start = transfer_study._restore_head(
        config, 2, 0, splits, backbone, cell / "head", head["selected_lr"]
    )
    finetune = json.loads((cell / "finetune.json").read_text())
    assert all(r["batch_stats_unchanged"] for r in finetune["runs"].values())
    np.testing.assert_array_equal(
        np.asarray(start["batch_stats"]["backbone"]["Conv_1_bn"]["mean"]),
        np.asarray(backbone["batch_stats"]["Conv_1_bn"]["mean"]),
    )


def test_resume_skips_finished_cells_and_max_minutes_stops(tiny, monkeypatch):
    config, workdir, first = tiny
    calls = []
    real_fit = transfer_study.fit

    def counting_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        if "cells" in str(kwargs["workdir"]):
            calls.append((str(kwargs["workdir"]), int(result.state.step)))
        return result

    monkeypatch.setattr(transfer_study, "fit", counting_fit)
    before = {p: p.read_text() for p in (workdir / "cells").glob("k*/seed*/*.json")}
    with fast_compile():
        again = transfer.run(config, str(workdir))
        assert calls == [] and again["cells_trained_this_session"] == 0
        assert again["table"] == first["table"]

        more = transfer_config.get_config("study,tiny")
        more.study.seeds_by_budget = (2, 2)  # budgets (2, 0): one more seed each
        more.study.max_minutes = 1e-9  # past already: stops before its first cell
        stopped = transfer.run(more, str(workdir))
        assert not stopped["complete"] and stopped["cells_trained_this_session"] == 0

        more.study.max_minutes = 0.0
        done = transfer.run(more, str(workdir))
    assert done["complete"] and done["cells_trained_this_session"] == 10
    assert {c["seed"] for c in done["cells"]} == {0, 1}
    assert all("seed1" in path for path, _ in calls)  # seed 0's cells never trained again
    assert {p: p.read_text() for p in before} == before
    assert all(entry["n"] == 2 for row in done["table"].values() for entry in row.values())


def test_the_random_probe_control_starts_from_a_random_backbone(tiny):
    config, workdir, results = tiny
    data = transfer_study.study_data(config)
    backbone, _ = transfer_study.train_source(config, data, Workdir(workdir), log=lambda _: None)
    example = data["target"]["pool"][0][:1]
    _, variables, frozen = transfer_study._start(config, "random_probe", backbone, example, 0)
    kernel = variables["params"]["backbone"]["Conv_1"]["kernel"]
    assert not np.array_equal(kernel, backbone["params"]["Conv_1"]["kernel"])
    assert float(variables["batch_stats"]["backbone"]["Conv_1_bn"]["var"].min()) == 1.0
    assert all(jax.tree.leaves(frozen["backbone"])) and not any(jax.tree.leaves(frozen["head"]))
    bad = transfer_config.get_config("study,tiny")
    bad.study.seeds_by_budget = (3,)
    with pytest.raises(ValueError, match="one count per budget"):
        transfer_study.seeds_per_budget(bad)
    bad.study.seeds_by_budget = (3, 1)
    assert transfer_study.seeds_per_budget(bad) == {2: 3, 0: 1}
    bad.study.controls = ("random_head",)
    with pytest.raises(ValueError, match="unknown study.controls"):
        transfer_study.methods(bad)


def test_feature_spectrum_and_diagnostics(tiny):
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(8, 8)))[0][:, :4]  # 4 orthonormal directions
    features = rng.normal(size=(50000, 4)) * [3.0, 3.0, 3.0, 3.0] @ basis.T + 5.0
    got = transfer_study.spectrum(features)
    assert got["participation_ratio"] == pytest.approx(4.0, rel=0.02)
    assert got["total_variance"] == pytest.approx(36.0, rel=0.02)
    assert transfer_study.spectrum(np.ones((10, 3)))["participation_ratio"] == 0.0
    _, _, results = tiny
    assert set(results["features"]) == {
        f"{w}, {t}" for w in ("pretrained", "random") for t in ("source", "target")
    }
    for entry in results["features"].values():
        assert 0 <= entry["active_channels"] <= entry["channels"] == 1280
        assert 0.0 <= entry["participation_ratio"] <= 1280


def test_study_variant_parsing_is_strict():
    with pytest.raises(ValueError, match="unknown config variant 'stduy'"):
        transfer_config.get_config("stduy")
    assert transfer_config.get_config("study").study.enabled
    assert not transfer_config.get_config("").study.enabled
    assert transfer_config.get_config("study").study.lrs.finetune[0] == 1e-5

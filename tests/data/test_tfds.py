import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")
pytest.importorskip("importlib_resources")

import tensorflow_datasets as tfds  # noqa: E402

import seqjax.data.tfds_builders as sb  # noqa: E402
from seqjax.data import load_series, source_minibatches, source_series  # noqa: E402

REAL = {
    "seqjax_msft": ("msft", "pmdarima", "D"),
    "seqjax_sunspots/monthly": ("sunspots_monthly", "pmdarima", "M"),
    "seqjax_sunspots/yearly": ("sunspots_yearly", "statsmodels", "Y"),
    "seqjax_co2": ("co2", "statsmodels", "D"),
    "seqjax_nile": ("nile", "statsmodels", "Y"),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")


@pytest.mark.parametrize("name", list(REAL))
def test_real_builder_builds_and_reads_back_exactly(name, data_dir):
    dataset, package, unit = REAL[name]
    pytest.importorskip(package)
    sources = sb.build(name, data_dir)
    assert set(sources) == {"train"} and len(sources["train"]) == 1
    expected = load_series(dataset)
    (values,) = source_series(sources["train"], "values")
    assert values.shape == expected.values.shape and values.dtype == np.float64
    np.testing.assert_array_equal(values, expected.values)  # float64 exact, NaN kept
    time = sources["train"][0]["time"].astype(f"datetime64[{unit}]")
    np.testing.assert_array_equal(time, expected.time)
    # registered by seqjax: found by name in the same data_dir, array_record on disk
    again = tfds.data_source(name, data_dir=str(data_dir), split="train")
    np.testing.assert_array_equal(again[0]["values"], expected.values)
    assert list(data_dir.rglob("*.array_record*"))


def test_adding_problem_builder(data_dir):
    config = sb.AddingProblemConfig(name="t20_small", length=20, num_train=40, num_test=12)
    sources = sb.build("seqjax_adding_problem", data_dir, config=config)
    assert len(sources["train"]) == 40 and len(sources["test"]) == 12
    batches = list(
        source_minibatches(
            sources["train"],
            16,
            features={"inputs": "inputs", "targets": "target"},
            sequence_features=("inputs",),
            pad_to=22,
        )
    )
    assert len(batches) == 3
    b = batches[0]
    assert b["inputs"].shape == (16, 22, 2) and b["inputs"].dtype == np.float32
    lengths = b["seq_lengths"]
    assert ((lengths >= 20) & (lengths <= 22)).all()
    markers, values = b["inputs"][..., 1], b["inputs"][..., 0]
    assert ((markers == 1.0).sum(axis=1) == 2).all()
    np.testing.assert_array_equal(markers[np.arange(16), lengths - 1], -1.0)
    sums = np.where(markers == 1.0, values, 0).sum(axis=1)
    np.testing.assert_allclose(b["targets"], 0.5 + sums / 4, rtol=1e-6)
    assert {"t100", "t500", "t1000"} <= {c.name for c in sb.SeqjaxAddingProblem.BUILDER_CONFIGS}


def test_builders_are_listed():
    assert set(REAL) <= set(sb.BUILDERS)
    for name in sb.BUILDERS:  # registered by importing seqjax.data.tfds_builders
        assert tfds.builder_cls(name.split("/")[0]).__module__.startswith("seqjax.data.")


def test_build_and_read_without_tensorflow(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys

        class HideTensorFlow:  # as if TensorFlow were not installed, even if it is
            def __init__(self, finder):
                self.finder = finder

            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow":
                    return None
                return self.finder.find_spec(name, path, target)

            def __getattr__(self, attr):
                return getattr(self.finder, attr)

        sys.meta_path[:] = [HideTensorFlow(f) for f in sys.meta_path]
        import tensorflow_datasets as tfds
        import seqjax.data.tfds_builders as sb
        cfg = sb.AddingProblemConfig(name="tiny", length=11, num_train=8, num_test=4)
        src = sb.build("seqjax_adding_problem", {str(tmp_path)!r}, config=cfg)["test"]
        assert len(src) == 4 and src[0]["inputs"].shape[1] == 2
        builder = tfds.builder("seqjax_adding_problem", config=cfg, data_dir={str(tmp_path)!r})
        assert len(builder.as_data_source()["train"]) == 8
        assert "tensorflow" not in sys.modules
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")


def test_missing_extra_names_it(monkeypatch):
    import importlib

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    for mod in [m for m in sys.modules if m.startswith("seqjax.data.tfds_builders")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(ImportError, match=r"pip install 'seqjax\[tfds\]'"):
        importlib.import_module("seqjax.data.tfds_builders")

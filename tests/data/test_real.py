import sys

import numpy as np
import pytest

from seqjax.data import (
    REAL_DATASETS,
    chronological_split,
    load_co2,
    load_msft,
    load_series,
    load_sunspots,
    stateful_batches,
    windows,
)

EXPECTED = {
    "msft": ((7983, 5), "1986-03-13", "2017-11-10", 0),
    "sunspots_monthly": ((2820,), "1749-01", "1983-12", 0),
    "sunspots_yearly": ((309,), "1700", "2008", 0),
    "co2": ((2284,), "1958-03-29", "2001-12-29", 59),
    "nile": ((100,), "1871", "1970", 0),
}
NEEDS = {
    "msft": "pmdarima",
    "sunspots_monthly": "pmdarima",
    "sunspots_yearly": "statsmodels",
    "co2": "statsmodels",
    "nile": "statsmodels",
}


@pytest.mark.parametrize("name", REAL_DATASETS)
def test_real_dataset_loads_offline_with_documented_shape(name):
    pytest.importorskip(NEEDS[name])
    shape, first, last, nans = EXPECTED[name]
    series = load_series(name)
    assert series.name == name and len(series) == shape[0]
    assert series.values.shape == shape and series.values.dtype == np.float64
    assert series.time.shape == (shape[0],)
    assert str(series.time[0]) == first and str(series.time[-1]) == last
    assert (np.diff(series.time) > np.timedelta64(0)).all()
    assert int(np.isnan(series.values).sum()) == nans
    cols = 1 if len(shape) == 1 else shape[1]
    assert len(series.columns) == cols


def test_msft_close_through_the_pipeline():
    pytest.importorskip("pmdarima")
    msft = load_msft(columns=("Close",))
    assert msft.values.shape == (7983, 1)
    assert msft.values[-1, 0] == 83.87
    train, _, _ = chronological_split(msft.values)
    inputs, targets = stateful_batches(train, 1, 100, warn=False)
    assert inputs.shape == (59, 1, 100, 1)
    x, y = windows(train[:, 0], 30)
    assert x.shape == (len(train) - 30, 30)
    with pytest.raises(ValueError, match="columns must be a non-empty subset"):
        load_msft(columns=("Date",))


def test_co2_fill():
    pytest.importorskip("statsmodels")
    filled = load_co2(fill="linear")
    assert np.isfinite(filled.values).all()
    with pytest.raises(ValueError, match="NaN at index"):
        windows(load_co2().values, 10)


def test_sunspots_frequency():
    with pytest.raises(ValueError, match="frequency must be 'monthly' or 'yearly'"):
        load_sunspots("daily")
    with pytest.raises(ValueError, match="name must be one of"):
        load_series("airline")


@pytest.mark.parametrize(
    "loader, modules",
    [
        (load_msft, ["pmdarima", "pmdarima.datasets"]),
        (load_co2, ["statsmodels", "statsmodels.datasets", "statsmodels.datasets.co2"]),
    ],
)
def test_missing_extra_names_it(monkeypatch, loader, modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install 'seqjax\[datasets\]'"):
        loader()

"""Real series shipped inside pip packages: loaded offline, never downloaded.

These loaders need the optional extra ``seqjax[datasets]`` (pmdarima, statsmodels),
imported lazily: ``import seqjax.data`` works without them, and a loader called without
them raises an ``ImportError`` that names the extra.

======================  =====================  ============  ===================================
name                    loader                 ``values``    source
======================  =====================  ============  ===================================
``msft``                ``load_msft()``        ``[7983, 5]`` pmdarima: daily Microsoft prices
                                                             1986-03-13..2017-11-10, columns
                                                             Open, High, Low, Close, Volume
``sunspots_monthly``    ``load_sunspots()``    ``[2820]``    pmdarima: monthly sunspot numbers
                                                             1749-01..1983-12
``sunspots_yearly``     ``load_sunspots(       ``[309]``     statsmodels: yearly sunspot
                        "yearly")``                          activity 1700..2008
``co2``                 ``load_co2()``         ``[2284]``    statsmodels: weekly Mauna Loa CO2
                                                             1958-03-29..2001-12-29, **59 NaN**
``nile``                ``load_nile()``        ``[100]``     statsmodels: yearly Nile flow
                                                             volume 1871..1970
======================  =====================  ============  ===================================
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

import numpy as np

__all__ = [
    "REAL_DATASETS",
    "TimeSeries",
    "load_co2",
    "load_msft",
    "load_nile",
    "load_series",
    "load_sunspots",
]

REAL_DATASETS = ("msft", "sunspots_monthly", "sunspots_yearly", "co2", "nile")
MSFT_COLUMNS = ("Open", "High", "Low", "Close", "Volume")


@dataclasses.dataclass(frozen=True)
class TimeSeries:
    """A loaded real series.

    Attributes:
      name: dataset name (one of ``REAL_DATASETS``).
      values: ``[time]`` (one column) or ``[time, features]`` float64; may contain NaN
        (co2 only; fill with :func:`seqjax.data.interpolate_missing`).
      time: ``[time]`` ``numpy.datetime64`` time stamps (unit ``D``, ``M`` or ``Y``).
      columns: names of the value columns.
      frequency: ``"daily"``, ``"weekly"``, ``"monthly"`` or ``"yearly"``.
      source: the package function the data came from.
    """

    name: str
    values: np.ndarray
    time: np.ndarray
    columns: tuple[str, ...]
    frequency: str
    source: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def _require(module: str, caller: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0]
        raise ImportError(
            f"seqjax.data.{caller} needs the optional package {package!r}, which is not "
            f"installed: pip install 'seqjax[datasets]' (or pip install {package})"
        ) from e


def load_msft(columns: tuple[str, ...] = MSFT_COLUMNS) -> TimeSeries:
    """Daily Microsoft stock prices, 7,983 trading days (``pmdarima.datasets.load_msft``).

    The lecture's own example. ``values`` is ``[7983, len(columns)]`` float64 (default
    columns Open, High, Low, Close, Volume; the all-zero ``OpenInt`` is left out), ``time``
    ``datetime64[D]`` trading days from 1986-03-13 to 2017-11-10.

    Example:
        >>> from seqjax.data import load_msft
        >>> msft = load_msft()                                     # offline: the file pmdarima ships
        >>> msft.values.shape, msft.columns
        ((7983, 5), ('Open', 'High', 'Low', 'Close', 'Volume'))
        >>> str(msft.time[0]), str(msft.time[-1])
        ('1986-03-13', '2017-11-10')
    """
    datasets = _require("pmdarima.datasets", "load_msft")
    frame = datasets.load_msft()
    columns = tuple(columns)
    missing = [c for c in columns if c not in frame.columns or c == "Date"]
    if missing or not columns:
        raise ValueError(
            f"columns must be a non-empty subset of {MSFT_COLUMNS + ('OpenInt',)}, got {columns}"
        )
    values = frame.loc[:, list(columns)].to_numpy(dtype=np.float64)
    time = np.asarray(frame["Date"].to_numpy(dtype=str), dtype="datetime64[D]")
    return TimeSeries("msft", values, time, columns, "daily", "pmdarima.datasets.load_msft")


def load_sunspots(frequency: str = "monthly") -> TimeSeries:
    """Sunspot numbers.

    ``frequency="monthly"``: ``pmdarima.datasets.load_sunspots``, ``[2820]`` months from
    1749-01 to 1983-12 (``time`` ``datetime64[M]``). ``frequency="yearly"``:
    ``statsmodels.datasets.sunspots``, ``[309]`` years 1700..2008 (``datetime64[Y]``).

    Example:
        >>> from seqjax.data import load_sunspots
        >>> load_sunspots().values.shape, load_sunspots("yearly").values.shape
        ((2820,), (309,))
    """
    if frequency == "monthly":
        datasets = _require("pmdarima.datasets", "load_sunspots")
        values = np.asarray(datasets.load_sunspots(), dtype=np.float64)
        time = np.datetime64("1749-01", "M") + np.arange(values.shape[0])
        return TimeSeries(
            "sunspots_monthly",
            values,
            time,
            ("sunspots",),
            "monthly",
            "pmdarima.datasets.load_sunspots",
        )
    if frequency == "yearly":
        datasets = _require("statsmodels.datasets.sunspots", "load_sunspots")
        frame = datasets.load_pandas().data
        values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
        time = frame["YEAR"].to_numpy(dtype=np.int64).astype(str).astype("datetime64[Y]")
        return TimeSeries(
            "sunspots_yearly",
            values,
            time,
            ("SUNACTIVITY",),
            "yearly",
            "statsmodels.datasets.sunspots",
        )
    raise ValueError(f"frequency must be 'monthly' or 'yearly', got {frequency!r}")


def load_co2(fill: str | None = None) -> TimeSeries:
    """Weekly atmospheric CO2 at Mauna Loa, ``[2284]`` (``statsmodels.datasets.co2``).

    The raw series has 59 NaN (``fill=None``, the default, keeps them so the gaps stay
    visible); ``fill="linear"`` or ``"ffill"`` fills them with
    :func:`seqjax.data.interpolate_missing`. ``time`` is ``datetime64[D]``, 1958-03-29 to
    2001-12-29.

    Example:
        >>> import numpy as np
        >>> from seqjax.data import load_co2
        >>> co2 = load_co2()
        >>> co2.values.shape, int(np.isnan(co2.values).sum())     # weekly, with gaps
        ((2284,), 59)
        >>> int(np.isnan(load_co2(fill="linear").values).sum())
        0
    """
    datasets = _require("statsmodels.datasets.co2", "load_co2")
    frame = datasets.load_pandas().data
    values = frame["co2"].to_numpy(dtype=np.float64)
    if fill is not None:
        from seqjax.data.missing import interpolate_missing

        values = interpolate_missing(values, fill)
    time = frame.index.to_numpy().astype("datetime64[D]")
    return TimeSeries("co2", values, time, ("co2",), "weekly", "statsmodels.datasets.co2")


def load_nile() -> TimeSeries:
    """Yearly flow volume of the Nile at Aswan, ``[100]`` years 1871..1970
    (``statsmodels.datasets.nile``).

    Example:
        >>> from seqjax.data import load_nile
        >>> nile = load_nile()
        >>> nile.values.shape, nile.frequency
        ((100,), 'yearly')
    """
    datasets = _require("statsmodels.datasets.nile", "load_nile")
    frame = datasets.load_pandas().data
    values = frame["volume"].to_numpy(dtype=np.float64)
    time = frame["year"].to_numpy(dtype=np.int64).astype(str).astype("datetime64[Y]")
    return TimeSeries("nile", values, time, ("volume",), "yearly", "statsmodels.datasets.nile")


def load_series(name: str) -> TimeSeries:
    """Loads one of ``REAL_DATASETS`` by name (co2 with its NaN).

    Example:
        >>> from seqjax.data import REAL_DATASETS, load_series
        >>> sorted(REAL_DATASETS)
        ['co2', 'msft', 'nile', 'sunspots_monthly', 'sunspots_yearly']
        >>> load_series("nile").values.shape
        (100,)
    """
    loaders = {
        "msft": load_msft,
        "sunspots_monthly": lambda: load_sunspots("monthly"),
        "sunspots_yearly": lambda: load_sunspots("yearly"),
        "co2": load_co2,
        "nile": load_nile,
    }
    if name not in loaders:
        raise ValueError(f"name must be one of {REAL_DATASETS}, got {name!r}")
    return loaders[name]()

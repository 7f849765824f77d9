"""TFDS builders for the real series of :mod:`seqjax.data.real` (one record per series)."""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from seqjax.data import real

_HOMEPAGES = {
    "msft": "https://alkaline-ml.com/pmdarima/modules/datasets.html",
    "statsmodels": "https://www.statsmodels.org/stable/datasets/index.html",
}


class _RealSeriesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):  # type: ignore[call-arg]  # tfds is untyped: mypy sees object.__init_subclass__
    """One record holding a whole real series, split ``train``."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release, generated from the pip-shipped data."}
    HOMEPAGE = _HOMEPAGES["statsmodels"]

    def _load(self) -> real.TimeSeries:
        raise NotImplementedError

    def _time_unit(self) -> str:
        raise NotImplementedError

    def _value_shape(self) -> tuple[int | None, ...]:
        return (None,)

    def _info(self) -> tfds.core.DatasetInfo:
        unit = self._time_unit()
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "values": tfds.features.Tensor(
                        shape=self._value_shape(),
                        dtype=np.float64,
                        # bytes keep float64 exact (tf.train.Example floats are float32)
                        encoding=tfds.features.Encoding.BYTES,
                        doc="series values [time] or [time, features]",
                    ),
                    "time": tfds.features.Tensor(
                        shape=(None,),
                        dtype=np.int64,
                        doc=f"time stamps as datetime64[{unit}] counts since 1970",
                    ),
                }
            ),
            homepage=self.HOMEPAGE,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # nothing is downloaded: the data ships with pip packages
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        series = self._load()
        time = series.time.astype(f"datetime64[{self._time_unit()}]").astype(np.int64)
        yield 0, {"values": series.values, "time": time}


class SeqjaxMsft(_RealSeriesBuilder):
    """Daily Microsoft stock prices 1986-03-13..2017-11-10, 7,983 trading days, from
    ``pmdarima.datasets.load_msft``. ``values``: [7983, 5] (Open, High, Low, Close, Volume)."""

    HOMEPAGE = _HOMEPAGES["msft"]

    def _load(self):
        return real.load_msft()

    def _time_unit(self):
        return "D"

    def _value_shape(self):
        return (None, len(real.MSFT_COLUMNS))


class SeqjaxSunspots(_RealSeriesBuilder):
    """Sunspot numbers: ``monthly`` (pmdarima, 2,820 months from 1749-01) or ``yearly``
    (statsmodels, 309 years from 1700)."""

    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="monthly", description="pmdarima, 2,820 months"),
        tfds.core.BuilderConfig(name="yearly", description="statsmodels, 309 years"),
    ]

    def _load(self):
        return real.load_sunspots(self.builder_config.name)

    def _time_unit(self):
        return "M" if self.builder_config.name == "monthly" else "Y"


class SeqjaxCo2(_RealSeriesBuilder):
    """Weekly atmospheric CO2 at Mauna Loa 1958-03-29..2001-12-29, 2,284 weeks with 59 NaN
    kept as NaN, from ``statsmodels.datasets.co2``."""

    def _load(self):
        return real.load_co2()

    def _time_unit(self):
        return "D"


class SeqjaxNile(_RealSeriesBuilder):
    """Yearly Nile flow volume at Aswan 1871..1970, 100 years, from
    ``statsmodels.datasets.nile``."""

    def _load(self):
        return real.load_nile()

    def _time_unit(self):
        return "Y"

"""TensorFlow Datasets builders for seqjax's datasets, generated locally (no download).

Importing this package registers the builders with TFDS (it needs the optional extra
``seqjax[tfds]``: tensorflow-datasets, array_record and importlib_resources; TensorFlow is
**not** needed). The real-series builders also need ``seqjax[datasets]`` to generate.

- ``seqjax_msft``: one record, the whole series: ``values [7983, 5]`` float64 (Open,
  High, Low, Close, Volume) and ``time [7983]``.
- ``seqjax_sunspots/monthly`` and ``/yearly``: one record, ``values [2820]`` / ``[309]``.
- ``seqjax_co2``: one record, ``values [2284]`` (the 59 NaN are kept).
- ``seqjax_nile``: one record, ``values [100]``.
- ``seqjax_adding_problem/t100``, ``/t500``, ``/t1000``: one record per sequence,
  ``inputs [length, 2]`` float32 (unpadded), ``target`` float32, ``length`` int32; splits
  ``train`` (10,000) and ``test`` (2,560, as in the paper).

Real series have one split, ``"train"``, holding the whole series (one record): split it
chronologically after reading (:func:`seqjax.data.chronological_split`). ``time`` is
stored as int64 ``numpy.datetime64`` counts (unit in the feature's doc): recover it with
``record["time"].astype("datetime64[D]")`` (``[M]``/``[Y]`` for monthly/yearly series).

Example (the files are written as ``array_record`` and read back by random access)::

    import seqjax.data.tfds_builders as sb
    sources = sb.build("seqjax_msft", data_dir="/tmp/tfds")   # generate once, offline
    # later, anywhere: tfds.data_source("seqjax_msft", data_dir="/tmp/tfds", split="train")
    close = seqjax.data.source_series(sources["train"], "values")[0][:, 3]
"""

from __future__ import annotations

try:
    import tensorflow_datasets as tfds
except ImportError as e:  # pragma: no cover - exercised when the extra is missing
    raise ImportError(
        "seqjax.data.tfds_builders needs the optional packages tensorflow-datasets, "
        "array_record and importlib_resources (tfds 4.9.x on Python 3.11 needs the latter, "
        f"tensorflow/datasets#11212), which are not all installed ({e}): "
        "pip install 'seqjax[tfds]'"
    ) from e

from os import PathLike
from typing import Any

from seqjax.data.tfds_builders.adding_problem import AddingProblemConfig, SeqjaxAddingProblem
from seqjax.data.tfds_builders.real_series import (
    SeqjaxCo2,
    SeqjaxMsft,
    SeqjaxNile,
    SeqjaxSunspots,
)

__all__ = [
    "BUILDERS",
    "AddingProblemConfig",
    "SeqjaxAddingProblem",
    "SeqjaxCo2",
    "SeqjaxMsft",
    "SeqjaxNile",
    "SeqjaxSunspots",
    "build",
]

BUILDERS = (
    "seqjax_msft",
    "seqjax_sunspots/monthly",
    "seqjax_sunspots/yearly",
    "seqjax_co2",
    "seqjax_nile",
    "seqjax_adding_problem/t100",
    "seqjax_adding_problem/t500",
    "seqjax_adding_problem/t1000",
)


def build(
    name: str,
    data_dir: str | PathLike,
    *,
    config: tfds.core.BuilderConfig | None = None,
) -> dict[str, Any]:
    """Generates a seqjax dataset in ``data_dir`` (once; offline) and opens it.

    Args:
      name: a TFDS name from ``BUILDERS`` (``"name/config"``), or just the dataset name
        with ``config=`` a custom config (e.g. ``AddingProblemConfig(name="t50", ...)``).
      data_dir: where TFDS writes and finds the files (use a temporary dir in tests).

    Returns:
      ``{split: data_source}``: random-access ``array_record`` data sources (``len(src)``,
      ``src[i]`` -> dict of NumPy arrays), readable without TensorFlow.
    """
    kwargs: dict[str, Any] = {"data_dir": str(data_dir), "file_format": "array_record"}
    if config is not None:
        kwargs["config"] = config
    builder = tfds.builder(name, **kwargs)
    builder.download_and_prepare()
    return builder.as_data_source()

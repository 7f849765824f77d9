r"""The one entry point of the experiments: a config file, a workdir, overrides.

    python -m experiments.main --config=experiments/configs/long_range.py --workdir=runs/long_range
    python -m experiments.main --config=experiments/configs/long_range.py:tiny --workdir=/tmp/lr
    python -m experiments.main --config=experiments/configs/forecast.py \
        --config.model.hidden=64 --workdir=runs/forecast

The config file's ``get_config(arg)`` builds an ``ml_collections.ConfigDict`` whose ``experiment``
names the module under ``experiments/`` that runs it (``run(config, workdir) -> results``). Flags
are read here and nowhere else. A second run with the same workdir resumes from its checkpoints.
"""

from __future__ import annotations

import importlib
import json

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file (path[:arg])")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for config, metrics, plots, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])

EXPERIMENTS = (
    "long_range",
    "adding_study",
    "forecast",
    "forecast_study",
    "transfer",
    "online",
    "deploy",
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config = _CONFIG.value
    if config.experiment not in EXPERIMENTS:
        raise app.UsageError(f"config.experiment must be one of {EXPERIMENTS}")
    module = importlib.import_module(f"experiments.{config.experiment}")
    results = module.run(config, _WORKDIR.value)
    print()
    if hasattr(module, "summary"):
        print(module.summary(results))
    else:
        print(json.dumps(results, indent=2))
    print(f"\nresults: {_WORKDIR.value}/results.json")
    print("plots:   " + "\n         ".join(results.get("plots", [])))


if __name__ == "__main__":
    app.run(main)

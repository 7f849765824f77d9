r"""Stateful vs windowed LSTM on monthly sunspots: the factors behind the stateful model's score,
one at a time, several seeds each (``experiments/forecast_study.py``).

Command (all rows, 3 seeds; resumable: finished ``(row, seed)`` runs are read back)::

    python -m experiments.main --config=experiments/configs/forecast_study.py \
        --workdir=runs/forecast_study

A row is the forecast experiment ``forecast.py:sunspots`` as it was before this study
(``config.base``: the stateful LSTM trained for ``train.epochs`` = 15 epochs) with the overrides
of its spec; e.g. ``steps_480`` at seed 1 is ``python -m experiments.main
--config=experiments/configs/forecast.py:sunspots --config.models=stateful_lstm
--config.stateful.epochs=96 --config.seed=1`` (its ``reported`` column), and ``steps_75`` the
same with ``--config.stateful.epochs=15``.

Measured (2026-12-02, docs/results.md section 2; test RMSE / persistence, mean ± sd over seeds
0-2): 75 Adam steps (15 epochs, the set-up before) 1.125 ± 0.028; 480 steps (96 epochs, the
windowed LSTM's count) 0.965 ± 0.012 against the windowed LSTM's 0.973 ± 0.010; the windowed LSTM
held to 75 steps 1.105 ± 0.011: the gap was the number of updates. 25 rows x 3 seeds: 2,314 s of
training on 2 shared cores (load 2-11).

Variants (``get_config(arg)``): ``:tiny``, three rows on a short stretch with two seeds, seconds
(the tests use it). Overrides: ``--config.study.rows=steps_75,steps_480 --config.study.seeds=5``.

Updates per epoch on sunspots (2,114 training inputs): 8 streams x 50 steps: 5; 1 x 50: 42;
4 x 50: 10; 16 x 50: 2; 8 x 25: 10; 8 x 100: 2; 8 x 200: 1; windows of 50 in batches of 64: 32
(480 Adam steps in 15 epochs).
"""

import ml_collections

from experiments.configs import forecast, parse_arg

SPECS = {
    # the set-ups shipped before this study (base: 15 epochs each)
    "steps_75": "stateful_lstm:",
    "windowed": "lstm:",
    # the number of updates
    "steps_480": "stateful_lstm: stateful.epochs=96",
    "steps_1000": "stateful_lstm: stateful.epochs=200",
    "windowed_75steps": "lstm: train.batch_size=400",
    # the learning rate (75 steps)
    "lr_3e-3": "stateful_lstm: stateful.learning_rate=3e-3",
    "lr_1e-2": "stateful_lstm: stateful.learning_rate=1e-2",
    # streams, at ~480 steps
    "streams_1": "stateful_lstm: stateful.batch_size=1 stateful.epochs=11",
    "streams_4": "stateful_lstm: stateful.batch_size=4 stateful.epochs=48",
    "streams_16": "stateful_lstm: stateful.batch_size=16 stateful.epochs=240",
    # part length, at ~480 steps
    "part_25": "stateful_lstm: stateful.timesteps=25 stateful.epochs=48",
    "part_100": "stateful_lstm: stateful.timesteps=100 stateful.epochs=240",
    "part_200": "stateful_lstm: stateful.timesteps=200 stateful.epochs=480",
    # truncation inside a part (gradient depth 10), at 480 steps
    "trunc_10": "stateful_lstm: stateful.truncation=10 stateful.epochs=96",
    # layouts that leave 514 of the 2,114 training months out (16 x 2 x 50, 8 x 2 x 100,
    # 8 x 1 x 200 = 1,600): drop the oldest instead of the most recent
    "streams_16_drop_start": (
        "stateful_lstm: stateful.batch_size=16 stateful.epochs=240 stateful.drop=start"
    ),
    "part_100_drop_start": (
        "stateful_lstm: stateful.timesteps=100 stateful.epochs=240 stateful.drop=start"
    ),
    "drop_start_steps_480": "stateful_lstm: stateful.epochs=96 stateful.drop=start",
    # the cold start of every training stream left out of the loss (the first 20 months)
    "train_burn_in_20": "stateful_lstm: stateful.epochs=96 stateful.train_burn_in=20",
    "train_burn_in_20_drop_start": (
        "stateful_lstm: stateful.epochs=96 stateful.train_burn_in=20 stateful.drop=start"
    ),
    # the windowed LSTM given the same search (learning rate, updates)
    "windowed_lr_3e-3": "lstm: train.learning_rate=3e-3",
    "windowed_lr_1e-2": "lstm: train.learning_rate=1e-2",
    "windowed_1000steps": "lstm: train.epochs=31",
    # combinations
    "lr_3e-3_steps_480": "stateful_lstm: stateful.learning_rate=3e-3 stateful.epochs=96",
    "lr_1e-2_steps_480": "stateful_lstm: stateful.learning_rate=1e-2 stateful.epochs=96",
    "lr_3e-3_trunc_10_steps_480": (
        "stateful_lstm: stateful.learning_rate=3e-3 stateful.truncation=10 stateful.epochs=96"
    ),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False)  # unknown words raise
    c = ml_collections.ConfigDict()
    c.experiment = "forecast_study"
    c.base = forecast.get_config("tiny,sunspots" if words.tiny else "sunspots")
    c.base.stateful.epochs = c.base.train.epochs  # the set-up before this study: 15 epochs

    c.study = ml_collections.ConfigDict()
    c.study.specs = dict(SPECS)
    c.study.rows = ",".join(SPECS)  # in order; a subset or new specs by override
    c.study.seeds = 3
    c.study.burn_ins = (0, 50, 264)  # 264 >= a training stream (8 streams: 5 parts of 50 steps)
    if words.tiny:
        c.study.rows = "steps_75,lr_3e-3,windowed"
        c.study.seeds = 2
        c.study.burn_ins = (0, 20)
    return c

r"""Next-day forecasting of the daily Microsoft close price (1986-2017): stateful LSTM, LSTM and
SimpleRNN on windows, a 1D CNN over sliding windows of 50 days; persistence and linear AR.

Command (the defaults)::

    python -m experiments.main --config=experiments/configs/forecast.py --workdir=runs/forecast

Expected (measured through ``seqjax.train.fit``, seed 0, 798 test days 2014-09..2017-11):
persistence RMSE 0.713 USD, MAE 0.483; linear AR(10) 0.713; stateful LSTM 0.713 (99 epochs: as
many Adam steps as the windowed models), LSTM on windows 0.711, 1D CNN 0.713, SimpleRNN 0.717:
within 0.6% of persistence, i.e. a tie; daily returns are close to unpredictable (a finding, not
a bug). Run time: 1 min 27 s wall on 2 shared, loaded cores (load average 8).

Variants (``get_config(arg)``, comma-separated words after the colon):

- ``:tiny``: a few epochs on a short stretch, seconds (the tests use it).
- ``:sunspots``: monthly sunspot numbers 1749-1983 (a cyclic series where the models should
  beat persistence), on the level (``--workdir=runs/forecast_sunspots``): test RMSE / persistence
  0.905 (AR(24), CNN), 0.930 (SimpleRNN), 0.958 (stateful LSTM, 96 epochs), 0.965 (LSTM on
  windows). Why the stateful LSTM needs its own epochs: ``forecast_study.py``.
- ``:level``: the lecture's naive set-up, the standardised price itself as input and target
  (the test prices lie far above anything seen in training).

Overrides, e.g. ``--config.models=cnn,stateful_lstm --config.data.window=100
--config.train.epochs=40 --config.data.transform=diff``.
"""

import ml_collections

from experiments.configs import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False, sunspots=False, level=False)  # unknown words raise
    c = ml_collections.ConfigDict()
    c.experiment = "forecast"
    c.seed = 0
    c.models = "stateful_lstm,lstm,cnn,srn"

    c.data = ml_collections.ConfigDict()
    c.data.name = "msft"  # any of seqjax.data.REAL_DATASETS without NaN
    c.data.column = "Close"  # for multi-column series
    c.data.transform = "logdiff"  # logdiff (daily log return), diff or level
    c.data.split = (0.75, 0.15, 0.10)  # chronological train / val / test
    c.data.window = 50  # sliding-window length (the lecture's 50)
    c.data.limit = 0  # keep only the last `limit` steps (0: all)

    c.model = ml_collections.ConfigDict()
    c.model.hidden = 32
    c.model.implementation = "auto"  # the layers' default (CPU kernel on CPU); or "scan"
    c.model.conv_channels = 32
    c.model.conv_kernel = 3
    c.model.conv_dilations = (1, 2, 4, 8, 16)  # receptive field 63 >= window

    c.stateful = ml_collections.ConfigDict()
    c.stateful.batch_size = 8  # streams (the lecture's layout is 1; 8 trains faster)
    c.stateful.timesteps = 50  # steps per consecutive part
    # 0: as many epochs as give it the windowed models' Adam steps (sunspots: 96 epochs x 5
    # updates = 15 x 32; msft: 99 x 14 >= 15 x 92). train.epochs (75 updates) left it under-trained.
    c.stateful.epochs = 0
    c.stateful.learning_rate = 0.0  # 0: train.learning_rate
    c.stateful.drop = "end"  # the training months that fill no whole part: dropped at the end
    # (the most recent, next to validation) or at the "start"
    c.stateful.train_burn_in = 0  # leave the first N steps of every stream out of the loss
    c.stateful.truncation = 0  # k2 of fit (gradient cut every k2 steps inside a part); 0: none
    c.stateful.eval_timesteps = 500  # chunk of the one-stream validation pass (0: timesteps)

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 15
    c.train.batch_size = 64
    c.train.learning_rate = 1e-3
    c.train.clip_norm = 1.0

    c.baselines = ml_collections.ConfigDict()
    c.baselines.ar_order = 10

    c.plot = ml_collections.ConfigDict()
    c.plot.zoom = 120  # second panel: the last steps of the test part

    if words.sunspots:
        c.data.name = "sunspots_monthly"
        c.data.transform = "level"
        c.baselines.ar_order = 24
    if words.level:
        c.data.transform = "level"
    if words.tiny:
        c.data.limit = 900
        c.data.window = 20
        c.model.hidden = 8
        c.model.conv_channels = 8
        c.model.conv_dilations = (1, 2, 4)
        c.stateful.timesteps = 20
        c.stateful.batch_size = 4
        c.stateful.epochs = 2  # seconds (the default 0, equal updates, is tested on its own)
        c.train.epochs = 2
        c.plot.zoom = 30
    return c

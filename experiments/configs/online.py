r"""Online learning (TBPTT(1, k), one update per trading day) vs the stateful batched LSTM trained
by ``seqjax.train.fit``, next-day forecasting of Microsoft's daily close.

Command (the defaults)::

    python -m experiments.main --config=experiments/configs/online.py --workdir=runs/online

Variants (``get_config(arg)``, comma-separated words after the colon; an unknown word raises):

- ``:tiny``: the last 600 days, tiny models, one epoch: seconds (the tests use it).
- ``:sunspots``: monthly sunspot numbers 1749-1983 on the level (a predictable, cyclic series),
  ``--workdir=runs/online_sunspots``.

Overrides, e.g. ``--config.online.windows=1,5,20 --config.batched.epochs=30``.
"""

import ml_collections

from experiments.configs import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False, sunspots=False)
    c = ml_collections.ConfigDict()
    c.experiment = "online"
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.split = (0.75, 0.15, 0.10)  # chronological train / val / test of the daily returns
    c.data.limit = 0  # keep only the last `limit` prices (0: all 7983)
    c.data.name = "msft"  # or any of seqjax.data.REAL_DATASETS (first column)
    c.data.transform = "logdiff"  # daily log return; "level": the series itself

    c.model = ml_collections.ConfigDict()
    c.model.hidden = 32

    c.online = ml_collections.ConfigDict()
    c.online.windows = "1,20"  # k of TBPTT(1, k); 1: T=1 chunks with the carry held
    c.online.learning_rate = 1e-3
    c.online.clip_norm = 1.0

    c.batched = ml_collections.ConfigDict()
    c.batched.batch_size = 8  # streams
    c.batched.timesteps = 50  # steps per consecutive part
    c.batched.epochs = 15
    c.batched.learning_rate = 1e-3
    c.batched.clip_norm = 1.0

    if words.sunspots:  # a cyclic series where the models can beat persistence
        c.data.name = "sunspots_monthly"
        c.data.transform = "level"
    if words.tiny:
        c.data.limit = 600
        c.model.hidden = 4
        c.online.windows = "1,4"
        c.batched.batch_size = 2
        c.batched.timesteps = 20
        c.batched.epochs = 1
    return c

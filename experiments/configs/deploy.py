r"""Train the stateful LSTM on Microsoft's daily close, export it (``seqjax.export``), serve it in a
fresh process that imports only jax and numpy, one trading day per call, and check that its
predictions equal the in-library evaluation; time and memory per call.

Command (the defaults)::

    python -m experiments.main --config=experiments/configs/deploy.py --workdir=runs/deploy

Variants (``get_config(arg)``, comma-separated words after the colon; an unknown word raises):

- ``:tiny``: the last 600 days, a tiny model, one epoch: seconds (the tests use it).
"""

import ml_collections

from experiments.configs import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False)
    c = ml_collections.ConfigDict()
    c.experiment = "deploy"
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.split = (0.75, 0.15, 0.10)
    c.data.limit = 0
    c.data.name = "msft"
    c.data.transform = "logdiff"

    c.model = ml_collections.ConfigDict()
    c.model.hidden = 32

    c.batched = ml_collections.ConfigDict()
    c.batched.batch_size = 8
    c.batched.timesteps = 50
    c.batched.epochs = 15
    c.batched.learning_rate = 1e-3
    c.batched.clip_norm = 1.0

    c.export = ml_collections.ConfigDict()
    c.export.platforms = "cpu,cuda,tpu"
    c.export.rtol = 1e-5  # float32

    if words.tiny:
        c.data.limit = 600
        c.model.hidden = 4
        c.batched.batch_size = 2
        c.batched.timesteps = 20
        c.batched.epochs = 1
    return c

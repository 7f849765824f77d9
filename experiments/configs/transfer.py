r"""Transfer learning offline: MobileNetV2 pretrained on digits 0-4, frozen, new head on 5-9,
then the top 4 blocks fine-tuned at 1e-5 (BatchNorm in inference mode); test once.

Command (the defaults)::

    python -m experiments.main --config=experiments/configs/transfer.py --workdir=runs/transfer

Expected (measured through ``seqjax.train.fit``, seed 0): source validation accuracy 0.87 after
pretraining; target validation 0.49 with the frozen backbone and new head (5 classes, chance
0.20), 0.48 after fine-tuning; test accuracy 0.51 on 134 images (one image is 0.0075). Run time:
4 min 34 s wall on 2 shared, loaded cores (load average 12-14).

Variants: ``:tiny`` (a few examples, one epoch per phase, seconds; the tests use it).
With Keras' ImageNet weights on disk (never downloaded):
``--config.backbone.imagenet_weights=/path/to/mobilenet_v2_weights_..._no_top.h5``.
"""

import ml_collections

from experiments.configs import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False)  # unknown words raise
    c = ml_collections.ConfigDict()
    c.experiment = "transfer"
    c.seed = 0
    c.scratch_epochs = 0  # >0: also train the whole network from scratch on the target

    c.data = ml_collections.ConfigDict()
    c.data.image_size = 32
    c.data.limit = 0  # examples per task (0: all ~900)

    c.backbone = ml_collections.ConfigDict()
    c.backbone.imagenet_weights = ""  # a local Keras .h5 file; empty: pretrain on digits 0-4

    c.transfer = ml_collections.ConfigDict()
    c.transfer.alpha = 0.35
    c.transfer.dropout = 0.2
    c.transfer.batch_size = 32
    c.transfer.pretrain_epochs = 8
    c.transfer.pretrain_lr = 1e-3
    c.transfer.head_epochs = 10
    c.transfer.head_lr = 1e-3
    c.transfer.finetune_epochs = 3
    c.transfer.finetune_lr = 1e-5
    c.transfer.finetune_blocks = 4

    if words.tiny:  # the smallest MobileNetV2 run: 16 training images, two steps an epoch
        c.data.image_size = 32
        c.data.limit = 24
        c.transfer.alpha = 0.35
        c.transfer.batch_size = 8
        c.transfer.pretrain_epochs = 1
        c.transfer.head_epochs = 1
        c.transfer.finetune_epochs = 1
    return c

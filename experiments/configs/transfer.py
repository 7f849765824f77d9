r"""Transfer learning offline: MobileNetV2 pretrained on digits 0-4, frozen, new head on 5-9,
fine-tuned with BatchNorm in inference mode; and the label-budget study that judges it.

Main command, the study (``experiments/transfer_study.py``)::

    python -m experiments.main --config=experiments/configs/transfer.py:study \
        --workdir=runs/transfer_study

A source model on augmented digits 0-4 (1,500 steps), then at 5, 20, 50 and all (~99) labelled
images per class of digits 5-9, three seeds each: from scratch, linear probe, frozen backbone +
new head, fine-tuned (all blocks, lr 1e-5 or 1e-4 chosen on validation); each the same steps and
a grid of two learning rates; validation a fifth of the labels; a fixed 400-image test split.
``--config.study.seeds_by_budget=(5,5,3,3)`` gives more seeds per budget;
``--config.study.controls=('random_probe',)`` adds a probe on a random frozen backbone;
``--config.study.max_minutes=30`` stops between cells (the same command continues).

Expected (measured 2026-12-02, docs/results.md section 3): source held-out accuracy 0.995 (200
real digits 0-4 never trained on). Test accuracy, mean over seeds:

===========  =======  =====  =====  =========
per class    scratch  probe  head   fine-tune
===========  =======  =====  =====  =========
5 (5 seeds)   0.371    0.440  0.429  0.503
20 (5)        0.772    0.576  0.568  0.682
50 (3)        0.880    0.658  0.632  0.792
all, 99 (3)   0.917    0.661  0.644  0.859
===========  =======  =====  =====  =========

(5 and 20 labels per class with ``seeds_by_budget=(5,5,3,3)``.) Transfer is ahead only at 5
labels per class (spreads 0.07-0.10); from 20 on the network trained from scratch wins in every
seed. Fine-tuning at 1e-5 after the head: +0.04 to +0.08. Run time: 50 min for three seeds (one
process, load average 7-11 on 2 shared cores), 14 min more for the two extra seeds and the
``random_probe`` control (chance, 0.20).

The lecture's single run (the defaults)::

    python -m experiments.main --config=experiments/configs/transfer.py --workdir=runs/transfer

Expected (seed 0): source validation accuracy 0.87 after 8 epochs of pretraining; target
validation 0.49 with the frozen backbone and new head (5 classes, chance 0.20), 0.48 after the top
4 blocks are fine-tuned at 1e-5; test accuracy 0.51 on 134 images. 4 min 34 s at load 12-14.

Variants: ``:tiny`` (a few examples, one epoch per phase; the tests use it), ``:study``,
``:study,tiny`` (a few images, a few steps per fit). With Keras' ImageNet weights on disk (never
downloaded): ``--config.backbone.imagenet_weights=/path/to/mobilenet_v2_weights_..._no_top.h5``.
"""

import ml_collections

from experiments.configs import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False, study=False)  # unknown words raise
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

    c.study = ml_collections.ConfigDict()
    c.study.enabled = words.study  # the label-budget study (experiments/transfer_study.py)
    s = c.study
    s.data_seed = 0  # the splits below: the same in every cell
    s.source_heldout_per_class = 40  # real digits 0-4, never trained on: the source's score
    s.source_val_per_class = 20
    s.source_train_per_class = 0  # 0: all the rest (~120 per class)
    s.test_per_class = 80  # the target test split (digits 5-9): 400 images
    s.pool_per_class = 0  # 0: all the rest (94-102 per class) is the labelled pool
    s.bn_momentum = 0.9
    # The source model: augmented batches, AdamW with a warm-up cosine schedule.
    s.source_seed = 0
    s.source_steps = 1500
    s.source_eval_every = 100
    s.source_lr = 2e-3
    s.source_warmup = 100
    s.source_weight_decay = 1e-4
    s.augment = ml_collections.ConfigDict(
        dict(max_shift=3.0, max_rotation=15.0, scale=(0.85, 1.1), max_shear=0.2, noise=0.05)
    )
    # The cells: labels per class (0: the whole pool), the step budget of each, seeds, grids.
    s.budgets = (5, 20, 50, 0)
    s.steps = (80, 120, 160, 240)  # per budget, the same for every method
    s.evals = 4  # validation passes per fit
    s.seeds = 3
    s.seeds_by_budget = ()  # one count per budget instead, e.g. (5, 5, 3, 3)
    s.lrs = ml_collections.ConfigDict(
        dict(
            scratch=(1e-3, 3e-3),
            probe=(3e-3, 1e-2),
            head=(1e-3, 3e-3),
            finetune=(1e-5, 1e-4),
            random_probe=(3e-3, 1e-2),  # the control: the probe's grid
        )
    )
    s.report_lrs = (1e-5,)  # fine-tuning runs scored on the test split even when not selected
    s.finetune_blocks = 19  # all of MobileNetV2's units (BLOCKS); BatchNorm in inference mode
    s.controls = ()  # ("random_probe",): also a linear probe on a random frozen backbone
    s.finetune_steps = 0.5  # fraction of the budget's steps, after the selected head
    s.max_minutes = 0.0  # >0: stop before the next cell after this long (run again to go on)

    if words.tiny:  # the smallest MobileNetV2 run: 16 training images, two steps an epoch
        c.data.image_size = 32
        c.data.limit = 24
        c.transfer.alpha = 0.35
        c.transfer.batch_size = 8
        c.transfer.pretrain_epochs = 1
        c.transfer.head_epochs = 1
        c.transfer.finetune_epochs = 1
        s.source_heldout_per_class = 2
        s.source_val_per_class = 2
        s.source_train_per_class = 4
        s.test_per_class = 2
        s.pool_per_class = 6
        s.source_steps = 4
        s.source_eval_every = 2
        s.source_warmup = 1
        s.budgets = (2, 0)
        s.steps = (4, 4)
        s.evals = 2
        s.seeds = 1
        s.controls = ("random_probe",)
        s.lrs = ml_collections.ConfigDict(
            dict(
                scratch=(1e-3,),
                probe=(1e-2, 1e-3),
                head=(1e-3,),
                finetune=(1e-5,),
                random_probe=(1e-2,),
            )
        )
    return c

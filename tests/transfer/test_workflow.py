"""The Keras guide's recipe end to end, tiny: pretrain on digits 0-4, freeze, new head on 5-9,
validation after every epoch, fine-tune the top blocks at 1e-5 with BatchNorm in inference mode,
test once."""

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")

from seqjax.data.digits import digits_transfer_data  # noqa: E402
from seqjax.models.mobilenet_v2 import block_of  # noqa: E402
from seqjax.transfer import TransferConfig, named_leaves, run_transfer  # noqa: E402

TINY = TransferConfig(
    alpha=0.35,
    batch_size=16,
    pretrain_epochs=1,
    head_epochs=2,
    finetune_epochs=1,
    finetune_blocks=2,  # Conv_1 and block_16
)


@pytest.fixture(scope="module")
def tasks():
    return digits_transfer_data(32, limit=48, seed=0)


@pytest.fixture(scope="module")
def result(tasks):
    source, target = tasks
    return run_transfer(TINY, target, source=source, log=lambda line: None)


def test_digits_are_upsampled_rgb_images_in_minus_one_one(tasks):
    source, target = tasks
    images, labels = target.train
    assert images.shape[1:] == (32, 32, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert set(np.unique(labels)) <= set(range(5))  # digits 5-9 relabelled 0-4
    assert source.num_classes == target.num_classes == 5
    sizes = [len(split[1]) for split in (target.train, target.val, target.test)]
    assert sum(sizes) == 48 and min(sizes) > 0


def test_every_phase_validates_after_each_epoch_and_the_test_runs_once(result):
    assert len(result.pretrain_history) == TINY.pretrain_epochs
    assert len(result.head_history) == TINY.head_epochs
    assert len(result.finetune_history) == TINY.finetune_epochs
    for row in result.pretrain_history + result.head_history + result.finetune_history:
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(row)
        assert np.isfinite(row["val_loss"])
    assert set(result.test) == {"loss", "accuracy"}
    assert 0.0 <= result.test["accuracy"] <= 1.0
    assert sum(line.startswith("[test]") for line in result.log) == 1


def test_only_the_head_then_the_top_blocks_train_and_batch_stats_never_move(result):
    pretrained = dict(named_leaves(result.pretrained["params"]))
    final = dict(named_leaves(result.variables["params"]["backbone"]))
    moved = {
        block_of(path.split("/")[0])
        for path in final
        if not np.array_equal(final[path], pretrained[path])
    }
    assert moved == {"Conv_1", "block_16"}  # everything below stayed bit-identical
    assert jax.tree.all(
        jax.tree.map(
            np.array_equal,
            result.variables["batch_stats"]["backbone"],
            result.pretrained["batch_stats"],
        )
    )


def test_the_summaries_count_what_trains(result):
    head, finetune = result.head_summary, result.finetune_summary
    assert head.trainable == 1280 * 5 + 5  # the new dense head only
    assert head.trainable + head.frozen == finetune.trainable + finetune.frozen
    assert finetune.trainable > head.trainable
    assert head.statistics == finetune.statistics > 0

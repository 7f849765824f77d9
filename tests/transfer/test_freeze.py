"""Freezing with optax: zero updates, no optimizer state, no weight decay for frozen leaves;
the frozen backbone runs in inference mode so its BatchNorm statistics never move."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.models import BackboneClassifier, ClassifierHead, MobileNetV2, keras_style_init
from seqjax.transfer import (
    count_params,
    freeze,
    init_state,
    make_train_step,
    mask_params,
    named_leaves,
    optimizer_state_size,
    summarize,
    unfreeze_top,
)


class TinyBackbone(nn.Module):
    """Two conv + BatchNorm blocks: the smallest backbone with the same failure modes."""

    @nn.compact
    def __call__(self, x, train=False):
        for i, (features, stride) in enumerate([(4, 1), (8, 2)], start=1):
            x = nn.Conv(features, (3, 3), strides=stride, use_bias=False, name=f"block_{i}_conv")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"block_{i}_BN")(x)
            x = nn.relu(x)
        return x


MODEL = BackboneClassifier(TinyBackbone(), ClassifierHead(3, dropout_rate=0.2))
RNG = np.random.default_rng(0)
BATCH = (
    jnp.asarray(RNG.normal(size=(8, 8, 8, 3)), jnp.float32),
    jnp.asarray(RNG.integers(0, 3, 8), jnp.int32),
)


@pytest.fixture(scope="module")
def variables():
    variables = keras_style_init(MODEL, BATCH[0])
    # Non-trivial moving statistics, as a pretrained backbone has.
    stats = jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])
    return {"params": variables["params"], "batch_stats": stats}


def train(variables, tx, steps=5, **kwargs):
    state = init_state(variables, tx)
    step = make_train_step(MODEL, tx, **kwargs)
    for i in range(steps):
        state, _ = step(state, BATCH, jax.random.key(i))
    return state


def same_bits(a, b):
    return jax.tree.all(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b))


def changed(a, b):
    return jax.tree.all(jax.tree.map(lambda x, y: not np.array_equal(x, y), a, b))


def test_frozen_backbone_stays_bit_identical_and_the_head_trains(variables):
    frozen = mask_params(variables["params"], "backbone/*")
    state = train(variables, freeze(optax.adamw(1e-2, weight_decay=0.5), frozen))
    params = variables["params"]
    assert same_bits(state.params["backbone"], params["backbone"])  # no update, no decay
    assert same_bits(state.batch_stats, variables["batch_stats"])  # inference mode
    assert changed(state.params["head"], params["head"])


def test_frozen_leaves_hold_no_optimizer_state(variables):
    params = variables["params"]
    frozen = mask_params(params, "backbone/*")
    state = init_state(variables, freeze(optax.adam(1e-3), frozen))
    head_size = count_params(params["head"])
    # Adam keeps two moments (mu, nu) for the head only.
    assert optimizer_state_size(state.opt_state) == 2 * head_size
    moment_leaves = [
        p for p, leaf in named_leaves(state.opt_state) if np.ndim(leaf) > 0 and "backbone" in p
    ]
    assert moment_leaves == []
    # Contrast: an optimizer over everything keeps moments for every parameter.
    unfrozen = init_state(variables, optax.adam(1e-3))
    assert optimizer_state_size(unfrozen.opt_state) == 2 * count_params(params)


def test_optax_masked_alone_would_leak_raw_gradients_into_frozen_leaves(variables):
    """Why freeze() exists (optax#159): masked() skips Adam but lets the gradient through."""
    trainable = mask_params(variables["params"], "head/*")
    state = train(variables, optax.masked(optax.adam(1e-2), trainable), steps=1)
    assert not same_bits(state.params["backbone"], variables["params"]["backbone"])


def test_fine_tuning_moves_only_the_unfrozen_block_and_keeps_batch_stats(variables):
    frozen = mask_params(variables["params"], ["backbone/block_1_*"])
    state = train(variables, freeze(optax.adam(1e-5), frozen))
    before, after = variables["params"]["backbone"], state.params["backbone"]
    assert same_bits(after["block_1_conv"], before["block_1_conv"])
    assert same_bits(after["block_1_BN"], before["block_1_BN"])
    assert changed(after["block_2_conv"], before["block_2_conv"])
    assert changed(state.params["head"], variables["params"]["head"])
    assert same_bits(state.batch_stats, variables["batch_stats"])  # BN still in inference mode


def test_training_the_backbone_from_scratch_updates_batch_stats(variables):
    state = train(variables, optax.adam(1e-3), steps=1, backbone_train=True)
    assert changed(state.batch_stats, variables["batch_stats"])


def test_summary_counts_trainable_and_frozen_per_module(variables):
    params = variables["params"]
    frozen = mask_params(params, "backbone/*")
    summary = summarize(params, frozen, batch_stats=variables["batch_stats"], depth=2)
    rows = {r.module: (r.trainable, r.frozen, r.statistics) for r in summary.rows}
    assert rows["backbone/block_1_conv"] == (0, 3 * 3 * 3 * 4, 0)
    assert rows["backbone/block_2_BN"] == (0, 2 * 8, 2 * 8)
    assert rows["head/dense"] == (8 * 3 + 3, 0, 0)
    assert (summary.trainable, summary.frozen) == (27, count_params(params["backbone"]))
    assert "total" in str(summary)


MOBILENET_PARAMS = jax.eval_shape(
    lambda: BackboneClassifier(MobileNetV2(alpha=0.35, include_top=False), ClassifierHead(5)).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3))
    )
)["params"]


def test_unfreeze_top_releases_the_top_mobilenet_blocks():
    frozen = mask_params(MOBILENET_PARAMS, "backbone/*")
    mask = unfreeze_top(frozen, 3)  # Conv_1, block_16, block_15
    trainable = {p.split("/")[1] for p, f in named_leaves(mask) if not f}
    assert trainable == {
        "block_15_expand", "block_15_expand_BN", "block_15_depthwise", "block_15_depthwise_BN",
        "block_15_project", "block_15_project_BN",
        "block_16_expand", "block_16_expand_BN", "block_16_depthwise", "block_16_depthwise_BN",
        "block_16_project", "block_16_project_BN",
        "Conv_1", "Conv_1_bn", "dense",
    }  # fmt: skip
    everything = unfreeze_top(frozen, 19)
    assert [p for p, f in named_leaves(everything) if f] == []
    assert same_bits(unfreeze_top(frozen, 0), frozen)


def test_unfreeze_top_raises_on_a_wrong_prefix_or_count():
    frozen = mask_params(MOBILENET_PARAMS, "backbone/*")
    with pytest.raises(ValueError, match="under prefix 'base'"):
        unfreeze_top(frozen, 2, prefix="base")
    with pytest.raises(ValueError, match="n must be in"):
        unfreeze_top(frozen, 20)

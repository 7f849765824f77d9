"""Freezing through seqjax.train: no gradient, no optimizer state, no weight decay for frozen
leaves; the frozen backbone runs in inference mode so its BatchNorm statistics never move."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seqjax.models import BackboneClassifier, ClassifierHead, MobileNetV2, keras_style_init
from seqjax.models.mobilenet_v2 import unfreeze_top
from seqjax.train import create_train_state, fit, train_step
from seqjax.transfer import (
    count_params,
    mask_params,
    named_leaves,
    optimizer_state_size,
    summarize,
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
SCRATCH = MODEL.clone(backbone_batch_norm="train")
RNG = np.random.default_rng(0)
BATCH = {
    "inputs": jnp.asarray(RNG.normal(size=(8, 8, 8, 3)), jnp.float32),
    "targets": jnp.asarray(RNG.integers(0, 3, 8), jnp.int32),
}


@pytest.fixture(scope="module")
def variables():
    variables = keras_style_init(MODEL, BATCH["inputs"])
    # Non-trivial moving statistics, as a pretrained backbone has.
    stats = jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])
    return {"params": variables["params"], "batch_stats": stats}


def make_state(variables, tx, model=MODEL):
    return create_train_state(model, tx, BATCH, variables=variables)


def train(variables, tx, steps=5, frozen=None, model=MODEL, clip_norm=None):
    """``steps`` jitted ``seqjax.train.train_step`` calls; the optimizer wrapped as fit does."""
    if frozen is not None:
        tx = optax.transforms.selective_transform(tx, freeze_mask=frozen)
    state = make_state(variables, tx, model)
    step = jax.jit(
        functools.partial(train_step, loss="cross_entropy", frozen=frozen, clip_norm=clip_norm)
    )
    for _ in range(steps):
        state, _, metrics = step(state, None, BATCH, state.base_key())
    return state, metrics


def same_bits(a, b):
    return jax.tree.all(jax.tree.map(lambda x, y: np.array_equal(x, y), a, b))


def changed(a, b):
    return jax.tree.all(jax.tree.map(lambda x, y: not np.array_equal(x, y), a, b))


def test_frozen_backbone_stays_bit_identical_and_the_head_trains(variables):
    frozen = mask_params(variables["params"], "backbone/*")
    state, _ = train(variables, optax.adamw(1e-2, weight_decay=0.5), frozen=frozen)
    params = variables["params"]
    assert same_bits(state.params["backbone"], params["backbone"])  # no update, no decay
    assert same_bits(state.batch_stats, variables["batch_stats"])  # inference mode
    assert changed(state.params["head"], params["head"])


def test_fit_trains_the_head_of_a_frozen_backbone_bit_identically(variables, tmp_path):
    """The transfer recipe's phase through seqjax.train.fit: validation, test, checkpoints."""
    frozen = mask_params(variables["params"], "backbone/*")
    data = {k: v[None] for k, v in BATCH.items()}  # one batch per epoch
    result = fit(
        MODEL,
        data,
        val_data=data,
        test_data=data,
        optimizer=optax.adamw(1e-2, weight_decay=0.5),
        workdir=tmp_path,
        num_epochs=3,
        loss="cross_entropy",
        metrics=("accuracy",),
        stateful=False,
        variables=variables,
        frozen=frozen,
        progress=False,
    )
    assert same_bits(result.state.params["backbone"], variables["params"]["backbone"])
    assert same_bits(result.state.batch_stats, variables["batch_stats"])
    assert changed(result.state.params["head"], variables["params"]["head"])
    assert optimizer_state_size(result.state.opt_state) == 2 * count_params(
        variables["params"]["head"]
    )
    assert 0.0 <= result.test["accuracy"] <= 1.0 and result.test["count"] == 8.0
    assert len(result.history) == 3 and result.history[-1]["val"]["count"] == 8.0


def test_no_gradient_is_computed_for_frozen_leaves(variables):
    """The backbone's backward convolutions are not in the program when it is frozen."""
    frozen = mask_params(variables["params"], "backbone/*")

    def convolutions(mask):
        state = make_state(variables, optax.sgd(0.1))
        step = functools.partial(train_step, loss="cross_entropy", frozen=mask)
        jaxpr = jax.make_jaxpr(step)(state, None, BATCH, state.base_key())
        return str(jaxpr).count("conv_general_dilated")

    assert convolutions(None) == 5  # 2 forward, 2 kernel gradients, 1 input gradient
    assert convolutions(frozen) == 2  # forward only


def test_grad_norm_and_clipping_see_only_the_trainable_leaves(variables):
    frozen = mask_params(variables["params"], "backbone/*")
    state = make_state(variables, optax.sgd(1.0))
    key = state.base_key()

    def head_loss(head):
        params = {"backbone": variables["params"]["backbone"], "head": head}
        v = {"params": params, "batch_stats": variables["batch_stats"]}
        _, logits = MODEL.apply(
            v, BATCH["inputs"], deterministic=False, rngs={"dropout": jax.random.fold_in(key, 0)}
        )
        return optax.softmax_cross_entropy_with_integer_labels(logits, BATCH["targets"]).mean()

    expected = jax.grad(head_loss)(variables["params"]["head"])
    norm = float(optax.global_norm(expected))
    clip = norm / 4
    new, _, metrics = train_step(
        state, None, BATCH, key, loss="cross_entropy", frozen=frozen, clip_norm=clip
    )
    np.testing.assert_allclose(float(metrics["grad_norm"]), norm, rtol=1e-5)
    step = jax.tree.map(lambda a, b: a - b, variables["params"]["head"], new.params["head"])
    np.testing.assert_allclose(float(optax.global_norm(step)), clip, rtol=1e-5)  # sgd(1.0)


def test_optax_masked_alone_would_leak_raw_gradients_into_frozen_leaves(variables):
    """Why selective_transform is needed (optax#159): masked() skips Adam but lets the gradient
    through when the step computes gradients for every leaf."""
    trainable = mask_params(variables["params"], "head/*")
    state, _ = train(variables, optax.masked(optax.adam(1e-2), trainable), steps=1)
    assert not same_bits(state.params["backbone"], variables["params"]["backbone"])


def test_fine_tuning_moves_only_the_unfrozen_block_and_keeps_batch_stats(variables):
    frozen = mask_params(variables["params"], ["backbone/block_1_*"])
    state, _ = train(variables, optax.adam(1e-5), frozen=frozen)
    before, after = variables["params"]["backbone"], state.params["backbone"]
    assert same_bits(after["block_1_conv"], before["block_1_conv"])
    assert same_bits(after["block_1_BN"], before["block_1_BN"])
    assert changed(after["block_2_conv"], before["block_2_conv"])
    assert changed(state.params["head"], variables["params"]["head"])
    assert same_bits(state.batch_stats, variables["batch_stats"])  # BN still in inference mode


def test_training_the_backbone_from_scratch_updates_batch_stats(variables):
    state, _ = train(variables, optax.adam(1e-3), steps=1, model=SCRATCH)
    assert changed(state.batch_stats, variables["batch_stats"])


def test_removed_names_raise_naming_their_replacement_and_moved_ones_warn():
    import seqjax.transfer as transfer

    with pytest.raises(ImportError, match="selective_transform"):
        from seqjax.transfer import freeze  # noqa: F401
    with pytest.raises(ImportError, match=r"seqjax\.train\.fit"):
        transfer.fit  # noqa: B018
    with pytest.warns(DeprecationWarning, match="seqjax.models.mobilenet_v2.unfreeze_top"):
        assert transfer.unfreeze_top is unfreeze_top
    with pytest.raises(AttributeError):
        transfer.no_such_name  # noqa: B018


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

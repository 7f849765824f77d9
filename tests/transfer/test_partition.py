"""Labels and masks from parameter paths: glob, regex, predicate; first match wins; no silent typos."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax.transfer import label_params, mask_params, named_leaves

PARAMS = {
    "backbone": {
        "Conv1": {"kernel": np.zeros((3, 3, 3, 8))},
        "bn_Conv1": {"scale": np.ones(8), "bias": np.zeros(8)},
        "block_16_project": {"kernel": np.zeros((1, 1, 8, 4))},
    },
    "head": {"dense": {"kernel": np.zeros((4, 2)), "bias": np.zeros(2)}},
}


def test_paths_are_slash_joined_keys():
    assert [p for p, _ in named_leaves(PARAMS)] == [
        "backbone/Conv1/kernel",
        "backbone/block_16_project/kernel",
        "backbone/bn_Conv1/bias",
        "backbone/bn_Conv1/scale",
        "head/dense/bias",
        "head/dense/kernel",
    ]


def test_glob_star_crosses_slashes_and_first_match_wins():
    labels = label_params(
        PARAMS,
        [("backbone/block_16_*", "train"), ("backbone/*", "frozen"), ("head/*", "train")],
    )
    assert labels["backbone"]["block_16_project"]["kernel"] == "train"
    assert labels["backbone"]["Conv1"]["kernel"] == "frozen"
    assert labels["backbone"]["bn_Conv1"]["scale"] == "frozen"


def test_regex_and_predicate_patterns():
    labels = label_params(
        PARAMS,
        {
            re.compile(r"^head/"): "head",
            (lambda path, leaf: np.ndim(leaf) == 1): "vector",
            "*": "other",
        },
    )
    assert labels["head"]["dense"]["kernel"] == "head"
    assert labels["backbone"]["bn_Conv1"]["bias"] == "vector"
    assert labels["backbone"]["Conv1"]["kernel"] == "other"


def test_unmatched_leaves_take_the_default_or_raise():
    labels = label_params(PARAMS, [("head/*", "train")], default="frozen")
    assert labels["backbone"]["Conv1"]["kernel"] == "frozen"
    with pytest.raises(ValueError, match="no rule matches 'backbone/Conv1/kernel'"):
        label_params(PARAMS, [("head/*", "train")])


def test_a_pattern_that_matches_nothing_raises():
    with pytest.raises(ValueError, match=r"'backbone/block_61_\*'.*matches no parameter"):
        label_params(PARAMS, [("backbone/block_61_*", "train")], default="frozen")
    with pytest.raises(ValueError, match="matches no parameter"):
        mask_params(PARAMS, ["head/*", re.compile("Conv_1")])


def test_a_rule_shadowed_by_earlier_rules_raises():
    with pytest.raises(ValueError, match="earlier rules already claimed"):
        label_params(PARAMS, [("backbone/*", "frozen"), ("backbone/block_16_*", "train")])


def test_mask_is_true_where_any_pattern_matches():
    mask = mask_params(PARAMS, ["head/*", re.compile(r"bn_")])
    assert [p for p, m in named_leaves(mask) if m] == [
        "backbone/bn_Conv1/bias",
        "backbone/bn_Conv1/scale",
        "head/dense/bias",
        "head/dense/kernel",
    ]
    assert mask_params(PARAMS, "backbone/*")["backbone"]["Conv1"]["kernel"] is True


@settings(deadline=None, max_examples=60)  # the machine is shared: no timing-based failures
@given(
    keys=st.sets(st.text("ab", min_size=1, max_size=3), min_size=1, max_size=6),
    prefixes=st.lists(st.text("ab", min_size=0, max_size=2), min_size=1, max_size=4),
)
def test_first_matching_rule_wins_or_the_rules_are_refused(keys, prefixes):
    tree = {k: np.zeros(1) for k in keys}
    rules = [(p + "*", i) for i, p in enumerate(prefixes)]
    first = {k: next((i for i, p in enumerate(prefixes) if k.startswith(p)), None) for k in keys}
    matched = [any(k.startswith(p) for k in keys) for p in prefixes]
    won = [i in first.values() for i in range(len(prefixes))]
    if None in first.values() or not all(matched) or not all(won):
        with pytest.raises(ValueError):
            label_params(tree, rules)
    else:
        assert label_params(tree, rules) == first

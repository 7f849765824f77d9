"""The parameter trees (names and shapes) of every layer, against a golden file.

Checkpoints, freezing patterns and weight converters rely on these names, so a rename must be
deliberate: regenerate with ``SEQJAX_UPDATE_GOLDEN=1 pytest tests/nn/test_param_tree_golden.py``
and commit the diff.
"""

import json
import os
import pathlib

import jax
import numpy as np

from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN, TemporalConv

GOLDEN = pathlib.Path(__file__).parent / "golden" / "param_trees.json"
X = np.zeros((2, 4, 3), np.float32)

LAYERS = {
    "SimpleRNN(5)": SimpleRNN(5),
    "LSTM(5)": LSTM(5),
    "LSTM(5, use_peepholes=True, learn_initial_carry=True)": LSTM(
        5, use_peepholes=True, learn_initial_carry=True
    ),
    "GRU(5)": GRU(5),
    "GRU(5, learn_initial_carry=True)": GRU(5, learn_initial_carry=True),
    "Bidirectional(LSTM(5))": Bidirectional(LSTM(5)),
    "StackedRNN([LSTM(5), GRU(2)])": StackedRNN([LSTM(5), GRU(2)]),
    "TemporalConv([4, 2], kernel_size=3)": TemporalConv([4, 2], kernel_size=3),
}


def _tree(layer):
    shapes = jax.eval_shape(layer.init, jax.random.key(0), X)
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): "x".join(map(str, leaf.shape))
        for path, leaf in flat
    }


def test_param_trees_match_golden():
    trees = {name: _tree(layer) for name, layer in LAYERS.items()}
    if os.environ.get("SEQJAX_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(trees, indent=1, sort_keys=True) + "\n")
    assert trees == json.loads(GOLDEN.read_text())

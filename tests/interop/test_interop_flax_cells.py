"""Flax linen LSTMCell / OptimizedLSTMCell / GRUCell parameters in seqjax layers, and back."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.interop import from_flax_cell, to_flax_cell
from seqjax.nn import GRU, LSTM, LSTMCarry

CELLS = {"lstm": nn.LSTMCell, "optimized_lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell}


def random_like(tree, seed):
    """Random values shaped like ``tree`` (biases non-zero)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.normal(size=s.shape), s.dtype), tree)


@pytest.mark.parametrize(
    "kind,shape",
    [
        ("lstm", (1, 1, 1, 1)),
        ("lstm", (3, 5, 2, 4)),
        ("optimized_lstm", (2, 3, 1, 2)),
        ("gru", (1, 1, 1, 1)),
        ("gru", (3, 5, 2, 4)),
    ],
)
def test_flax_cell_matches_nn_rnn(kind, shape, close):
    b, t, f, h = shape
    x = np.random.default_rng(1).normal(size=(b, t, f)).astype(np.float32)
    rnn = nn.RNN(CELLS[kind](h), return_carry=True)
    variables = random_like(jax.eval_shape(rnn.init, jax.random.key(0), x), seed=2)
    flax_carry, flax_ys = rnn.apply(variables, x)
    module, seq_vars = from_flax_cell(variables, rnn)
    assert isinstance(module, GRU if kind == "gru" else LSTM)
    carry, ys = module.apply(seq_vars, x)
    close(ys, flax_ys)
    if kind == "gru":
        close(carry, flax_carry)
    else:
        c, hidden = flax_carry  # Flax's carry is (c, h)
        assert isinstance(carry, LSTMCarry)
        close(carry.cell, c)
        close(carry.hidden, hidden)
    # The kind is also read from the parameter names alone.
    module2, seq_vars2 = from_flax_cell(variables["params"]["cell"])
    assert type(module2) is type(module)
    close(module2.apply(seq_vars2, x)[1], flax_ys)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_to_flax_cell_and_back(kind, close):
    x = np.random.default_rng(1).normal(size=(2, 3, 2)).astype(np.float32)
    module = LSTM(3) if kind == "lstm" else GRU(3)
    variables = random_like(jax.eval_shape(module.init, jax.random.key(0), x), seed=3)
    cell, cell_vars = to_flax_cell(module, variables)
    flax_ys = nn.RNN(cell).apply({"params": {"cell": cell_vars["params"]}}, x)
    close(flax_ys, module.apply(variables, x)[1])
    if kind == "lstm":  # the LSTM layout round-trips bit-exactly
        back, back_vars = from_flax_cell(cell_vars, cell)
        same = jax.tree.map(lambda a, b: np.array_equal(a, b), variables, back_vars)
        assert all(jax.tree.leaves(same))


def test_unsupported_cells_name_the_setting():
    params = {"params": {}}
    with pytest.raises(ValueError, match="gate_fn"):
        from_flax_cell(params, nn.LSTMCell(2, gate_fn=jnp.tanh))
    with pytest.raises(TypeError, match="SimpleCell"):
        from_flax_cell(params, nn.SimpleCell(2))
    with pytest.raises(ValueError, match="LSTMCell parameters"):
        from_flax_cell({"foo": {}})
    with pytest.raises(ValueError, match="use_peepholes"):
        to_flax_cell(LSTM(2, use_peepholes=True), {"params": {}})

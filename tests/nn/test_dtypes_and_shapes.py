"""bf16 computation with f32 parameters; hypothesis over shapes including 1s."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from nn_reference import as_numpy, gru, lstm, random_params, simple_rnn

from seqjax.nn import GRU, LSTM, SimpleRNN

KINDS = {"simple_rnn": (SimpleRNN, simple_rnn), "lstm": (LSTM, lstm), "gru": (GRU, gru)}


def test_bf16_runs_and_stays_close_to_float32():
    x = np.random.default_rng(0).standard_normal((4, 16, 3)).astype(np.float32)
    for cls in (SimpleRNN, LSTM, GRU):
        layer32 = cls(8)
        variables = random_params(layer32.init(jax.random.key(0), x), scale=0.3)
        layer16 = cls(8, dtype=jnp.bfloat16)
        carry16, ys16 = layer16.apply(variables, x)
        _, ys32 = layer32.apply(variables, x)
        assert ys16.dtype == jnp.bfloat16
        assert jax.tree.leaves(variables)[0].dtype == jnp.float32
        err = np.max(np.abs(np.asarray(ys16, np.float32) - np.asarray(ys32)))
        assert err < 0.05, f"{cls.__name__}: bf16 differs from float32 by {err}"
        grads = jax.grad(lambda v: jnp.sum(layer16.apply(v, x)[1].astype(jnp.float32)))(variables)
        assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    batch=st.integers(1, 3),
    time=st.integers(1, 5),
    features=st.integers(1, 3),
    hidden=st.integers(1, 4),
    data=st.data(),
)
def test_any_shape_matches_numpy(kind, batch, time, features, hidden, data):
    cls, ref = KINDS[kind]
    lengths = np.array(data.draw(st.lists(st.integers(0, time), min_size=batch, max_size=batch)))
    reverse = data.draw(st.booleans())
    x = np.random.default_rng(batch * 100 + time).standard_normal((batch, time, features))
    x = x.astype(np.float32)
    layer = cls(hidden, reverse=reverse)
    variables = random_params(layer.init(jax.random.key(0), x), seed=time)
    carry, ys = layer.apply(variables, x, seq_lengths=lengths)
    ref_carry, ref_ys = ref(as_numpy(variables["params"]), x, lengths=lengths, reverse=reverse)
    assert ys.shape == (batch, time, hidden)
    np.testing.assert_allclose(ys, ref_ys, atol=1e-5)
    for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(ref_carry), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)

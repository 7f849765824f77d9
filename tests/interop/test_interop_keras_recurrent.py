"""Keras LSTM / GRU / SimpleRNN / Bidirectional against the seqjax layers from ``from_keras``."""

import jax
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from seqjax.interop import carry_from_keras, carry_to_keras, from_keras, to_keras  # noqa: E402
from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN  # noqa: E402

KINDS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}
SHAPES = [(1, 1, 1, 1), (3, 5, 2, 4)]  # (batch, time, features, units)


def build(layer, x, randomize, rng):
    layer.build(x.shape)
    randomize(layer, rng)
    return layer


def unpack(result):
    """Keras ``return_state=True`` output as (outputs, states list)."""
    return np.asarray(result[0]), [np.asarray(s) for s in result[1:]]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_outputs_and_states(kind, shape, rng, randomize, close):
    b, t, f, h = shape
    x = rng.normal(size=(b, t, f)).astype("float32")
    layer = build(KINDS[kind](h, return_sequences=True, return_state=True), x, randomize, rng)
    ys_k, states_k = unpack(layer(x))
    module, variables = from_keras(layer)
    assert isinstance(module, {"lstm": LSTM, "gru": GRU, "simple_rnn": SimpleRNN}[kind])
    assert np.abs(np.asarray(variables["params"]["bias"])).min() > 0  # non-zero biases
    carry, ys = module.apply(variables, x)
    close(ys, ys_k)
    for got, want in zip(carry_to_keras(module, carry), states_k, strict=True):
        close(got, want)


@pytest.mark.parametrize(
    "kind,option",
    [(k, "backwards_last_only") for k in KINDS]
    + [(k, "cell_relu_no_bias") for k in KINDS]
    + [("lstm", "initial_state"), ("gru", "initial_state")],
)
def test_layer_options(kind, option, rng, randomize, close):
    b, t, f, h = 2, 4, 3, 3
    x = rng.normal(size=(b, t, f)).astype("float32")
    call_kwargs = {}
    if option == "backwards_last_only":
        layer = KINDS[kind](h, return_state=True, go_backwards=True)
    elif option == "cell_relu_no_bias":
        cells = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}
        cell = cells.get(kind, keras.layers.SimpleRNNCell)(h, activation="relu", use_bias=False)
        layer = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    else:
        layer = KINDS[kind](h, return_sequences=True, return_state=True)
        n_states = 2 if kind == "lstm" else 1
        states0 = [rng.normal(size=(b, h)).astype("float32") for _ in range(n_states)]
        call_kwargs["initial_state"] = states0
    build(layer, x, randomize, rng)
    ys_k, states_k = unpack(layer(x, **call_kwargs))
    module, variables = from_keras(layer)
    initial_carry = None
    if option == "initial_state":
        initial_carry = carry_from_keras(module, call_kwargs["initial_state"])
    carry, ys = module.apply(variables, x, initial_carry=initial_carry)
    if option == "backwards_last_only":
        assert module.reverse
        close(ys[:, 0], ys_k)  # the last step processed going backwards is step 0
    else:
        close(ys, ys_k)
    for got, want in zip(carry_to_keras(module, carry), states_k, strict=True):
        close(got, want)


@pytest.mark.parametrize(
    "kind,go_backwards",
    [("lstm", False), ("lstm", True), ("gru", True), ("simple_rnn", False)],
)
def test_mask_is_seq_lengths(kind, go_backwards, rng, randomize, close):
    b, t, f, h = 3, 5, 2, 3
    lengths = np.array([5, 2, 1])
    mask = np.arange(t)[None, :] < lengths[:, None]
    x = rng.normal(size=(b, t, f)).astype("float32")
    layer = KINDS[kind](h, return_sequences=True, return_state=True, go_backwards=go_backwards)
    build(layer, x, randomize, rng)
    ys_k, states_k = unpack(layer(x, mask=mask))
    module, variables = from_keras(layer)
    carry, ys = module.apply(variables, x, seq_lengths=lengths)
    ys = np.asarray(ys)
    if go_backwards:
        ys, mask = ys[:, ::-1], mask[:, ::-1]
    close(ys[mask], ys_k[mask])  # Keras repeats the last output at masked steps; seqjax: zeros
    assert not ys[~mask].any()
    for got, want in zip(carry_to_keras(module, carry), states_k, strict=True):
        close(got, want)


def test_stateful_lstm_threads_the_carry(rng, randomize, close):
    b, t, f, h = 2, 3, 2, 4
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(b, t, f)),
            keras.layers.LSTM(h, stateful=True, return_sequences=True),
        ]
    )
    layer = model.layers[0]
    randomize(layer, rng)
    chunks = rng.normal(size=(3, b, t, f)).astype("float32")
    module, variables = from_keras(layer)
    carry = None
    for chunk in chunks:
        ys_k = np.asarray(model(chunk))
        carry, ys = module.apply(variables, chunk, initial_carry=carry)
        close(ys, ys_k)
        for got, want in zip(carry_to_keras(module, carry), layer.states, strict=True):
            close(got, np.asarray(want))
    layer.reset_state()
    close(model(chunks[0]), module.apply(variables, chunks[0])[1])


@pytest.mark.parametrize(
    "inner,merge_mode",
    [("lstm", "concat"), ("lstm", "ave"), ("lstm", None), ("gru", "sum"), ("simple_rnn", "mul")],
)
def test_bidirectional(inner, merge_mode, rng, randomize, close):
    b, t, f, h = 2, 4, 3, 2
    x = rng.normal(size=(b, t, f)).astype("float32")
    layer = keras.layers.Bidirectional(
        KINDS[inner](h, return_sequences=True, return_state=True), merge_mode=merge_mode
    )
    build(layer, x, randomize, rng)
    result = layer(x)
    n_out = 2 if merge_mode is None else 1
    ys_k, states_k = result[:n_out], [np.asarray(s) for s in result[n_out:]]
    module, variables = from_keras(layer)
    assert isinstance(module, Bidirectional)
    carry, ys = module.apply(variables, x)
    if merge_mode is None:
        close(ys[0], ys_k[0])
        close(ys[1], ys_k[1])
    else:
        close(ys, ys_k[0])
    for got, want in zip(carry_to_keras(module, carry), states_k, strict=True):
        close(got, want)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_with_mask(return_sequences, rng, randomize, close):
    b, t, f, h = 3, 4, 2, 3
    lengths = np.array([4, 1, 3])
    mask = np.arange(t)[None, :] < lengths[:, None]
    x = rng.normal(size=(b, t, f)).astype("float32")
    layer = keras.layers.Bidirectional(keras.layers.GRU(h, return_sequences=return_sequences))
    build(layer, x, randomize, rng)
    y_k = np.asarray(layer(x, mask=mask))
    module, variables = from_keras(layer)
    carry, ys = module.apply(variables, x, seq_lengths=lengths)
    if return_sequences:
        close(ys, y_k)  # Bidirectional zeroes masked outputs, as seqjax
    else:
        close(np.concatenate([carry[0], carry[1]], -1), y_k)


def test_unsupported_settings_name_the_setting(rng):
    x = rng.normal(size=(1, 2, 2)).astype("float32")

    def built(layer):
        layer(x)
        return layer

    with pytest.raises(ValueError, match="reset_after=False"):
        from_keras(built(keras.layers.GRU(2, reset_after=False)))
    with pytest.raises(ValueError, match="recurrent_activation"):
        from_keras(built(keras.layers.LSTM(2, recurrent_activation="hard_sigmoid")))
    with pytest.raises(ValueError, match="activation"):
        from_keras(built(keras.layers.SimpleRNN(2, activation=lambda v: v * 2)))
    with pytest.raises(ValueError, match="go_backwards=True"):
        from_keras(built(keras.layers.Bidirectional(keras.layers.LSTM(2, go_backwards=True))))
    with pytest.raises(ValueError, match="cell=StackedRNNCells"):
        cells = [keras.layers.LSTMCell(2), keras.layers.LSTMCell(2)]
        from_keras(built(keras.layers.RNN(cells)))
    with pytest.raises(ValueError, match="build it first"):
        from_keras(keras.layers.LSTM(2))
    with pytest.warns(UserWarning, match="recurrent_dropout"):
        from_keras(built(keras.layers.LSTM(2, recurrent_dropout=0.1)))


def random_variables(module, x, rng):
    """Random variables (non-zero biases) shaped like ``module.init``'s, without running it."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GRU(3),
        lambda: SimpleRNN(3, activation=jax.nn.relu),
        lambda: LSTM(3, reverse=True),
        lambda: Bidirectional(GRU(2), merge_mode="sum"),
        lambda: StackedRNN([Bidirectional(LSTM(2)), LSTM(3)], dropout_rate=0.1),
    ],
    ids=["gru", "rnn_relu", "lstm_reverse", "bi_gru", "stack"],
)
def test_to_keras_round_trip(make, rng, close):
    x = rng.normal(size=(2, 4, 3)).astype("float32")
    module = make()
    variables = random_variables(module, x, rng)
    layer = to_keras(module, variables)
    y_k = np.asarray(layer(x))
    _, ys = module.apply(variables, x)
    if getattr(module, "reverse", False):
        ys = ys[:, ::-1]
    close(ys, y_k)
    if isinstance(module, StackedRNN):
        return  # a keras.Sequential; from_keras gives an interop.Sequential with other names
    back, back_vars = from_keras(layer)
    same = jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), variables, back_vars
    )
    assert all(jax.tree.leaves(same))  # bit-exact
    assert type(back) is type(module)


def test_to_keras_unsupported(rng):
    x = rng.normal(size=(1, 2, 2)).astype("float32")
    for module, setting in [
        (LSTM(2, use_peepholes=True), "use_peepholes"),
        (GRU(2, time_major=True), "time_major"),
        (SimpleRNN(2, activation=lambda v: v), "activation"),
        (LSTM(2, learn_initial_carry=True), "learn_initial_carry"),
    ]:
        with pytest.raises(ValueError, match=setting):
            to_keras(module, random_variables(module, x, rng))

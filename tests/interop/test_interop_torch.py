"""PyTorch RNN / LSTM / GRU against the seqjax modules from ``from_torch``, and back."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqjax.interop import (  # noqa: E402
    carry_from_torch,
    carry_to_torch,
    from_torch,
    packed_to_padded,
    to_torch,
)
from seqjax.nn import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN  # noqa: E402

KINDS = {
    "lstm": (torch.nn.LSTM, {}),
    "gru": (torch.nn.GRU, {}),
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
}


def make(kind, input_size, hidden_size, seed=0, **kwargs):
    torch.manual_seed(seed)
    cls, extra = KINDS[kind]
    module = cls(input_size, hidden_size, **extra, **kwargs)
    with torch.no_grad():  # larger than the default U(-1/sqrt(H), 1/sqrt(H)), biases non-zero
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module.eval()


def check_states(close, module, carry, states):
    got = carry_to_torch(module, carry)
    if isinstance(states, tuple):
        close(got[0], states[0].detach().numpy())
        close(got[1], states[1].detach().numpy())
    else:
        close(got, states.detach().numpy())


@pytest.mark.parametrize(
    "kind,layout",
    [
        ("lstm", "stack_bi_batch_first"),
        ("gru", "stack_bi_time_major"),
        ("rnn_tanh", "stack_bi_batch_first"),
        ("rnn_relu", "stack_bi_time_major"),
        ("lstm", "single_time_major"),
        ("rnn_relu", "single_batch_first"),
    ],
)
def test_layers_directions_and_layouts(kind, layout, close):
    b, t, f, h = 2, 4, 3, 3
    stacked = layout.startswith("stack")
    batch_first = layout.endswith("batch_first")
    module = make(
        kind,
        f,
        h,
        num_layers=2 if stacked else 1,
        bidirectional=stacked,
        batch_first=batch_first,
        dropout=0.25 if stacked else 0.0,
    )
    x = torch.randn(b, t, f) if batch_first else torch.randn(t, b, f)
    out, states = module(x)
    seq_module, variables = from_torch(module)
    if stacked:
        assert isinstance(seq_module, StackedRNN) and seq_module.dropout_rate == 0.25
        assert all(isinstance(level, Bidirectional) for level in seq_module.layers)
    else:
        assert isinstance(seq_module, {"lstm": LSTM, "gru": GRU}.get(kind, SimpleRNN))
    carry, ys = seq_module.apply(variables, x.numpy())
    close(ys, out.detach().numpy())
    check_states(close, seq_module, carry, states)


@pytest.mark.parametrize("kind,shape", [("lstm", (1, 1, 1, 1)), ("gru", (3, 2, 1, 4))])
def test_small_shapes_and_no_bias(kind, shape, close):
    b, t, f, h = shape
    module = make(kind, f, h, batch_first=True, bias=False)
    x = torch.randn(b, t, f)
    out, states = module(x)
    seq_module, variables = from_torch(module)
    carry, ys = seq_module.apply(variables, x.numpy())
    close(ys, out.detach().numpy())
    check_states(close, seq_module, carry, states)


@pytest.mark.parametrize("kind", ["lstm", "rnn_tanh"])
def test_initial_state(kind, close):
    b, t, f, h, layers = 2, 3, 2, 3, 2
    module = make(kind, f, h, num_layers=layers, bidirectional=True, batch_first=True)
    x = torch.randn(b, t, f)
    h0 = torch.randn(2 * layers, b, h)
    init = (h0, torch.randn(2 * layers, b, h)) if kind == "lstm" else h0
    out, states = module(x, init)
    seq_module, variables = from_torch(module)
    carry0 = (
        carry_from_torch(seq_module, *init)
        if kind == "lstm"
        else carry_from_torch(seq_module, init)
    )
    carry, ys = seq_module.apply(variables, x.numpy(), initial_carry=carry0)
    close(ys, out.detach().numpy())
    check_states(close, seq_module, carry, states)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_packed_sequence_is_seq_lengths(kind, close):
    b, t, f, h = 4, 5, 2, 3
    module = make(kind, f, h, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([3, 5, 1, 4])  # unsorted
    x = torch.randn(b, t, f) * (torch.arange(t)[None, :, None] < lengths[:, None, None])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )
    out_packed, states = module(packed)
    out, out_lengths = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True)
    xs, seq_lengths = packed_to_padded(packed)
    np.testing.assert_array_equal(seq_lengths, lengths.numpy())
    np.testing.assert_array_equal(xs, x.numpy())
    seq_module, variables = from_torch(module)
    carry, ys = seq_module.apply(variables, xs, seq_lengths=seq_lengths)
    close(ys, out.detach().numpy())  # zeros past each row's length, in both
    check_states(close, seq_module, carry, states)


def random_variables(module, x, seed=0):
    """Random variables (non-zero biases) shaped like ``module.init``'s, without running it."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.key(0), x)
    return jax.tree.map(lambda s: (0.5 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


@pytest.mark.parametrize(
    "make_module",
    [
        lambda: LSTM(3),
        lambda: SimpleRNN(2, activation=jax.nn.relu, time_major=True),
        lambda: StackedRNN([Bidirectional(GRU(3)), Bidirectional(GRU(3))], dropout_rate=0.5),
    ],
    ids=["lstm", "rnn_relu_time_major", "stack_bi_gru"],
)
def test_round_trip_seqjax_torch_seqjax(make_module, close):
    module = make_module()
    x = np.random.default_rng(1).normal(size=(2, 3, 2)).astype(np.float32)
    variables = random_variables(module, x)
    torch_module = to_torch(module, variables)
    back, back_vars = from_torch(torch_module)
    same = jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), variables, back_vars
    )
    assert all(jax.tree.leaves(same))  # bit-exact
    assert type(back) is type(module)
    out, _ = torch_module.eval()(torch.from_numpy(x))  # eval: no dropout between layers
    close(back.apply(back_vars, x)[1], out.detach().numpy())


def test_unsupported_settings_name_the_setting():
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(2, 4, proj_size=2))
    with pytest.raises(TypeError, match="LSTMCell"):
        from_torch(torch.nn.LSTMCell(2, 4))
    x = np.zeros((1, 2, 2), np.float32)
    for module, setting in [
        (LSTM(2, use_peepholes=True), "use_peepholes"),
        (LSTM(2, reverse=True), "reverse=True"),
        (GRU(2, learn_initial_carry=True), "learn_initial_carry"),
        (SimpleRNN(2, activation=jax.nn.sigmoid), "activation"),
        (Bidirectional(LSTM(2), merge_mode="sum"), "merge_mode"),
        (StackedRNN([LSTM(2), GRU(2)]), "kind"),
    ]:
        with pytest.raises(ValueError, match=setting):
            to_torch(module, random_variables(module, x))

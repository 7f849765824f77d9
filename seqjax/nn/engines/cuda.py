"""cuDNN engine for the LSTM on CUDA GPUs, through :func:`jax.experimental.rnn.lstm`.

Opt-in (``LSTM(H, implementation="cudnn")``): the whole time loop, forward and backward, is one
cuDNN call per direction (``cudnnRNNForward`` / ``cudnnRNNBackwardData_v8`` /
``cudnnRNNBackwardWeights_v8``). The maths is that of :func:`seqjax.nn.lstm.lstm_step` with tanh
activations and no peepholes; what :func:`unsupported` lists is not covered and the layer must run
``implementation="scan"``.

Weight layout. Ours: ``kernel`` W ``[F, 4H]``, ``recurrent_kernel`` U ``[H, 4H]``, ``bias`` b
``[4H]``, gate blocks (i, f, g, o) along the last axis, forget bias inside b. cuDNN's (one flat
float32 vector, ``jax.experimental.rnn``'s layout for one layer, one direction)::

    [ W_ih [4H, F] | W_hh [4H, H] | b_ih [4H] | b_hh [4H] ]     gate blocks (i, f, g, o) on axis 0

so ``W_ih = W.T``, ``W_hh = U.T``, ``b_ih = b`` and ``b_hh = 0`` (cuDNN's "double bias" adds both;
their sum is our single bias). cuDNN's LSTM gate order is (i, f, g, o), as ours and PyTorch's
(MIOpen, on ROCm, orders them differently: not covered).

Time. ``jax.experimental.rnn.lstm`` is batch-major and takes ``seq_lengths`` (full lengths when
the layer gets none). A row of length 0 runs one step there (``lstm_ref`` would return the carry
after the padding, cuDNN's handling of zero lengths is not documented for this call), so each
length is raised to at least 1 and a length-0 row's carry is replaced by its initial carry and
its outputs by zeros afterwards; outputs past each row's length are zeroed with a mask (cuDNN
already writes zeros there; ``lstm_ref`` too). ``reverse=True`` reverses each row's valid prefix
before and after the call (:func:`seqjax.nn.recurrence.reverse_padded`); cuDNN's own reverse
direction exists only as half of a bidirectional layer.

Limits of ``jax.experimental.rnn`` (jax 0.10): float32 only (``CUDNN_DATA_FLOAT`` in jaxlib's
``rnn_kernels.cc``); its abstract evaluation asks the CUDA plugin for workspace sizes, so the layer
can be traced only where the CUDA plugin is installed (no ``jax.export(..., platforms=["cuda"])``
from a CPU-only host); no batching rule (``jax.vmap`` of the layer fails); first-order
reverse-mode differentiation only (a ``custom_vjp``); the lengths are copied to the host and the
stream synchronised on each call. TF32: allowed unless ``jax_default_matmul_precision`` is
"highest"/"float32" (the same switch as XLA's float32 matmuls).

Everything except the cuDNN call is a pure function of arrays; :func:`lstm_time_major` takes the
LSTM function as an argument, so the packing and the length/reverse handling run on CPU with
:func:`reference_lstm` (``jax.experimental.rnn.lstm_ref`` on the same flat weights) in its place
(``tests/nn/test_cuda_engine.py`` compares that pipeline with the scan).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import rnn

__all__ = [
    "lstm_time_major",
    "pack_lstm_weights",
    "reference_lstm",
    "run_layer",
    "unavailable_reason",
    "unsupported",
]

# rnn.lstm's signature: (x [B, T, F], h0 [1, B, H], c0 [1, B, H], weights, seq_lengths [B] int32,
# input_size, hidden_size, num_layers, dropout, bidirectional, precision) -> (y, h_n, c_n).
LstmFn = Callable[..., tuple[jax.Array, jax.Array, jax.Array]]

_BF16_PRECISIONS = ("bfloat16", "default", "fastest")


def pack_lstm_weights(kernel: jax.Array, recurrent_kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """Our LSTM weights as ``jax.experimental.rnn``'s flat cuDNN weight vector (one layer).

    Args:
      kernel: W ``[F, 4H]``; recurrent_kernel: U ``[H, 4H]``; bias: b ``[4H]`` (with the forget
        bias in it); gate blocks (i, f, g, o) along the last axis.

    Returns:
      ``[4H*F + 4H*H + 8H]``: ``W.T`` ``[4H, F]``, ``U.T`` ``[4H, H]``, then the input bias b and a
      zero recurrent bias, each ``[4H]`` (gate order (i, f, g, o) kept), the layout that
      ``rnn.unpack_lstm_weights`` reads and ``rnn.lstm`` passes to cuDNN.

    >>> import jax.numpy as jnp
    >>> from jax.experimental import rnn
    >>> w = jnp.arange(8.0).reshape(2, 4)  # F=2, H=1: columns are the gates i, f, g, o
    >>> u = jnp.full((1, 4), 10.0)
    >>> b = jnp.array([0.0, 1.0, 0.0, 0.0])  # forget bias 1
    >>> flat = pack_lstm_weights(w, u, b)
    >>> flat.shape
    (20,)
    >>> w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, 2, 1, 1, False)
    >>> w_ih[0].tolist()  # [4H, F]: one row per gate
    [[0.0, 4.0], [1.0, 5.0], [2.0, 6.0], [3.0, 7.0]]
    >>> b_ih[0].tolist(), b_hh[0].tolist()
    ([0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    """
    in_features, gates = kernel.shape
    hidden = gates // 4
    if gates != 4 * hidden or recurrent_kernel.shape != (hidden, gates) or bias.shape != (gates,):
        raise ValueError(
            "pack_lstm_weights: expected kernel [F, 4H], recurrent_kernel [H, 4H], bias [4H]; got "
            f"{kernel.shape}, {recurrent_kernel.shape}, {bias.shape}."
        )
    return jnp.concatenate(
        [kernel.T.reshape(-1), recurrent_kernel.T.reshape(-1), bias, jnp.zeros_like(bias)]
    )


def reference_lstm(
    x,
    h_0,
    c_0,
    weights,
    seq_lengths,
    input_size,
    hidden_size,
    num_layers,
    dropout,
    bidirectional,
    precision=None,
):
    """``rnn.lstm``'s signature and flat weights, computed by ``rnn.lstm_ref`` (pure JAX, any backend).

    ``x [B, T, F]``, ``h_0, c_0 [layers*directions, B, H]``, ``seq_lengths [B]`` int32 ->
    ``(y [B, T, H*directions], h_n, c_n)``. ``precision`` is ignored (cuDNN's TF32 switch).
    Unlike cuDNN, a row of length 0 returns the carry after all padded steps (``lstm_ref`` picks
    step ``length - 1 = -1``); :func:`lstm_time_major` never passes length 0.

    >>> import jax, jax.numpy as jnp
    >>> flat = pack_lstm_weights(jnp.ones((2, 4)), jnp.zeros((1, 4)), jnp.zeros(4))
    >>> y, h, c = reference_lstm(jnp.zeros((3, 5, 2)), jnp.zeros((1, 3, 1)), jnp.zeros((1, 3, 1)),
    ...                          flat, jnp.array([5, 2, 1], jnp.int32), 2, 1, 1, 0.0, False)
    >>> y.shape, h.shape
    ((3, 5, 1), (1, 3, 1))
    """
    del precision
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, num_layers, bidirectional
    )
    return rnn.lstm_ref(
        x,
        h_0,
        c_0,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        seq_lengths,
        input_size,
        hidden_size,
        num_layers,
        dropout,
        bidirectional,
    )


def _reverse_rows(xs_tm, lengths, full):
    """Reverses each row's valid prefix of ``[T, B, ...]`` (all of time when ``full``)."""
    from seqjax.nn.recurrence import reverse_padded

    return xs_tm[::-1] if full else reverse_padded(xs_tm, lengths)


def lstm_time_major(
    kernel: jax.Array,
    recurrent_kernel: jax.Array,
    bias: jax.Array,
    h0: jax.Array,
    c0: jax.Array,
    xs_tm: jax.Array,
    seq_lengths: jax.Array | None,
    *,
    reverse: bool,
    lstm_fn: LstmFn,
    precision=None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One LSTM layer over a time-major batch through ``lstm_fn`` (``rnn.lstm`` or
    :func:`reference_lstm`), with our contract for lengths and reverse.

    Args:
      kernel, recurrent_kernel, bias: W ``[F, 4H]``, U ``[H, 4H]``, b ``[4H]``, gates (i, f, g, o).
      h0, c0: initial hidden and cell state, each ``[B, H]``.
      xs_tm: inputs ``[T, B, F]``.
      seq_lengths: ``[B]`` integer lengths of right-padded rows, or None (all ``T``).
      reverse: run each row from its own last valid step to its first.
      lstm_fn: a function with ``rnn.lstm``'s signature.
      precision: passed to ``lstm_fn`` (None: TF32 as ``jax_default_matmul_precision`` says).

    Returns:
      ``(h, c, hs)``: the carry at each row's last valid step (the initial carry for a row of
      length 0), each ``[B, H]``, and the hidden states ``[T, B, H]`` in the original time order,
      zero past each row's length.
    """
    time, batch, in_features = xs_tm.shape
    hidden = recurrent_kernel.shape[0]
    full = seq_lengths is None
    lengths = (
        jnp.full((batch,), time, jnp.int32)
        if seq_lengths is None
        else seq_lengths.astype(jnp.int32)
    )
    if reverse:
        xs_tm = _reverse_rows(xs_tm, lengths, full)
    y, h_n, c_n = lstm_fn(
        jnp.swapaxes(xs_tm, 0, 1),
        h0[None],
        c0[None],
        pack_lstm_weights(kernel, recurrent_kernel, bias),
        jnp.maximum(lengths, 1),  # length-0 rows run one step, undone below
        input_size=in_features,
        hidden_size=hidden,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
        precision=precision,
    )
    hs = jnp.swapaxes(y, 0, 1)
    if not full:
        valid = jnp.arange(time)[:, None] < lengths[None, :]  # [T, B]
        hs = jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
        empty = (lengths == 0)[:, None]
        h = jnp.where(empty, h0, h_n[0])
        c = jnp.where(empty, c0, c_n[0])
    else:
        h, c = h_n[0], c_n[0]
    if reverse:
        hs = _reverse_rows(hs, lengths, full)
    return h, c, hs


# ---- the layers' entry point ------------------------------------------------------------------
def unsupported(layer, dtype, *, hidden_offsets: bool = False) -> list[str]:
    """What in ``layer``'s configuration the cuDNN engine does not cover (empty list: covered).

    ``dtype`` is the computation dtype; ``hidden_offsets`` whether the call passes them. Also
    lists a ``jax_default_matmul_precision`` asking for bfloat16 passes (cuDNN's float32 LSTM in
    JAX has none).

    >>> from seqjax.nn import GRU, LSTM
    >>> unsupported(LSTM(4), jnp.float32)
    []
    >>> unsupported(LSTM(4, use_peepholes=True, remat=True), jnp.bfloat16)
    ['use_peepholes=True', 'dtype bfloat16 (jax.experimental.rnn runs cuDNN in float32 only)', 'remat=True']
    >>> unsupported(GRU(4), jnp.float32)
    ['GRU (the cuDNN engine covers the LSTM only)']
    """
    from seqjax.nn.lstm import LSTM

    name = type(layer).__name__
    if not isinstance(layer, LSTM):
        why = [f"{name} (the cuDNN engine covers the LSTM only)"]
    elif layer.kernel != "lstm":  # a subclass with its own step computes another function
        why = [f"{name}'s own step function"]
    else:
        why = layer._kernel_limits()  # peepholes, activations: what the CPU kernel lacks too
    if jnp.dtype(dtype) != jnp.float32:
        why.append(
            f"dtype {jnp.dtype(dtype).name} (jax.experimental.rnn runs cuDNN in float32 only)"
        )
    if hidden_offsets:
        why.append("hidden_offsets")
    if layer.remat:
        why.append("remat=True")
    precision = jax.config.values["jax_default_matmul_precision"]  # context managers included
    if precision is not None and str(precision).lower() in _BF16_PRECISIONS:
        why.append(
            f"jax_default_matmul_precision={precision!r} (no bfloat16 passes in cuDNN's LSTM)"
        )
    return why


def unavailable_reason() -> str | None:
    """Why ``rnn.lstm`` cannot run here (None: the default backend is a GPU with the CUDA plugin).

    >>> import jax
    >>> reason = unavailable_reason()
    >>> jax.default_backend() != "cpu" or reason == "the default JAX backend is 'cpu', not a CUDA GPU"
    True
    """
    backend = jax.default_backend()
    if backend != "gpu":
        return f"the default JAX backend is {backend!r}, not a CUDA GPU"
    try:
        from jaxlib import gpu_rnn
    except ImportError:  # pragma: no cover - jaxlib always ships the module
        return "jaxlib has no gpu_rnn module"
    if getattr(gpu_rnn, "_cuda_rnn", None) is None:
        return "the CUDA plugin's RNN kernels are not installed (e.g. ROCm or a CPU jaxlib)"
    return None


def run_layer(
    layer,
    params,
    carry,
    xs_tm,
    seq_lengths,
    *,
    hidden_offsets: bool = False,
    lstm_fn: LstmFn | None = None,
):
    """The layer's recurrence through cuDNN: ``xs_tm [T, B, F]`` -> ``(LSTMCarry, hs [T, B, H])``.

    Same contract as :func:`seqjax.nn.recurrence.scan_recurrence` (``reverse`` from the layer,
    outputs past a row's length zero, the carry at each row's last valid step). ``lstm_fn``
    replaces ``rnn.lstm`` (e.g. :func:`reference_lstm` to run the same pipeline on CPU); with the
    default, a ValueError naming ``implementation='scan'`` is raised for what :func:`unsupported`
    lists and unless JAX's default backend is a CUDA GPU.
    """
    from seqjax.nn.lstm import LSTMCarry

    if lstm_fn is None:
        why = unsupported(layer, xs_tm.dtype, hidden_offsets=hidden_offsets)
        if why:
            raise ValueError(
                f"{type(layer).__name__}: implementation='cudnn' does not cover {', '.join(why)}; "
                "use implementation='scan' or 'auto'."
            )
        reason = unavailable_reason()
        if reason is not None:
            raise ValueError(
                f"{type(layer).__name__}: implementation='cudnn' runs only on a CUDA GPU ({reason}); "
                "use implementation='scan' or 'auto'."
            )
        lstm_fn = rnn.lstm
    h, c, hs = lstm_time_major(
        params["kernel"],
        params["recurrent_kernel"],
        params["bias"],
        carry.hidden,
        carry.cell,
        xs_tm,
        seq_lengths,
        reverse=layer.reverse,
        lstm_fn=lstm_fn,
    )
    return LSTMCarry(cell=c, hidden=h), hs

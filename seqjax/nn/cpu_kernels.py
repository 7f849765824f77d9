"""CPU kernels for the recurrent layers: the whole time loop as one XLA FFI custom call.

XLA:CPU runs a ``lax.scan`` of small matmuls well below the machine's matmul speed: every step of
its while loop dispatches a dozen separate operations (matmuls, gate fusions, dynamic slices and
updates of the stacked outputs), and those per-operation costs, not the arithmetic, are most of a
training step (benchmarks/NOTES.md). Here the loop is C++ (``csrc/recurrence_cpu.cc``):

* forward: per step ``x_t W + b + h_{t-1} U`` in one pass of a register-blocked matmul, the
  gates, the new carry; when differentiated it keeps the gate activations (and the LSTM cell
  states) for the backward, otherwise a one-step scratch buffer;
* backward: per step the gate gradients and one ``[B, G*H] x [G*H, H]`` matmul for ``dh_{t-1}``;
  the LSTM and GRU write their gradients over the residual buffer (no fresh memory);
* everything that is not sequential stays in XLA as large matmuls after the loop: the weight
  gradients ``dU`` (one ``[H, T*B] x [T*B, G*H]`` matmul), ``dW``, ``db`` and ``dx``;
* steps of at least 2^21 multiply-adds are split by hidden units across XLA's intra-op threads;
  large fresh outputs are given transparent huge pages (fewer first-touch page faults).

Each recurrence is a :func:`jax.custom_vjp`. The maths is that of ``lstm_step`` / ``gru_step`` /
``simple_rnn_step`` with the default tanh activations; ``tests/nn/test_cpu_kernels.py`` checks
outputs, carries and gradients against the scan, the NumPy reference and ``check_grads``.
float32 and float64 only. Limits (raised as errors by the layers, never silently): first-order
reverse mode only (no ``jax.jvp``/forward mode and no grad-of-grad, like cuDNN's RNN in PyTorch);
no peepholes, other activations, ``hidden_offsets`` or ``remat``. ``jax.vmap`` loops over the
mapped axis. On platforms other than CPU the layers run their scan instead (``platform_dependent``),
so the same code runs on GPU/TPU.

The C++ source is compiled at first use with the system C++ compiler (``$CXX`` or ``c++``/``g++``)
against the XLA FFI headers that jaxlib ships, and cached in ``$SEQJAX_CACHE_DIR`` (default
``~/.cache/seqjax``) under a hash of the source, compiler, jaxlib version and CPU, so each machine
builds it once (about 4 s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.nn.engines.cpu_build import KernelUnavailableError, build, load

__all__ = ["KernelUnavailableError", "build", "gru", "load", "lstm", "run_layer", "simple_rnn"]


def _call(name, outs, *args, aliases=None):
    return jax.ffi.ffi_call(name, outs, vmap_method="sequential", input_output_aliases=aliases)(
        *args
    )


def _like(shape, x):
    return jax.ShapeDtypeStruct(shape, x.dtype)


def _previous_hidden(h0, hs):
    """``h_{t-1}`` for every step: ``[h0, hs[0], ..., hs[T-2]]`` ``[T, B, H]``."""
    return jnp.concatenate([h0[None], hs[:-1]], axis=0)


def _outer_sum(a, b):
    """``sum_t a[t]^T b[t]``: one ``[H, T*B] x [T*B, G]`` matmul on the row-major buffers as they
    are (an einsum over (t, b) made XLA copy both operands into another layout first)."""
    a2 = a.reshape(-1, a.shape[-1])
    b2 = b.reshape(-1, b.shape[-1])
    return jax.lax.dot_general(a2, b2, (((0,), (0,)), ((), ())))


def _input_grads(x, w, dxp):
    """Gradients of the input projection ``x W + b`` from ``dxp [T, B, G]``: ``(dx, dW, db)``."""
    dx = (dxp.reshape(-1, dxp.shape[-1]) @ w.T).reshape(x.shape)
    return dx, _outer_sum(x, dxp), dxp.sum(axis=(0, 1))


# The forward kernels take x [T, B, F], W [F, G*H] and b [G*H] and compute x_t W + b per step (an
# [T, B, G*H] projection buffer made beforehand cost more in fresh memory than it saved).


# ---- SimpleRNN: h_t = tanh(x_t W + b + h_{t-1} U) -------------------------------------------
@jax.custom_vjp
def simple_rnn(x, w, b, u, h0, lengths):
    """``x [T, B, F]``, ``w [F, H]``, ``b [H]``, ``u [H, H]``, ``h0 [B, H]``, ``lengths [B]`` ->
    ``(hs [T, B, H], hT)``."""
    return _srn_fwd(x, w, b, u, h0, lengths)[0]


def _srn_fwd(x, w, b, u, h0, lengths):
    t, bsz, _ = x.shape
    outs = (_like((t, bsz, u.shape[0]), x), _like(h0.shape, h0))
    hs, ht = _call("SeqjaxSrnFwd", outs, x, w, b, u, h0, lengths)
    return (hs, ht), (x, w, u, h0, lengths, hs)


def _srn_bwd(res, cts):
    x, w, u, h0, lengths, hs = res
    dhs, dht = cts
    dz, dh0 = _call(
        "SeqjaxSrnBwd", (_like(hs.shape, hs), _like(h0.shape, h0)), u, lengths, hs, dhs, dht
    )
    dx, dw, db = _input_grads(x, w, dz)
    return dx, dw, db, _outer_sum(_previous_hidden(h0, hs), dz), dh0, None


simple_rnn.defvjp(_srn_fwd, _srn_bwd)


# ---- GRU: gates (r, z, n), reset after the matmul -------------------------------------------
@jax.custom_vjp
def gru(x, w, b, u, rb, h0, lengths):
    """``x [T, B, F]``, ``w [F, 3H]``, ``b [3H]``, ``u [H, 3H]``, recurrent bias ``rb [3H]``,
    ``h0 [B, H]`` -> ``(hs [T, B, H], hT)``."""
    return _gru_run(x, w, b, u, rb, h0, lengths, residuals=False)[0]


def _gru_run(x, w, b, u, rb, h0, lengths, residuals):
    t, bsz, _ = x.shape
    h = u.shape[0]
    steps = t if residuals else 1  # without residuals: a one-step scratch buffer
    outs = (_like((t, bsz, h), x), _like((steps, bsz, 4 * h), x), _like(h0.shape, h0))
    hs, res, ht = _call("SeqjaxGruFwd", outs, x, w, b, u, rb, h0, lengths)
    return (hs, ht), (x, w, u, h0, lengths, hs, res)


def _gru_fwd(x, w, b, u, rb, h0, lengths):
    return _gru_run(x, w, b, u, rb, h0, lengths, residuals=True)


def _gru_bwd(res_, cts):
    x, w, u, h0, lengths, hs, res = res_
    dhs, dht = cts
    h = u.shape[0]
    # d4 = [dr, dz, dn_x, dn_h] over the residuals' buffer (dead after this call): no fresh
    # [T, B, 3H] gradients. The input part is blocks (0, 1, 2), the recurrent part (0, 1, 3); the
    # weight gradients come from one matmul against all four blocks (a quarter more FLOPs, no
    # copies of the large gradient), then the small [., 4H] results are sliced.
    outs = (_like(res.shape, res), _like(h0.shape, h0))
    d4, dh0 = _call("SeqjaxGruBwd", outs, u, h0, lengths, hs, res, dhs, dht, aliases={4: 0})

    def recurrent_part(m):
        return jnp.concatenate([m[..., : 2 * h], m[..., 3 * h :]], axis=-1)

    d2 = d4.reshape(-1, 4 * h)
    x2 = x.reshape(-1, x.shape[-1])
    w4 = jnp.concatenate([w, jnp.zeros((w.shape[0], h), w.dtype)], axis=1)  # dn_h gets no W
    dx = (d2 @ w4.T).reshape(x.shape)
    dw = jax.lax.dot_general(x2, d2, (((0,), (0,)), ((), ())))[:, : 3 * h]
    sums = d2.sum(axis=0)
    du = recurrent_part(_outer_sum(_previous_hidden(h0, hs), d4))
    return dx, dw, sums[: 3 * h], du, recurrent_part(sums), dh0, None


gru.defvjp(_gru_fwd, _gru_bwd)


# ---- LSTM: gates (i, f, g, o) ---------------------------------------------------------------
@jax.custom_vjp
def lstm(x, w, b, u, h0, c0, lengths):
    """``x [T, B, F]``, ``w [F, 4H]``, ``b [4H]``, ``u [H, 4H]``, ``h0, c0 [B, H]`` ->
    ``(hs [T, B, H], hT, cT)``."""
    return _lstm_run(x, w, b, u, h0, c0, lengths, residuals=False)[0]


def _lstm_run(x, w, b, u, h0, c0, lengths, residuals):
    t, bsz, _ = x.shape
    h, g = u.shape
    steps = t if residuals else 1  # without residuals: one-step scratch buffers
    outs = (
        _like((t, bsz, h), x),
        _like((steps, bsz, h), x),
        _like((steps, bsz, g), x),
        _like(h0.shape, h0),
        _like(c0.shape, c0),
    )
    hs, cs, acts, ht, ct = _call("SeqjaxLstmFwd", outs, x, w, b, u, h0, c0, lengths)
    return (hs, ht, ct), (x, w, u, h0, c0, lengths, hs, cs, acts)


def _lstm_fwd(x, w, b, u, h0, c0, lengths):
    return _lstm_run(x, w, b, u, h0, c0, lengths, residuals=True)


def _lstm_bwd(res, cts):
    x, w, u, h0, c0, lengths, hs, cs, acts = res
    dhs, dht, dct = cts
    outs = (_like(acts.shape, acts), _like(h0.shape, h0), _like(c0.shape, c0))
    # dz overwrites the activations in place (same shape; they are dead after this call), which
    # spares a fresh [T, B, 4H] buffer and its page faults every training step.
    dz, dh0, dc0 = _call(
        "SeqjaxLstmBwd", outs, u, c0, lengths, cs, acts, dhs, dht, dct, aliases={4: 0}
    )
    dx, dw, db = _input_grads(x, w, dz)
    return dx, dw, db, _outer_sum(_previous_hidden(h0, hs), dz), dh0, dc0, None


lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ---- the layers' entry point ------------------------------------------------------------------
def _is_tanh(fn) -> bool:
    return fn is jnp.tanh or fn is jax.nn.tanh or fn is jax.lax.tanh


def unsupported(layer, dtype, *, hidden_offsets: bool) -> list[str]:
    """What in ``layer``'s configuration the kernels do not cover (empty list: covered)."""
    from seqjax.nn.gru import GRU
    from seqjax.nn.lstm import LSTM
    from seqjax.nn.simple_rnn import SimpleRNN

    why = []
    cls = type(layer)
    if isinstance(layer, LSTM) and cls._step_fn is LSTM._step_fn:
        if layer.use_peepholes:
            why.append("use_peepholes=True")
        if not (_is_tanh(layer.cell_activation) and _is_tanh(layer.output_activation)):
            why.append("cell/output activations other than tanh")
    elif isinstance(layer, GRU | SimpleRNN) and cls._step_fn in (GRU._step_fn, SimpleRNN._step_fn):
        if not _is_tanh(layer.activation):
            why.append(f"activation {getattr(layer.activation, '__name__', layer.activation)!r}")
    else:
        why.append(f"{cls.__name__} (kernels exist for SimpleRNN, GRU and LSTM)")
    if jnp.dtype(dtype) not in (jnp.float32, jnp.float64):
        why.append(f"dtype {jnp.dtype(dtype).name} (float32/float64 only)")
    if hidden_offsets:
        why.append("hidden_offsets")
    if layer.remat:
        why.append("remat=True")
    return why


def run_layer(layer, params, carry, xs_tm, seq_lengths):
    """The layer's recurrence through the kernel: ``xs_tm [T, B, F]`` -> ``(carry, hs [T, B, H])``.

    Same contract as :func:`seqjax.nn.recurrence.scan_recurrence` (``reverse`` from the layer).
    """
    from seqjax.nn.gru import GRU
    from seqjax.nn.lstm import LSTM, LSTMCarry
    from seqjax.nn.recurrence import reverse_padded

    load()
    time, batch = xs_tm.shape[:2]
    if seq_lengths is None:
        lengths = jnp.full((batch,), time, jnp.int32)
    else:
        lengths = seq_lengths.astype(jnp.int32)
    if layer.reverse:
        xs_tm = xs_tm[::-1] if seq_lengths is None else reverse_padded(xs_tm, seq_lengths)
    w, b, u = params["kernel"], layer._input_bias(params), params["recurrent_kernel"]
    if isinstance(layer, LSTM):
        hs, h, c = lstm(xs_tm, w, b, u, carry.hidden, carry.cell, lengths)
        carry = LSTMCarry(cell=c, hidden=h)
    elif isinstance(layer, GRU):
        hs, carry = gru(xs_tm, w, b, u, params["recurrent_bias"], carry, lengths)
    else:
        hs, carry = simple_rnn(xs_tm, w, b, u, carry, lengths)
    if layer.reverse:
        hs = hs[::-1] if seq_lengths is None else reverse_padded(hs, seq_lengths)
    return carry, hs

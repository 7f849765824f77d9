"""Fast path for the recurrent layers: the time loop with a cuDNN-style derivative.

The plain ``lax.scan`` (:func:`seqjax.nn.recurrence.scan_recurrence`) differentiated by JAX
accumulates the recurrent-kernel gradient inside the backward loop: every step adds an
``[H, B] x [B, G]`` outer product into an ``[H, G]`` buffer (read, add, write the whole kernel
gradient T times). Here the derivative of the loop is written by hand:

* forward loop: ``hp_t = h_{t-1} U (+ c)``, the gates, the new carry; it also keeps the previous
  carries and the pre-activations ``z_t`` (or ``hp_t``) as residuals;
* backward loop: per step only the gate gradient (``jax.vjp`` of the elementwise gate function)
  and ``dh_{t-1} += dz_t U^T``; the gate gradients of all steps are stacked;
* after the loop, ONE ``[H, T*B] x [T*B, G]`` matmul gives ``dU`` (and a sum gives the recurrent
  bias gradient); the input-kernel and bias gradients come from differentiating the input
  projection outside, which is already one large matmul.

It is a ``jax.custom_jvp`` whose tangent is a ``linear_call`` with that hand-written transpose,
so forward mode (``jax.jvp``, ``check_grads(modes=["fwd"])``) works too and reverse mode runs
the cuDNN-style backward. The maths is the same function as the layer's step (same operations in
the same order); ``tests/nn/test_fast_path.py`` checks it against the plain scan.

Opt-in: ``seqjax.nn.fused.set_enabled(True)`` before tracing. Limitation: first-order derivatives
in both modes only (grad-of-grad through ``linear_call`` raises); leave it off for Hessians.

Covered: SimpleRNN, GRU, LSTM without peepholes, any activations, ``seq_lengths``, ``reverse``,
``unroll``, any dtype, learned or passed initial carries. Everything else (``hidden_offsets``,
``remat``, peepholes, subclasses with their own step) uses the plain scan.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero, linear_call

from seqjax.nn.recurrence import reverse_padded

# Off by default (opt-in): on the 2-CPU benchmark machine it was not reliably faster than the plain
# scan (benchmarks/NOTES.md) and second-order reverse mode through ``linear_call`` is not supported.
_ENABLED = False
# Lever (benchmarks/NOTES.md): keep the per-step slices of the stacked inputs out of the gate
# kernels (XLA CPU otherwise fuses the dynamic slice into the elementwise fusion, which then runs
# several times slower than on a materialised [B, G] buffer).
BARRIER = True


def _barrier(tree):
    return jax.lax.optimization_barrier(tree) if BARRIER else tree


def set_enabled(enabled: bool) -> None:
    """Turns the fast path on or off (read when a layer is traced; for benchmarks and tests)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def is_enabled() -> bool:
    return _ENABLED


class CellSpec(NamedTuple):
    """The elementwise part of a cell.

    additive: ``gate(prev_carry, z)`` with ``z = x_proj + h_prev U`` (LSTM, SimpleRNN).
    otherwise: ``gate(prev_carry, x_proj, hp)`` with ``hp = h_prev U + recurrent_bias`` (GRU).
    """

    gate: Callable[..., Any]
    additive: bool
    recurrent_bias: str | None
    get_hidden: Callable[[Any], jax.Array]
    set_hidden: Callable[[Any, jax.Array], Any]


def cell_spec(layer) -> CellSpec | None:
    """The spec for a layer configuration the fast path covers, else None."""
    from seqjax.nn.gru import GRU
    from seqjax.nn.lstm import LSTM, LSTMCarry
    from seqjax.nn.simple_rnn import SimpleRNN

    cls = type(layer)
    if isinstance(layer, LSTM) and cls._step_fn is LSTM._step_fn and not layer.use_peepholes:
        ca, oa = layer.cell_activation, layer.output_activation

        def lstm_gate(carry, z):  # lstm_step after its matmul, op for op
            c, _ = carry
            z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
            i = jax.nn.sigmoid(z_i)
            f = jax.nn.sigmoid(z_f)
            g = ca(z_g)
            c = f * c + i * g
            o = jax.nn.sigmoid(z_o)
            return LSTMCarry(cell=c, hidden=o * oa(c))

        return CellSpec(lstm_gate, True, None, layer._get_hidden, layer._set_hidden)
    if isinstance(layer, GRU) and cls._step_fn is GRU._step_fn:
        act = layer.activation

        def gru_gate(hidden, x_proj, h_proj):  # gru_step after its matmul, op for op
            x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(h_proj, 3, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = act(x_n + r * h_n)
            return (1.0 - z) * n + z * hidden

        return CellSpec(gru_gate, False, "recurrent_bias", layer._get_hidden, layer._set_hidden)
    if isinstance(layer, SimpleRNN) and cls._step_fn is SimpleRNN._step_fn:
        act = layer.activation
        return CellSpec(lambda h, z: act(z), True, None, layer._get_hidden, layer._set_hidden)
    return None


def _where(keep, new, old):
    return jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)


def _big_matmul(hs, d, dtype):
    """``sum_t hs[t]^T d[t]`` as one [H, T*B] x [T*B, G] matmul (f32 accumulation for 16-bit)."""
    acc = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else None
    out = jax.lax.dot_general(
        hs.reshape(-1, hs.shape[-1]),
        d.reshape(-1, d.shape[-1]),
        (((0,), (0,)), ((), ())),
        preferred_element_type=acc,
    )
    return out.astype(dtype)


def fused_recurrence(
    spec: CellSpec,
    params: dict[str, jax.Array],
    carry: Any,
    xs_tm: jax.Array,
    *,
    seq_lengths: jax.Array | None = None,
    reverse: bool = False,
    unroll: int = 1,
) -> tuple[Any, jax.Array]:
    """Same contract as :func:`seqjax.nn.recurrence.scan_recurrence` (without offsets / remat)."""
    flip_rows = reverse and seq_lengths is not None
    if flip_rows and seq_lengths is not None:  # (flip_rows implies it; said for the type checker)
        xs_tm = reverse_padded(xs_tm, seq_lengths)
    time = xs_tm.shape[0]
    mask = None
    if seq_lengths is not None:
        mask = jnp.arange(time)[:, None] < seq_lengths[None, :]  # [T, B]
    scan_rev = reverse and not flip_rows
    u = params["recurrent_kernel"]
    rb = params[spec.recurrent_bias] if spec.recurrent_bias else None
    run = _make_fused(spec, mask is not None, scan_rev, unroll)
    carry, hs = run(u, rb, carry, xs_tm, mask)
    if flip_rows and seq_lengths is not None:
        hs = reverse_padded(hs, seq_lengths)
    return carry, hs


def _make_fused(spec: CellSpec, masked: bool, scan_rev: bool, unroll: int):
    gate, additive = spec.gate, spec.additive
    get_h, set_h = spec.get_hidden, spec.set_hidden

    def forward(u, rb, carry, xs, mask, keep_residuals):
        def body(carry, inp):
            x_t, m_t = _barrier(inp)
            hp = get_h(carry) @ u
            if rb is not None:
                hp = hp + rb
            if additive:
                a = x_t + hp
                new = gate(carry, a)
            else:
                a = hp
                new = gate(carry, x_t, hp)
            h = get_h(new)
            if masked:
                keep = m_t[:, None]
                new = _where(keep, new, carry)
                h = jnp.where(keep, h, jnp.zeros_like(h))
            out = (h, carry, a) if keep_residuals else h
            return new, out

        return jax.lax.scan(body, carry, (xs, mask), reverse=scan_rev, unroll=unroll)

    # ---- the linear (tangent) map and its hand-written transpose -----------------------------
    def tangent(res, lin):
        u, xs, mask, prevs, acts = res
        du, drb, dcarry, dxs = lin
        dcarry = jax.tree.map(
            lambda d, p: jnp.zeros(p.shape[1:], p.dtype) if d is None else d,
            dcarry,
            prevs,
            is_leaf=lambda v: v is None,
        )
        if dxs is None:
            dxs = jnp.zeros_like(xs)
        extra = 0
        if du is not None:  # one big matmul outside the loop
            extra = jnp.einsum("tbh,hg->tbg", get_h(prevs), du)
        if drb is not None:
            extra = extra + drb
        if additive:
            dins = dxs + extra
        else:
            dins = jnp.zeros(acts.shape, acts.dtype) + extra

        def body(dc, inp):
            din_t, dx_t, prev_t, a_t, x_t, m_t = _barrier(inp)
            dhp = get_h(dc) @ u
            if additive:
                _, dnew = jax.jvp(gate, (prev_t, a_t), (dc, din_t + dhp))
            else:
                _, dnew = jax.jvp(gate, (prev_t, x_t, a_t), (dc, dx_t, din_t + dhp))
            dh = get_h(dnew)
            if masked:
                keep = m_t[:, None]
                dnew = _where(keep, dnew, dc)
                dh = jnp.where(keep, dh, jnp.zeros_like(dh))
            return dnew, dh

        inputs = (dins, None if additive else dxs, prevs, acts, None if additive else xs, mask)
        return jax.lax.scan(body, dcarry, inputs, reverse=scan_rev, unroll=unroll)

    def transpose(present, res, cts):
        u, xs, mask, prevs, acts = res
        ct_carry, ct_hs = cts
        ct_carry = jax.tree.map(
            lambda c, p: jnp.zeros(p.shape[1:], p.dtype) if type(c).__name__ == "Zero" else c,
            ct_carry,
            prevs,
        )
        if type(ct_hs).__name__ == "Zero":
            ct_hs = jnp.zeros_like(get_h(prevs))
        ut = u.T

        def body(ct, inp):
            ct_h_t, prev_t, a_t, x_t, m_t = _barrier(inp)
            if masked:
                keep = m_t[:, None]
                ct_h_t = jnp.where(keep, ct_h_t, jnp.zeros_like(ct_h_t))
                passed = _where(keep, jax.tree.map(jnp.zeros_like, ct), ct)
                ct = _where(keep, ct, jax.tree.map(jnp.zeros_like, ct))
            ct = set_h(ct, get_h(ct) + ct_h_t)
            if additive:
                _, pull = jax.vjp(gate, prev_t, a_t)
                ct_prev, ct_a = pull(ct)
                outs = ct_a
            else:
                _, pull = jax.vjp(gate, prev_t, x_t, a_t)
                ct_prev, ct_x, ct_a = pull(ct)
                outs = (ct_x, ct_a)
            ct_prev = set_h(ct_prev, get_h(ct_prev) + ct_a @ ut)
            if masked:
                ct_prev = jax.tree.map(jnp.add, ct_prev, passed)
            return ct_prev, outs

        inputs = (ct_hs, prevs, acts, None if additive else xs, mask)
        ct_carry0, outs = jax.lax.scan(body, ct_carry, inputs, reverse=not scan_rev, unroll=unroll)
        ct_a = outs if additive else outs[1]
        ct_xs = outs if additive else outs[0]
        p_u, p_rb, p_carry, p_xs = present
        ct_u = _big_matmul(get_h(prevs), ct_a, u.dtype) if p_u is not None else None
        ct_rb = jnp.sum(ct_a, axis=(0, 1)).astype(p_rb) if p_rb is not None else None
        ct_carry0 = jax.tree.map(
            lambda p, c: None if p is None else c.astype(p),
            p_carry,
            ct_carry0,
            is_leaf=lambda v: v is None,
        )
        ct_xs = ct_xs.astype(xs.dtype) if p_xs is not None else None
        return ct_u, ct_rb, ct_carry0, ct_xs

    @jax.custom_jvp
    def run(u, rb, carry, xs, mask):
        return forward(u, rb, carry, xs, mask, keep_residuals=False)

    def run_jvp(primals, tangents):
        u, rb, carry, xs, mask = primals
        is_zero = lambda t: isinstance(t, SymbolicZero)
        nz = lambda t: None if t is None or is_zero(t) else t
        du, drb, dxs = nz(tangents[0]), nz(tangents[1]), nz(tangents[3])
        dcarry = jax.tree.map(nz, tangents[2], is_leaf=is_zero)
        lin = (du, drb, dcarry, dxs)
        final, (hs, prevs, acts) = forward(u, rb, carry, xs, mask, keep_residuals=True)
        if not jax.tree.leaves(lin):
            zeros = jax.tree.map(jnp.zeros_like, (final, hs))
            return (final, hs), zeros
        # static description of which linear inputs are present (their dtypes), for the transpose
        dt = lambda v: None if v is None else v.dtype
        present = (
            dt(du),
            dt(drb),
            jax.tree.map(dt, dcarry, is_leaf=lambda v: v is None),
            dt(dxs),
        )
        res = (u, xs, mask, prevs, acts)
        d_out = linear_call(tangent, functools.partial(transpose, present), res, lin)
        return (final, hs), d_out

    run.defjvp(run_jvp, symbolic_zeros=True)

    return run

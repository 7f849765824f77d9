"""The CPU kernels' contract in pure JAX: forward with residuals and backward, as ``lax.scan``.

Each function computes exactly what the matching C++ kernel (``csrc/recurrence_cpu.cc``) computes,
with the same outputs and the same residual layout, so it is both the reference the kernel is
tested against and the lowering used where the kernel is not (other platforms, or a CPU without a
C++ compiler). Layouts are time-major: ``x [T, B, F]``, ``W [F, G*H]``, ``b [G*H]``,
``U [H, G*H]``, carries ``[B, H]``, ``lengths [B]`` int32 (steps ``t >= lengths[b]`` keep row
``b``'s carry and output zeros). ``residuals=False`` returns one-step scratch buffers of zeros
where the kernel returns its scratch space (``[1, B, ...]``, and ``[H + F + 1, 1, B]`` for the
weight gradients' operand); their values are never read.

>>> import jax.numpy as jnp, numpy as np
>>> x, w, b, u = jnp.ones((3, 2, 1)), jnp.ones((1, 1)), jnp.zeros(1), jnp.zeros((1, 1))
>>> hs, ht, _ = srn_forward(x, w, b, u, jnp.zeros((2, 1)), jnp.array([3, 1]), residuals=True)
>>> as_list = lambda a: np.asarray(a, np.float64).round(3).tolist()
>>> as_list(hs[:, :, 0]), as_list(ht[:, 0])
([[0.762, 0.762], [0.762, 0.0], [0.762, 0.0]], [0.762, 0.762])
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _active(lengths: Array, time: int) -> Array:
    """``[T, B, 1]`` booleans: step ``t`` of row ``b`` is inside the row's length."""
    return (jnp.arange(time)[:, None] < lengths[None, :])[..., None]


def _previous(first: Array, states: Array) -> Array:
    """``[first, states[0], ..., states[T-2]]`` ``[T, B, H]``: the state before each step."""
    return jnp.concatenate([first[None], states[:-1]], axis=0)


def weight_operand(x: Array, h0: Array, hs: Array, *, residuals: bool) -> Array:
    """``[H + F + 1, T, B]``, column ``(t, b)`` = ``[h_{t-1}, x_t, 1]`` (``h_{t-1}`` the previous
    output, ``h0`` at ``t = 0``): the weight gradients ``[dU; dW; db]`` are this times ``dz``
    over ``(t, b)``, one plain matmul. Without residuals a ``[H + F + 1, 1, B]`` scratch buffer."""
    width = h0.shape[-1] + x.shape[-1] + 1
    if not residuals:
        return jnp.zeros((width, 1, x.shape[1]), x.dtype)
    ones = jnp.ones((*x.shape[:2], 1), x.dtype)
    return jnp.concatenate([_previous(h0, hs), x, ones], axis=-1).transpose(2, 0, 1)


def _scratch(steps_like: Array, width: int) -> Array:
    return jnp.zeros((1, steps_like.shape[1], width), steps_like.dtype)


# ---- SimpleRNN: h_t = tanh(x_t W + b + h_{t-1} U) -------------------------------------------
def srn_forward(x, w, b, u, h0, lengths, *, residuals, **_):
    """``-> (hs [T, B, H], hT [B, H], at)`` (the SimpleRNN keeps no residuals besides ``hs``
    and the operand of the weight gradients, :func:`weight_operand`)."""

    def body(h, inp):
        x_t, keep = inp
        new = jnp.tanh(x_t @ w + b + h @ u)
        return jnp.where(keep, new, h), jnp.where(keep, new, 0)

    ht, hs = jax.lax.scan(body, h0, (x, _active(lengths, x.shape[0])))
    return hs, ht, weight_operand(x, h0, hs, residuals=residuals)


def srn_backward(u, lengths, hs, dhs, dht, **_):
    """``-> (dz [T, B, H], dh0)``: ``dz`` the gradient of the pre-activation ``x_t W + b + h U``."""

    def body(dh, inp):
        y, dy, keep = inp
        d = jnp.where(keep, (dh + dy) * (1 - y * y), 0)
        return jnp.where(keep, d @ u.T, dh), d

    dh0, dz = jax.lax.scan(body, dht, (hs, dhs, _active(lengths, hs.shape[0])), reverse=True)
    return dz, dh0


# ---- GRU: gates (r, z, n), reset after the matmul; residuals [r, z, n, h U_n + c_n] -----------
def gru_forward(x, w, b, u, rb, h0, lengths, *, residuals, **_):
    """``-> (hs [T, B, H], res [T, B, 4H] (or [1, B, 4H] scratch), hT [B, H], at)``, ``at`` the
    operand of the weight gradients (:func:`weight_operand`)."""
    h = u.shape[0]

    def body(hidden, inp):
        x_t, keep = inp
        xp = x_t @ w + b
        hp = hidden @ u + rb
        r = jax.nn.sigmoid(xp[:, :h] + hp[:, :h])
        z = jax.nn.sigmoid(xp[:, h : 2 * h] + hp[:, h : 2 * h])
        n = jnp.tanh(xp[:, 2 * h :] + r * hp[:, 2 * h :])
        new = (1 - z) * n + z * hidden
        out = jnp.where(keep, new, 0)
        res = jnp.concatenate([r, z, n, hp[:, 2 * h :]], axis=-1) if residuals else None
        return jnp.where(keep, new, hidden), (out, res)

    ht, (hs, res) = jax.lax.scan(body, h0, (x, _active(lengths, x.shape[0])))
    res = res if residuals else _scratch(x, 4 * h)
    return hs, res, ht, weight_operand(x, h0, hs, residuals=residuals)


def gru_backward(u, h0, lengths, hs, res, dhs, dht, **_):
    """``-> (d4 [T, B, 4H], dh0)``, ``d4 = [dr, dz, dn_x, dn_h]``: the gradients of the
    pre-activations of r and z, of the n gate's input part and of its recurrent part."""
    h = u.shape[0]
    u_rz, u_n = u[:, : 2 * h], u[:, 2 * h :]

    def body(dh, inp):
        r4, prev, dy, keep = inp
        r, z, n, hpn = (r4[:, k * h : (k + 1) * h] for k in range(4))
        dht_ = dh + dy
        dn = dht_ * (1 - z) * (1 - n * n)
        dr = dn * hpn * r * (1 - r)
        dz = dht_ * (prev - n) * z * (1 - z)
        d4 = jnp.where(keep, jnp.concatenate([dr, dz, dn, dn * r], axis=-1), 0)
        carried = d4[:, : 2 * h] @ u_rz.T + d4[:, 3 * h :] @ u_n.T + z * dht_
        return jnp.where(keep, carried, dh), d4

    inputs = (res, _previous(h0, hs), dhs, _active(lengths, hs.shape[0]))
    dh0, d4 = jax.lax.scan(body, dht, inputs, reverse=True)
    return d4, dh0


# ---- LSTM: gates (i, f, g, o); residuals the cell states and the activations [i, f, g, o] -----
def lstm_forward(x, w, b, u, h0, c0, lengths, *, residuals, **_):
    """``-> (hs, cs, acts, hT, cT, at)``: ``hs [T, B, H]``, cell states ``cs [T, B, H]`` and
    activations ``acts [T, B, 4H]`` (``[1, B, .]`` scratch without residuals), the operand of the
    weight gradients ``at`` (:func:`weight_operand`)."""
    h = u.shape[0]

    def body(carry, inp):
        hidden, cell = carry
        x_t, keep = inp
        z = x_t @ w + b + hidden @ u
        i = jax.nn.sigmoid(z[:, :h])
        f = jax.nn.sigmoid(z[:, h : 2 * h])
        g = jnp.tanh(z[:, 2 * h : 3 * h])
        o = jax.nn.sigmoid(z[:, 3 * h :])
        c_new = f * cell + i * g
        h_new = o * jnp.tanh(c_new)
        cell = jnp.where(keep, c_new, cell)
        out = jnp.where(keep, h_new, 0)
        res = (cell, jnp.concatenate([i, f, g, o], axis=-1)) if residuals else None
        return (jnp.where(keep, h_new, hidden), cell), (out, res)

    (ht, ct), (hs, res) = jax.lax.scan(body, (h0, c0), (x, _active(lengths, x.shape[0])))
    cs, acts = res if residuals else (_scratch(x, h), _scratch(x, 4 * h))
    return hs, cs, acts, ht, ct, weight_operand(x, h0, hs, residuals=residuals)


def lstm_backward(u, c0, lengths, cs, acts, dhs, dht, dct, **_):
    """``-> (dz [T, B, 4H], dh0, dc0)``: ``dz`` the gradients of the pre-activations."""
    h = u.shape[0]

    def body(carry, inp):
        dh, dc = carry
        a, c_t, c_prev, dy, keep = inp
        i, f, g, o = (a[:, k * h : (k + 1) * h] for k in range(4))
        tc = jnp.tanh(c_t)
        dht_ = dh + dy
        dct_ = dc + dht_ * o * (1 - tc * tc)
        dz = jnp.concatenate(
            [
                dct_ * g * i * (1 - i),
                dct_ * c_prev * f * (1 - f),
                dct_ * i * (1 - g * g),
                dht_ * tc * o * (1 - o),
            ],
            axis=-1,
        )
        dz = jnp.where(keep, dz, 0)
        return (jnp.where(keep, dz @ u.T, dh), jnp.where(keep, dct_ * f, dc)), dz

    inputs = (acts, cs, _previous(c0, cs), dhs, _active(lengths, cs.shape[0]))
    (dh0, dc0), dz = jax.lax.scan(body, (dht, dct), inputs, reverse=True)
    return dz, dh0, dc0

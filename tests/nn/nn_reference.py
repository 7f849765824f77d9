"""Plain NumPy loops of the layer equations, written from the papers, not from seqjax's code.

Every function takes parameters in seqjax's layout (kernel [F, G*H], recurrent_kernel [H, G*H],
bias [G*H]; gate orders LSTM i,f,g,o and GRU r,z,n) and returns (final state, outputs [B, T, H]),
computing in float64. ``lengths`` right-pads rows; ``reverse`` runs each row from its own last
valid step back to the first.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _order(t_len, length, reverse):
    steps = range(length)
    return reversed(steps) if reverse else steps


def simple_rnn(p, x, h0=None, lengths=None, reverse=False, act=np.tanh):
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    hidden = p["kernel"].shape[1]
    lengths = [time] * batch if lengths is None else lengths
    out = np.zeros((batch, time, hidden))
    final = np.zeros((batch, hidden))
    for b in range(batch):
        h = np.zeros(hidden) if h0 is None else np.asarray(h0[b], np.float64)
        for t in _order(time, lengths[b], reverse):
            h = act(x[b, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"])
            out[b, t] = h
        final[b] = h
    return final, out


def lstm(p, x, c0=None, h0=None, lengths=None, reverse=False, g=np.tanh, h_act=np.tanh):
    """Hochreiter & Schmidhuber 1997 with forget gate; peepholes (Greff et al. 2017) if present."""
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    hidden = p["recurrent_kernel"].shape[0]
    lengths = [time] * batch if lengths is None else lengths
    peep = p.get("peepholes")
    out = np.zeros((batch, time, hidden))
    final_c = np.zeros((batch, hidden))
    final_h = np.zeros((batch, hidden))
    for b in range(batch):
        c = np.zeros(hidden) if c0 is None else np.asarray(c0[b], np.float64)
        h = np.zeros(hidden) if h0 is None else np.asarray(h0[b], np.float64)
        for t in _order(time, lengths[b], reverse):
            z = x[b, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"]
            zi, zf, zg, zo = (z[k * hidden : (k + 1) * hidden] for k in range(4))
            if peep is not None:
                zi = zi + peep[0] * c
                zf = zf + peep[1] * c
            i, f = sigmoid(zi), sigmoid(zf)
            c = f * c + i * g(zg)
            if peep is not None:
                zo = zo + peep[2] * c
            h = sigmoid(zo) * h_act(c)
            out[b, t] = h
        final_c[b], final_h[b] = c, h
    return (final_c, final_h), out


def gru(p, x, h0=None, lengths=None, reverse=False, act=np.tanh):
    """Cho et al. 2014, reset gate after the recurrent matmul (PyTorch / Keras reset_after)."""
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape
    hidden = p["recurrent_kernel"].shape[0]
    lengths = [time] * batch if lengths is None else lengths
    out = np.zeros((batch, time, hidden))
    final = np.zeros((batch, hidden))

    def split(v):
        return (v[k * hidden : (k + 1) * hidden] for k in range(3))

    for b in range(batch):
        h = np.zeros(hidden) if h0 is None else np.asarray(h0[b], np.float64)
        for t in _order(time, lengths[b], reverse):
            xr, xz, xn = split(x[b, t] @ p["kernel"] + p["bias"])
            hr, hz, hn = split(h @ p["recurrent_kernel"] + p["recurrent_bias"])
            r, z = sigmoid(xr + hr), sigmoid(xz + hz)
            n = act(xn + r * hn)
            h = (1 - z) * n + z * h
            out[b, t] = h
        final[b] = h
    return final, out


# ---- helpers for the tests ---------------------------------------------------------------------


def random_params(variables, seed=0, scale=0.5):
    """Replaces every parameter by N(0, scale^2) draws: non-zero biases and peepholes too."""
    import jax

    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: (scale * rng.standard_normal(p.shape)).astype(p.dtype), variables)


def as_numpy(tree):
    import jax

    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)

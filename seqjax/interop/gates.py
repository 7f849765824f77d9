"""Pure functions that move recurrent weights between the Keras, PyTorch, Flax and seqjax layouts.

Every function takes and returns NumPy arrays, keeps the dtype, and only transposes, slices,
permutes gate blocks, or adds biases, so a float32 weight that goes out and comes back is
bit-identical (the one exception is :func:`merge_biases`, an addition).

Layouts (``F`` input features, ``H`` hidden features, gate blocks of width ``H`` along the last
axis of seqjax and Keras arrays and along the first axis of PyTorch arrays):

==========  ============================  =============================  ======================
layer       seqjax (= Keras, transposed)  PyTorch                        gate order
==========  ============================  =============================  ======================
SimpleRNN   kernel [F, H]                 weight_ih [H, F]               -
            recurrent_kernel [H, H]       weight_hh [H, H]
            bias [H]                      bias_ih + bias_hh [H]
LSTM        kernel [F, 4H]                weight_ih [4H, F]              seqjax (i, f, g, o)
            recurrent_kernel [H, 4H]      weight_hh [4H, H]              Keras (i, f, c, o)
            bias [4H]                     bias_ih + bias_hh [4H]         PyTorch (i, f, g, o)
GRU         kernel [F, 3H]                weight_ih [3H, F]              seqjax (r, z, n)
            recurrent_kernel [H, 3H]      weight_hh [3H, H]              PyTorch (r, z, n)
            bias [3H]                     bias_ih [3H]                   Keras (z, r, h)
            recurrent_bias [3H]           bias_hh [3H]
==========  ============================  =============================  ======================

Bias merging: SimpleRNN and LSTM add the input and recurrent projections before any
non-linearity, so PyTorch's ``bias_ih + bias_hh`` is one seqjax ``bias``; on the way back
``bias_ih = bias`` and ``bias_hh = 0``. The GRU's candidate ``n = tanh(W_n x + b_n + r * (U_n h +
c_n))`` multiplies ``c_n`` by the reset gate, so seqjax keeps a separate ``recurrent_bias`` and
no bias is merged. Keras' GRU with ``reset_after=True`` stores ``bias`` as ``(2, 3H)``: row 0 the
input bias, row 1 the recurrent bias, both in (z, r, h) order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "KERAS_GRU_ORDER",
    "SEQJAX_GRU_ORDER",
    "flax_gru_to_seqjax",
    "flax_lstm_to_seqjax",
    "keras_gru_to_seqjax",
    "keras_to_seqjax",
    "merge_biases",
    "permute_gates",
    "seqjax_gru_to_keras",
    "seqjax_to_keras",
    "seqjax_to_torch",
    "torch_to_seqjax",
]

Params = dict[str, np.ndarray]

#: Keras GRU gate blocks: update z, reset r, candidate h.
KERAS_GRU_ORDER = ("z", "r", "n")
#: seqjax (and PyTorch) GRU gate blocks: reset r, update z, candidate n.
SEQJAX_GRU_ORDER = ("r", "z", "n")

_NUM_GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _num_gates(kind: str) -> int:
    if kind not in _NUM_GATES:
        raise ValueError(f"kind must be one of {sorted(_NUM_GATES)}; got {kind!r}.")
    return _NUM_GATES[kind]


def permute_gates(
    w: np.ndarray, source: Sequence[str], target: Sequence[str], *, axis: int = -1
) -> np.ndarray:
    """Reorders the gate blocks of ``w`` along ``axis`` from ``source`` order to ``target`` order.

    ``w`` has ``len(source)`` equal blocks along ``axis`` (e.g. a GRU kernel ``[F, 3H]`` with
    ``source=("z", "r", "n")``, ``target=("r", "z", "n")``). Works on ``(2, 3H)`` Keras GRU biases
    too (``axis=-1``). Values are copied, never changed.
    """
    w = np.asarray(w)
    if sorted(source) != sorted(target):
        raise ValueError(f"source {tuple(source)} and target {tuple(target)} name different gates.")
    if w.shape[axis] % len(source):
        raise ValueError(f"axis {axis} of shape {w.shape} is not {len(source)} gate blocks wide.")
    blocks = np.split(w, len(source), axis=axis)
    by_name = dict(zip(source, blocks, strict=True))
    return np.concatenate([by_name[g] for g in target], axis=axis)


def merge_biases(bias_ih: np.ndarray | None, bias_hh: np.ndarray | None, size: int) -> np.ndarray:
    """PyTorch's two biases as one seqjax bias: ``bias_ih + bias_hh`` (zeros for a missing one).

    Valid for SimpleRNN and LSTM only (see the module docstring for why not for the GRU).
    """
    parts = [np.asarray(b) for b in (bias_ih, bias_hh) if b is not None]
    if not parts:
        return np.zeros((size,), np.float32)
    if len(parts) == 1:
        return parts[0].copy()
    return parts[0] + parts[1]


# ---- Keras --------------------------------------------------------------------------------------
def keras_to_seqjax(
    kind: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None
) -> Params:
    """Keras ``SimpleRNN`` / ``LSTM`` / ``GRU(reset_after=True)`` weights as seqjax params.

    Args:
      kind: "simple_rnn", "lstm" or "gru".
      kernel: ``[F, G·H]``; recurrent_kernel: ``[H, G·H]`` (G = 1, 4, 3).
      bias: ``[G·H]`` (``(2, 3H)`` for the GRU: input row, recurrent row), or None when the
        Keras layer has ``use_bias=False`` (zeros).

    SimpleRNN and LSTM are copied as they are (Keras' LSTM order i, f, c, o is seqjax' i, f, g, o);
    the GRU's blocks go from Keras' (z, r, h) to seqjax' (r, z, n).
    """
    _num_gates(kind)
    if kind == "gru":
        return keras_gru_to_seqjax(kernel, recurrent_kernel, bias)
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    width = recurrent_kernel.shape[-1]
    return {
        "kernel": kernel.copy(),
        "recurrent_kernel": recurrent_kernel.copy(),
        "bias": np.zeros((width,), kernel.dtype) if bias is None else np.asarray(bias).copy(),
    }


def keras_gru_to_seqjax(
    kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None
) -> Params:
    """Keras ``GRU(reset_after=True)`` (gates z, r, h; ``bias (2, 3H)``) as seqjax GRU params.

    Returns ``kernel [F, 3H]``, ``recurrent_kernel [H, 3H]``, ``bias [3H]`` (Keras' input bias row)
    and ``recurrent_bias [3H]`` (Keras' recurrent bias row), all in (r, z, n) order.
    """
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    width = recurrent_kernel.shape[-1]
    if bias is None:
        bias = np.zeros((2, width), kernel.dtype)
    bias = np.asarray(bias)
    if bias.shape != (2, width):
        raise ValueError(
            f"Keras GRU bias must be (2, {width}) (reset_after=True); got {bias.shape}. "
            "reset_after=False is not weight-compatible with seqjax' GRU."
        )

    def perm(w):
        return permute_gates(w, KERAS_GRU_ORDER, SEQJAX_GRU_ORDER)

    return {
        "kernel": perm(kernel),
        "recurrent_kernel": perm(recurrent_kernel),
        "bias": perm(bias[0]),
        "recurrent_bias": perm(bias[1]),
    }


def seqjax_gru_to_keras(params: Params) -> list[np.ndarray]:
    """seqjax GRU params as Keras ``GRU(reset_after=True)`` weights ``[kernel, recurrent, bias]``.

    The inverse of :func:`keras_gru_to_seqjax`: blocks (r, z, n) -> (z, r, h) and
    ``bias = stack([bias, recurrent_bias])`` of shape ``(2, 3H)``.
    """

    def perm(w):
        return permute_gates(np.asarray(w), SEQJAX_GRU_ORDER, KERAS_GRU_ORDER)

    bias = np.stack([perm(params["bias"]), perm(params["recurrent_bias"])])
    return [perm(params["kernel"]), perm(params["recurrent_kernel"]), bias]


def seqjax_to_keras(kind: str, params: Params) -> list[np.ndarray]:
    """seqjax params as the list Keras' ``layer.set_weights`` takes: ``[kernel, recurrent, bias]``.

    SimpleRNN and LSTM are copied; the GRU goes through :func:`seqjax_gru_to_keras`.
    """
    _num_gates(kind)
    if kind == "gru":
        return seqjax_gru_to_keras(params)
    return [np.asarray(params[k]).copy() for k in ("kernel", "recurrent_kernel", "bias")]


# ---- PyTorch ------------------------------------------------------------------------------------
def torch_to_seqjax(
    kind: str,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray | None = None,
    bias_hh: np.ndarray | None = None,
) -> Params:
    """One direction of one PyTorch ``RNN`` / ``LSTM`` / ``GRU`` layer as seqjax params.

    Args:
      kind: "simple_rnn", "lstm" or "gru".
      weight_ih: ``[G·H, F]``; weight_hh: ``[G·H, H]``; bias_ih, bias_hh: ``[G·H]`` or None
        (``bias=False``: zeros).

    Kernels are transposed (``kernel = weight_ih.T``). SimpleRNN/LSTM: ``bias = bias_ih +
    bias_hh``. GRU: ``bias = bias_ih``, ``recurrent_bias = bias_hh``. PyTorch's gate orders are
    seqjax's, so no block moves.
    """
    _num_gates(kind)
    weight_ih, weight_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    width = weight_hh.shape[0]
    out = {"kernel": weight_ih.T.copy(), "recurrent_kernel": weight_hh.T.copy()}
    if kind == "gru":
        zeros = np.zeros((width,), weight_ih.dtype)
        out["bias"] = zeros if bias_ih is None else np.asarray(bias_ih).copy()
        out["recurrent_bias"] = zeros.copy() if bias_hh is None else np.asarray(bias_hh).copy()
    else:
        out["bias"] = merge_biases(bias_ih, bias_hh, width).astype(weight_ih.dtype, copy=False)
    return out


def seqjax_to_torch(kind: str, params: Params) -> dict[str, np.ndarray]:
    """seqjax params as one PyTorch layer direction: ``weight_ih``, ``weight_hh``, ``bias_ih``,
    ``bias_hh``.

    ``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``. SimpleRNN/LSTM: ``bias_ih =
    bias``, ``bias_hh = 0`` (so :func:`torch_to_seqjax` gives back the same bits). GRU: ``bias_ih =
    bias``, ``bias_hh = recurrent_bias``.
    """
    _num_gates(kind)
    kernel = np.asarray(params["kernel"])
    bias = np.asarray(params["bias"])
    if kind == "gru":
        bias_hh = np.asarray(params["recurrent_bias"]).copy()
    else:
        bias_hh = np.zeros_like(bias)
    return {
        "weight_ih": np.ascontiguousarray(kernel.T),
        "weight_hh": np.ascontiguousarray(np.asarray(params["recurrent_kernel"]).T),
        "bias_ih": bias.copy(),
        "bias_hh": bias_hh,
    }


# ---- Flax linen cells ---------------------------------------------------------------------------
def flax_lstm_to_seqjax(cell_params: dict) -> Params:
    """Flax ``nn.LSTMCell`` / ``nn.OptimizedLSTMCell`` params as seqjax LSTM params.

    Flax stores one Dense per gate and side: ``ii, if, ig, io`` ``{kernel [F, H]}`` (no bias) and
    ``hi, hf, hg, ho`` ``{kernel [H, H], bias [H]}``, gate order (i, f, g, o) as seqjax. The
    blocks are concatenated in that order; the recurrent-side biases are the seqjax ``bias``.
    """
    try:
        kernel = np.concatenate([np.asarray(cell_params[f"i{g}"]["kernel"]) for g in "ifgo"], -1)
        recurrent = np.concatenate([np.asarray(cell_params[f"h{g}"]["kernel"]) for g in "ifgo"], -1)
        bias = np.concatenate([np.asarray(cell_params[f"h{g}"]["bias"]) for g in "ifgo"], -1)
    except KeyError as e:
        raise ValueError(
            f"not Flax LSTMCell parameters (missing {e}); expected the keys ii, if, ig, io, hi, hf, "
            f"hg, ho; got {sorted(cell_params)}."
        ) from None
    return {"kernel": kernel, "recurrent_kernel": recurrent, "bias": bias}


def flax_gru_to_seqjax(cell_params: dict) -> Params:
    """Flax ``nn.GRUCell`` params as seqjax GRU params.

    Flax: ``ir, iz, in`` ``{kernel [F, H], bias [H]}``, ``hr, hz`` ``{kernel [H, H]}`` (no bias),
    ``hn`` ``{kernel [H, H], bias [H]}``; ``n = tanh(x W_in + b_in + r * (h W_hn + b_hn))`` and
    ``h' = (1 - z) n + z h``, exactly seqjax' GRU. So ``bias = [b_ir, b_iz, b_in]`` and
    ``recurrent_bias = [0, 0, b_hn]``, gate order (r, z, n).
    """
    try:
        kernel = np.concatenate([np.asarray(cell_params[f"i{g}"]["kernel"]) for g in "rzn"], -1)
        recurrent = np.concatenate([np.asarray(cell_params[f"h{g}"]["kernel"]) for g in "rzn"], -1)
        bias = np.concatenate([np.asarray(cell_params[f"i{g}"]["bias"]) for g in "rzn"], -1)
        b_hn = np.asarray(cell_params["hn"]["bias"])
    except KeyError as e:
        raise ValueError(
            f"not Flax GRUCell parameters (missing {e}); expected the keys ir, iz, in, hr, hz, hn; "
            f"got {sorted(cell_params)}."
        ) from None
    zeros = np.zeros_like(b_hn)
    return {
        "kernel": kernel,
        "recurrent_kernel": recurrent,
        "bias": bias,
        "recurrent_bias": np.concatenate([zeros, zeros, b_hn]),
    }

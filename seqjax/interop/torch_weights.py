"""PyTorch ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` in and out of seqjax.

:func:`from_torch` maps a PyTorch recurrent module to seqjax:

- one layer, one direction -> the layer (:class:`~seqjax.nn.SimpleRNN` with tanh or ReLU,
  :class:`~seqjax.nn.LSTM`, :class:`~seqjax.nn.GRU`);
- ``bidirectional=True`` -> :class:`~seqjax.nn.Bidirectional` (``merge_mode="concat"``, forward
  features first, as PyTorch), direction 1 from the ``*_reverse`` weights;
- ``num_layers > 1`` -> :class:`~seqjax.nn.StackedRNN` of those, ``dropout_rate = dropout``;
- ``batch_first=False`` -> ``time_major=True``, so inputs and outputs keep PyTorch's layout.

Weights: ``kernel = weight_ih.T``, ``recurrent_kernel = weight_hh.T``; gate orders agree
(LSTM i, f, g, o; GRU r, z, n); SimpleRNN and LSTM biases merge (``bias = bias_ih + bias_hh``),
the GRU keeps ``bias = bias_ih`` and ``recurrent_bias = bias_hh``. See :mod:`seqjax.interop.gates`.

The returned module's outputs are the PyTorch module's ``output`` (the last layer's hidden states
for every step). Carries: PyTorch's ``h_n`` / ``(h_n, c_n)`` of shape ``[D·num_layers, N, H]``
(index ``layer·D + direction``) convert with :func:`seqjax.interop.carries.carry_from_torch` /
``carry_to_torch``. A ``PackedSequence`` is the padded batch plus ``seq_lengths``
(:func:`packed_to_padded`): outputs past a row's length are zero and the carry is each row's
state at its last valid step, both directions, as PyTorch's.

Not supported (``ValueError`` naming the setting): ``proj_size > 0`` (LSTM projections).
Unbatched (2-D) inputs are not accepted by seqjax layers: add a batch axis.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.interop import gates
from seqjax.interop._lazy import require_torch
from seqjax.nn.base import RecurrentLayer
from seqjax.nn.bidirectional import Bidirectional
from seqjax.nn.gru import GRU
from seqjax.nn.lstm import LSTM
from seqjax.nn.simple_rnn import SimpleRNN
from seqjax.nn.stack import StackedRNN

__all__ = ["from_torch", "packed_to_padded", "to_torch", "torch_state_dict"]

Variables = dict[str, Any]

_KIND_OF_MODE = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "simple_rnn", "RNN_RELU": "simple_rnn"}


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().copy()


def _make_layer(kind: str, features: int, *, relu: bool, time_major: bool, reverse: bool):
    if kind == "lstm":
        return LSTM(features, time_major=time_major, reverse=reverse)
    if kind == "gru":
        return GRU(features, time_major=time_major, reverse=reverse)
    activation = jax.nn.relu if relu else jnp.tanh
    return SimpleRNN(features, activation=activation, time_major=time_major, reverse=reverse)


def from_torch(module: Any) -> tuple[nn.Module, Variables]:
    """A seqjax module and ``{"params": ...}`` reproducing a ``torch.nn.RNN``/``LSTM``/``GRU``.

    Any ``num_layers``, ``bidirectional``, ``batch_first``, ``bias``, ``nonlinearity`` ("tanh" or
    "relu"). ``module.apply(variables, x, seq_lengths=lengths)`` returns ``(carry, outputs)`` with
    ``outputs`` equal to PyTorch's ``output`` (padded with zeros for a ``PackedSequence``).

    Raises:
      TypeError: not one of the three PyTorch recurrent modules.
      ValueError: ``proj_size > 0``.

    Example:
        >>> import numpy as np, torch
        >>> from seqjax.interop import from_torch
        >>> _ = torch.manual_seed(0)
        >>> torch_lstm = torch.nn.LSTM(input_size=3, hidden_size=4, num_layers=2, batch_first=True)
        >>> module, variables = from_torch(torch_lstm)
        >>> type(module).__name__, len(module.layers)                # two LSTM levels
        ('StackedRNN', 2)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
        >>> carry, ys = module.apply(variables, x)
        >>> expected, _ = torch_lstm(torch.from_numpy(x))
        >>> ys.shape, bool(np.allclose(ys, expected.detach().numpy(), atol=1e-5))
        ((2, 5, 4), True)
    """
    torch = require_torch("seqjax.interop.from_torch")
    if not isinstance(module, torch.nn.RNN | torch.nn.LSTM | torch.nn.GRU):
        raise TypeError(
            f"from_torch: expected torch.nn.RNN, LSTM or GRU; got {type(module).__name__}. "
            "(Cells such as torch.nn.LSTMCell are not supported.)"
        )
    if getattr(module, "proj_size", 0) > 0:
        raise ValueError(
            f"from_torch: LSTM proj_size={module.proj_size} is not supported (seqjax.nn.LSTM has "
            "no hidden-state projection)."
        )
    kind = _KIND_OF_MODE[module.mode]
    relu = module.mode == "RNN_RELU"
    features, time_major = int(module.hidden_size), not module.batch_first
    directions = 2 if module.bidirectional else 1

    def direction_params(layer: int, direction: int) -> dict[str, jax.Array]:
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        bias_ih = getattr(module, f"bias_ih{suffix}", None) if module.bias else None
        bias_hh = getattr(module, f"bias_hh{suffix}", None) if module.bias else None
        params = gates.torch_to_seqjax(
            kind,
            _numpy(getattr(module, f"weight_ih{suffix}")),
            _numpy(getattr(module, f"weight_hh{suffix}")),
            None if bias_ih is None else _numpy(bias_ih),
            None if bias_hh is None else _numpy(bias_hh),
        )
        return {k: jnp.asarray(v) for k, v in params.items()}

    layers: list[nn.Module] = []
    layer_params: list[dict[str, Any]] = []
    for k in range(module.num_layers):
        fwd = _make_layer(kind, features, relu=relu, time_major=time_major, reverse=False)
        if directions == 2:
            layers.append(Bidirectional(fwd, merge_mode="concat"))
            layer_params.append(
                {"forward_rnn": direction_params(k, 0), "backward_rnn": direction_params(k, 1)}
            )
        else:
            layers.append(fwd)
            layer_params.append(direction_params(k, 0))
    if len(layers) == 1:
        return layers[0], {"params": layer_params[0]}
    stack = StackedRNN(tuple(layers), dropout_rate=float(module.dropout))
    return stack, {"params": {f"layers_{k}": p for k, p in enumerate(layer_params)}}


def packed_to_padded(packed: Any, *, batch_first: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A ``torch.nn.utils.rnn.PackedSequence`` as ``(padded inputs, seq_lengths)`` NumPy arrays.

    Rows come back in the original (unsorted) order, as PyTorch's ``h_n`` and
    ``pad_packed_sequence``; padding is zeros. ``inputs`` is ``[B, T, F]`` (``[T, B, F]`` when
    ``batch_first=False``).

    Example:
        >>> import torch
        >>> from seqjax.interop import packed_to_padded
        >>> x = torch.ones(2, 3, 1)                                  # [batch, time, features]
        >>> packed = torch.nn.utils.rnn.pack_padded_sequence(x, [3, 1], batch_first=True)
        >>> inputs, seq_lengths = packed_to_padded(packed)
        >>> inputs[..., 0], seq_lengths
        (array([[1., 1., 1.],
               [1., 0., 0.]], dtype=float32), array([3, 1], dtype=int32))
    """
    torch = require_torch("seqjax.interop.packed_to_padded")
    padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=batch_first)
    return _numpy(padded), lengths.cpu().numpy().astype(np.int32)


# ---- seqjax -> PyTorch --------------------------------------------------------------------------
def _layer_spec(module: nn.Module) -> tuple[RecurrentLayer, RecurrentLayer | None]:
    """(forward layer, backward layer or None) of one stack level."""
    if isinstance(module, Bidirectional):
        if module.merge_mode != "concat":
            raise ValueError(
                f"to_torch: Bidirectional merge_mode={module.merge_mode!r}; PyTorch concatenates "
                "the directions (merge_mode='concat')."
            )
        backward = module.backward_layer or module.layer.clone(reverse=True, parent=None)
        return module.layer, backward
    if isinstance(module, RecurrentLayer):
        if module.reverse:
            raise ValueError(
                "to_torch: a lone layer with reverse=True has no PyTorch equivalent (PyTorch runs "
                "backward only inside bidirectional=True)."
            )
        return module, None
    raise TypeError(f"to_torch: {type(module).__name__} is not a seqjax recurrent layer.")


def _describe(layer: RecurrentLayer) -> tuple[str, str]:
    """(kind, PyTorch mode) of a seqjax layer, checking the settings PyTorch can express."""
    name = f"to_torch: {type(layer).__name__}"
    if layer.learn_initial_carry:
        raise ValueError(f"{name}: learn_initial_carry=True has no PyTorch equivalent.")
    if isinstance(layer, LSTM):
        if layer.use_peepholes:
            raise ValueError(f"{name}: use_peepholes=True has no PyTorch equivalent.")
        if layer.cell_activation is not jnp.tanh or layer.output_activation is not jnp.tanh:
            raise ValueError(f"{name}: cell_activation/output_activation must be jnp.tanh.")
        return "lstm", "LSTM"
    if isinstance(layer, GRU):
        if layer.activation is not jnp.tanh:
            raise ValueError(f"{name}: activation must be jnp.tanh.")
        return "gru", "GRU"
    if isinstance(layer, SimpleRNN):
        if layer.activation is jnp.tanh:
            return "simple_rnn", "RNN_TANH"
        if layer.activation is jax.nn.relu:
            return "simple_rnn", "RNN_RELU"
        raise ValueError(f"{name}: activation must be jnp.tanh or jax.nn.relu (nonlinearity).")
    raise TypeError(f"to_torch: {type(layer).__name__} is not supported.")


def torch_state_dict(
    module: nn.Module, variables: Variables
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The PyTorch constructor arguments and ``state_dict`` (NumPy) for a seqjax module.

    Supported: SimpleRNN (tanh/relu), LSTM (tanh, no peepholes), GRU (tanh), ``Bidirectional``
    of one of them with ``merge_mode="concat"``, and ``StackedRNN`` of those with the same kind,
    width, direction count and ``time_major`` on every level.

    Returns ``(config, state)``: ``config`` has ``mode``, ``input_size``, ``hidden_size``,
    ``num_layers``, ``bias``, ``batch_first``, ``dropout``, ``bidirectional``; ``state`` maps
    ``weight_ih_l{k}[_reverse]`` etc. to arrays (``bias_hh = 0`` for SimpleRNN/LSTM).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import LSTM, Bidirectional
        >>> from seqjax.interop import torch_state_dict
        >>> layer = Bidirectional(LSTM(4))
        >>> variables = layer.init(jax.random.key(0), jnp.ones((1, 2, 3)))
        >>> config, state = torch_state_dict(layer, variables)
        >>> config["mode"], config["hidden_size"], config["bidirectional"]
        ('LSTM', 4, True)
        >>> {name: array.shape for name, array in state.items() if "reverse" in name}
        {'weight_ih_l0_reverse': (16, 3), 'weight_hh_l0_reverse': (16, 4), 'bias_ih_l0_reverse': (16,), 'bias_hh_l0_reverse': (16,)}
    """
    params = variables["params"] if "params" in variables else variables
    if isinstance(module, StackedRNN):
        levels = list(module.layers)
        level_params = [params[f"layers_{k}"] for k in range(len(levels))]
        dropout = float(module.dropout_rate)
    else:
        levels, level_params, dropout = [module], [params], 0.0
    specs = [_layer_spec(level) for level in levels]
    first = specs[0][0]
    kind, mode = _describe(first)
    bidirectional = specs[0][1] is not None
    state: dict[str, np.ndarray] = {}
    for k, ((fwd, bwd), p) in enumerate(zip(specs, level_params, strict=True)):
        directions = [(fwd, "", p if bwd is None else p["forward_rnn"])]
        if bwd is not None:
            directions.append((bwd, "_reverse", p["backward_rnn"]))
        if (bwd is not None) != bidirectional:
            raise ValueError("to_torch: every StackedRNN level must be bidirectional, or none.")
        for layer, suffix, layer_params in directions:
            if _describe(layer) != (kind, mode):
                raise ValueError(
                    f"to_torch: level {k} is {type(layer).__name__} with another activation or "
                    f"kind than level 0; PyTorch needs one mode ({mode}) for all layers."
                )
            if layer.features != first.features or layer.time_major != first.time_major:
                raise ValueError(
                    "to_torch: every layer needs the same features and time_major "
                    f"(level {k}: features={layer.features}, time_major={layer.time_major})."
                )
            arrays = gates.seqjax_to_torch(
                kind, {n: np.asarray(v) for n, v in layer_params.items()}
            )
            for name, value in arrays.items():
                state[f"{name}_l{k}{suffix}"] = value
    input_size = int(state["weight_ih_l0"].shape[1])
    config = {
        "mode": mode,
        "input_size": input_size,
        "hidden_size": int(first.features),
        "num_layers": len(levels),
        "bias": True,
        "batch_first": not first.time_major,
        "dropout": dropout,
        "bidirectional": bidirectional,
    }
    return config, state


def to_torch(module: nn.Module, variables: Variables) -> Any:
    """A new ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` holding the seqjax module's weights.

    See :func:`torch_state_dict` for what is supported. Parameters keep their dtype (float32 ->
    ``torch.float32``), so ``from_torch(to_torch(m, v))`` gives back bit-identical params. The
    module is in training mode, as every new PyTorch module: call ``.eval()`` for inference when
    it has ``dropout``.

    Example:
        >>> import jax, numpy as np, torch
        >>> from seqjax.nn import GRU
        >>> from seqjax.interop import to_torch
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
        >>> layer = GRU(4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> torch_gru = to_torch(layer, variables)
        >>> torch_gru
        GRU(3, 4, batch_first=True)
        >>> expected, _ = torch_gru(torch.from_numpy(x))
        >>> bool(np.allclose(layer.apply(variables, x)[1], expected.detach().numpy(), atol=1e-5))
        True
    """
    torch = require_torch("seqjax.interop.to_torch")
    config, state = torch_state_dict(module, variables)
    mode = config.pop("mode")
    cls = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}.get(mode, torch.nn.RNN)
    if cls is torch.nn.RNN:
        config["nonlinearity"] = "relu" if mode == "RNN_RELU" else "tanh"
    dtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float16): torch.float16}.get(
        state["weight_ih_l0"].dtype, torch.float32
    )
    out = cls(**config, dtype=dtype)
    out.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return out

"""Flax linen recurrent cells in and out of seqjax layers.

- ``nn.LSTMCell`` and ``nn.OptimizedLSTMCell`` (same parameters: ``ii, if, ig, io`` kernels
  ``[F, H]`` without bias, ``hi, hf, hg, ho`` kernels ``[H, H]`` with biases ``[H]``; gate order
  i, f, g, o; carry ``(c, h)``) -> :class:`seqjax.nn.LSTM` with the blocks concatenated and the
  ``h*`` biases as ``bias``. Flax's ``activation_fn`` is both seqjax activations.
- ``nn.GRUCell`` (``ir, iz, in`` with biases, ``hr, hz`` without, ``hn`` with; gate order r, z, n;
  ``h' = (1 - z) n + z h``) -> :class:`seqjax.nn.GRU` with ``recurrent_bias = [0, 0, b_hn]``.

The seqjax layer's outputs equal ``nn.RNN(cell)``'s, and its ``LSTMCarry(cell, hidden)`` is
Flax's ``(c, h)``. ``nn.RNN(cell, reverse=True, keep_order=False)`` returns its outputs in
processing order: the seqjax ``reverse=True`` layer's ``outputs[:, ::-1]``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.interop import gates
from seqjax.nn.gru import GRU
from seqjax.nn.lstm import LSTM

__all__ = ["from_flax_cell", "to_flax_cell"]

Variables = dict[str, Any]


def _cell_params(variables: Any) -> dict[str, Any]:
    """Finds the cell's parameter dict in ``variables``, ``{"params": ...}`` or ``{"cell": ...}``."""
    tree = dict(variables)
    if "params" in tree:
        tree = dict(tree["params"])
    if "cell" in tree and isinstance(tree["cell"], dict | nn.FrozenDict):
        tree = dict(tree["cell"])
    return tree


def from_flax_cell(variables: Any, cell: nn.Module | None = None) -> tuple[nn.Module, Variables]:
    """A seqjax LSTM or GRU and its variables from a Flax cell's (or ``nn.RNN``'s) parameters.

    Args:
      variables: the cell's parameters, or ``{"params": ...}`` of the cell or of ``nn.RNN(cell)``.
      cell: optional, the ``nn.LSTMCell`` / ``nn.OptimizedLSTMCell`` / ``nn.GRUCell`` or the
        ``nn.RNN`` wrapping it, to carry over ``activation_fn``, ``reverse`` and ``time_major``.
        Without it the kind is read from the parameter names and the defaults are assumed.

    Raises:
      ValueError: ``gate_fn`` other than ``jax.nn.sigmoid``, or parameters of another cell.

    Example:
        >>> import flax.linen as nn
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.interop import from_flax_cell
        >>> x = jnp.ones((2, 5, 3))
        >>> rnn = nn.RNN(nn.OptimizedLSTMCell(4))
        >>> flax_variables = rnn.init(jax.random.key(0), x)
        >>> module, variables = from_flax_cell(flax_variables, nn.OptimizedLSTMCell(4))
        >>> carry, ys = module.apply(variables, x)
        >>> bool(jnp.allclose(ys, rnn.apply(flax_variables, x), atol=1e-5))
        True
    """
    rnn = None
    if isinstance(cell, nn.RNN):
        rnn, cell = cell, cell.cell
    params = _cell_params(variables)
    kwargs: dict[str, Any] = {}
    if rnn is not None:
        kwargs = {"reverse": bool(rnn.reverse), "time_major": bool(rnn.time_major)}
    if cell is not None:
        if not isinstance(cell, nn.LSTMCell | nn.OptimizedLSTMCell | nn.GRUCell):
            raise TypeError(
                f"from_flax_cell: {type(cell).__name__} is not supported (LSTMCell, "
                "OptimizedLSTMCell, GRUCell)."
            )
        if cell.gate_fn is not jax.nn.sigmoid and cell.gate_fn is not nn.sigmoid:
            raise ValueError(
                f"from_flax_cell: {type(cell).__name__} gate_fn={cell.gate_fn!r} is not supported "
                "(seqjax gates use sigmoid)."
            )
    is_gru = "hn" in params if cell is None else isinstance(cell, nn.GRUCell)
    if is_gru:
        converted = gates.flax_gru_to_seqjax(params)
        if cell is not None:
            kwargs["activation"] = cell.activation_fn
        module: nn.Module = GRU(int(converted["recurrent_kernel"].shape[0]), **kwargs)
    else:
        converted = gates.flax_lstm_to_seqjax(params)
        if cell is not None:
            kwargs["cell_activation"] = cell.activation_fn
            kwargs["output_activation"] = cell.activation_fn
        module = LSTM(int(converted["recurrent_kernel"].shape[0]), **kwargs)
    return module, {"params": {k: jnp.asarray(v) for k, v in converted.items()}}


def to_flax_cell(module: nn.Module, variables: Variables) -> tuple[nn.Module, Variables]:
    """A Flax cell (``nn.OptimizedLSTMCell`` / ``nn.GRUCell``) and ``{"params": ...}`` for it.

    LSTM: no peepholes, one activation for ``cell_activation`` and ``output_activation``; the
    seqjax ``bias`` goes to the ``h*`` Denses. GRU: the reset and update parts of
    ``recurrent_bias`` are added to the input biases ``ir``, ``iz`` (Flax has none on ``hr``,
    ``hz``), the rest copied. Use the cell as ``nn.RNN(cell)`` for whole sequences.

    Example:
        >>> import flax.linen as nn
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import GRU
        >>> from seqjax.interop import to_flax_cell
        >>> x = jnp.ones((2, 5, 3))
        >>> layer = GRU(4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> cell, cell_variables = to_flax_cell(layer, variables)
        >>> type(cell).__name__
        'GRUCell'
        >>> carry = cell.initialize_carry(jax.random.key(1), x[:, 0].shape)  # zeros
        >>> carry, y0 = cell.apply(cell_variables, carry, x[:, 0])             # one step
        >>> bool(jnp.allclose(y0, layer.apply(variables, x)[1][:, 0], atol=1e-5))
        True
    """
    params = variables["params"] if "params" in variables else variables
    p = {k: np.asarray(v) for k, v in params.items()}
    h = int(module.features)

    def block(w, i):
        return w[..., i * h : (i + 1) * h]

    if isinstance(module, LSTM):
        if module.use_peepholes:
            raise ValueError("to_flax_cell: LSTM use_peepholes=True has no Flax cell equivalent.")
        if module.cell_activation is not module.output_activation:
            raise ValueError(
                "to_flax_cell: LSTM cell_activation and output_activation differ; Flax's "
                "activation_fn is both."
            )
        out: dict[str, dict[str, Any]] = {}
        cell: nn.Module
        for i, g in enumerate("ifgo"):
            out[f"i{g}"] = {"kernel": block(p["kernel"], i)}
            out[f"h{g}"] = {"kernel": block(p["recurrent_kernel"], i), "bias": block(p["bias"], i)}
        cell = nn.OptimizedLSTMCell(h, activation_fn=module.cell_activation)
    elif isinstance(module, GRU):
        out = {}
        for i, g in enumerate("rzn"):
            bias = block(p["bias"], i)
            if g != "n":
                bias = bias + block(p["recurrent_bias"], i)
            out[f"i{g}"] = {"kernel": block(p["kernel"], i), "bias": bias}
            out[f"h{g}"] = {"kernel": block(p["recurrent_kernel"], i)}
        out["hn"]["bias"] = block(p["recurrent_bias"], 2)
        cell = nn.GRUCell(h, activation_fn=module.activation)
    else:
        raise TypeError(f"to_flax_cell: {type(module).__name__} is not supported (LSTM, GRU).")
    return cell, {"params": jax.tree.map(jnp.asarray, out)}

"""Keras, PyTorch and Flax weights in and out of seqjax.

Entry points:

- :func:`from_keras` ``(layer_or_model) -> (module, variables)``: Keras ``LSTM``, ``GRU``
  (``reset_after=True``), ``SimpleRNN``, ``Bidirectional``, ``Conv1D``, ``Dense``,
  ``BatchNormalization`` and a ``Sequential`` of these; a functional ``MobileNetV2`` is passed on
  to :func:`mobilenet_v2_from_keras`.
- :func:`to_keras` ``(module, variables) -> keras layer``: LSTM, GRU, SimpleRNN, Bidirectional,
  StackedRNN.
- :func:`from_torch` ``(module) -> (module, variables)``: ``torch.nn.RNN`` (tanh, relu),
  ``LSTM``, ``GRU``; any ``num_layers``, ``bidirectional``, ``batch_first``.
  :func:`to_torch` goes back; :func:`packed_to_padded` turns a ``PackedSequence`` into
  ``(inputs, seq_lengths)``.
- :func:`from_flax_cell` / :func:`to_flax_cell`: Flax linen ``LSTMCell``,
  ``OptimizedLSTMCell``, ``GRUCell`` parameters.
- :mod:`seqjax.interop.carries`: states between Keras ``[h, c]``, PyTorch ``(h, c)`` of shape
  ``[D·num_layers, N, H]`` and seqjax ``LSTMCarry(cell, hidden)``.
- :mod:`seqjax.interop.gates`: the pure weight-layout functions (gate orders Keras LSTM i, f, c, o
  = PyTorch i, f, g, o = seqjax i, f, g, o; GRU Keras z, r, h vs PyTorch/seqjax r, z, n; PyTorch's
  ``bias_ih + bias_hh`` merged into one bias for SimpleRNN/LSTM, kept apart for the GRU).

Every recurrent module returned has ``apply(variables, x, initial_carry=None, seq_lengths=None)
-> (carry, outputs)`` with all time steps; ``outputs[:, -1]`` (or ``carry``'s hidden state with
padding) is Keras' ``return_sequences=False`` output. Unsupported settings raise ``ValueError``
naming the setting.

Installation: keras and torch are optional and imported only when a function needs them::

    pip install seqjax[interop]          # keras>=3.5, torch, h5py

PyTorch's CPU-only build (no CUDA download) comes from PyTorch's own index::

    pip install torch --index-url https://download.pytorch.org/whl/cpu

(in this project's environment ``pip install torch==2.13.0`` resolves to a local CPU wheel). When
seqjax is the first to import keras and ``KERAS_BACKEND`` is unset, it sets it to ``"jax"``.
"""

from __future__ import annotations

from typing import Any

from seqjax.interop.carries import (
    carry_from_keras,
    carry_from_torch,
    carry_to_keras,
    carry_to_torch,
)
from seqjax.interop.flax_cells import from_flax_cell, to_flax_cell
from seqjax.interop.keras import from_keras, to_keras
from seqjax.interop.sequential import Sequential
from seqjax.interop.torch_weights import from_torch, packed_to_padded, to_torch, torch_state_dict

__all__ = [
    "Sequential",
    "carry_from_keras",
    "carry_from_torch",
    "carry_to_keras",
    "carry_to_torch",
    "from_flax_cell",
    "from_keras",
    "from_torch",
    "mobilenet_v2_from_keras",
    "packed_to_padded",
    "to_flax_cell",
    "to_keras",
    "to_torch",
    "torch_state_dict",
]


def __getattr__(name: str) -> Any:
    # Imported on first use: the MobileNetV2 converter lives in its own module.
    if name == "mobilenet_v2_from_keras":
        from seqjax.interop.keras_mobilenet import mobilenet_v2_from_keras

        return mobilenet_v2_from_keras
    raise AttributeError(f"module 'seqjax.interop' has no attribute {name!r}")

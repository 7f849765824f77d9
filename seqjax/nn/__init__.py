"""Recurrent and convolutional sequence layers as pure Flax linen modules.

Every recurrent layer takes ``[batch, time, features]`` and returns ``(carry, outputs)``.
"""

from seqjax.nn.base import RecurrentLayer
from seqjax.nn.bidirectional import Bidirectional
from seqjax.nn.conv import TemporalConv
from seqjax.nn.gru import GRU, gru_step
from seqjax.nn.initializers import lstm_bias, per_gate
from seqjax.nn.lstm import LSTM, LSTMCarry, lstm_step
from seqjax.nn.recurrence import reverse_padded, scan_recurrence
from seqjax.nn.simple_rnn import SimpleRNN, simple_rnn_step
from seqjax.nn.stack import StackedRNN

__all__ = [
    "GRU",
    "LSTM",
    "Bidirectional",
    "LSTMCarry",
    "RecurrentLayer",
    "SimpleRNN",
    "StackedRNN",
    "TemporalConv",
    "gru_step",
    "lstm_bias",
    "lstm_step",
    "per_gate",
    "reverse_padded",
    "scan_recurrence",
    "simple_rnn_step",
]

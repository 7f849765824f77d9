"""Deprecated alias of :mod:`seqjax.nn.engines.cpu` (the CPU kernels' JAX maths) and
:mod:`seqjax.nn.engines.cpu_build` (building and loading them); import from those instead.

>>> from seqjax.nn import cpu_kernels
>>> cpu_kernels.KernelUnavailableError is cpu_kernels.cpu_build.KernelUnavailableError
True
"""

from seqjax.nn.engines import cpu_build
from seqjax.nn.engines.cpu import gru, lstm, run_layer, simple_rnn
from seqjax.nn.engines.cpu_build import KernelUnavailableError, build, load

__all__ = [
    "KernelUnavailableError",
    "build",
    "cpu_build",
    "gru",
    "load",
    "lstm",
    "run_layer",
    "simple_rnn",
]

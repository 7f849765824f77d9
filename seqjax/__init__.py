"""seqjax: sequence learning in JAX and Flax.

Subpackages (import what you need; none of them needs TensorFlow, Keras or PyTorch):

- ``seqjax.nn``: recurrent layers (SimpleRNN, LSTM, GRU), Bidirectional, stacks, a 1D CNN.
- ``seqjax.data``: windows, stateful batch layouts, normalisation, splits, datasets.
- ``seqjax.train``: stateful and ordinary training steps, the fit loop, checkpoints.
- ``seqjax.diagnostics``: gradient flow over time.
- ``seqjax.interop``: Keras and PyTorch weights in and out.
- ``seqjax.transfer``: freezing parameters with optax, fine-tuning.
- ``seqjax.export``: a trained model as a stateful ``jax.export`` step that runs without seqjax.
"""

__version__ = "0.1.0"

import importlib as _importlib

_SUBPACKAGES = ("nn", "data", "train", "diagnostics", "interop", "transfer", "models", "export")


def __getattr__(name: str):
    """Imports a subpackage on first use, so ``import seqjax; seqjax.nn.LSTM`` works."""
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"seqjax.{name}")
    raise AttributeError(f"module 'seqjax' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBPACKAGES))

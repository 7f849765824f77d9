"""Lazy imports of the optional libraries (keras, torch), with an error that names the extra."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

EXTRA = "pip install seqjax[interop]"


def _missing(library: str, feature: str) -> ImportError:
    return ImportError(
        f"{feature} needs {library}, which is not installed. Install the optional dependencies "
        f"with `{EXTRA}` (or `pip install {library}`; PyTorch's CPU build: "
        "`pip install torch --index-url https://download.pytorch.org/whl/cpu`)."
    )


def require_keras(feature: str) -> ModuleType:
    """Imports and returns ``keras``; if seqjax imports it first, the backend defaults to JAX.

    ``KERAS_BACKEND`` is only set (to "jax") when keras has not been imported yet and the
    variable is unset, so a user's choice of backend is never overridden.
    """
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        return importlib.import_module("keras")
    except ImportError as e:
        raise _missing("keras", feature) from e


def require_torch(feature: str) -> ModuleType:
    """Imports and returns ``torch``."""
    try:
        return importlib.import_module("torch")
    except ImportError as e:
        raise _missing("torch", feature) from e

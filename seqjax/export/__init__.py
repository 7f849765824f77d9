"""Export a trained sequence model as a stateful step that runs without seqjax.

- :func:`export_step`: ``(carry, inputs [B, T, F][, reset [B]]) -> (carry, predictions)`` as
  serialized ``jax.export`` bytes, parameters (and an optional ``Standardizer``) baked in, for
  several platforms at once, with a fixed or symbolic batch size.
- :func:`with_scan`: the model with every recurrent layer on ``implementation="scan"`` (what is
  exported: no custom call of seqjax's compiled kernels).
- :func:`to_plain`, :func:`from_plain`: the carry as plain dicts/tuples for the signature.
- :data:`SERVE_SCRIPT`: a standalone serving script (imports only jax and numpy) that feeds a
  series one observation at a time through an artifact and measures time and memory per call.

This package depends only on jax, flax, numpy and seqjax's model code.
"""

from pathlib import Path

from seqjax.export.carry import from_plain, to_plain
from seqjax.export.scan_only import with_scan
from seqjax.export.step import PLATFORMS, export_step

SERVE_SCRIPT = Path(__file__).with_name("serve_script.py")

__all__ = ["PLATFORMS", "SERVE_SCRIPT", "export_step", "from_plain", "to_plain", "with_scan"]

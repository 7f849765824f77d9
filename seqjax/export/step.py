"""``export_step``: a trained sequence model as one serialized, stateful step function.

The artifact is a ``jax.export.Exported`` of::

    step(carry, inputs [B, T, F]) -> (carry, predictions [B, T, O])            # reset=False
    step(carry, inputs [B, T, F], reset [B] bool) -> (carry, predictions)       # reset=True

with the parameters (and any ``batch_stats``) baked in as constants, lowered for every platform
asked in one artifact. ``carry`` is the model's carry as plain containers
(:mod:`seqjax.export.carry`: ``LSTMCarry`` becomes ``{"cell", "hidden"}``, a ``StackedRNN``'s
carry a tuple of one entry per layer), so a process that never imports seqjax can load and call
it with ``jax.export.deserialize(blob).call(...)``. ``reset`` rows start from the model's initial
carry before the chunk (a stream restarted): zeros, or the learned initial state of layers with
``learn_initial_carry`` (such a model needs ``reset=True``; pass it on a stream's first call). The loop is the ``lax.scan`` on every platform
(:func:`seqjax.export.with_scan`), so the artifact holds no custom call of seqjax's kernels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.export.carry import from_plain, to_plain
from seqjax.export.scan_only import with_scan
from seqjax.nn import Bidirectional, StackedRNN
from seqjax.nn.engines.cpu import portable_lowering

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
SYMBOLIC_BATCH = "b"


def _modules(module: Any, path: str) -> list[tuple[str, nn.Module]]:
    """Every module nested in ``module``'s fields, with a readable path (``recurrent.layers[1]``)."""
    found = []
    if isinstance(module, nn.Module):
        found.append((path, module))
        for name in getattr(module, "__dataclass_fields__", {}):
            if name in ("parent", "name"):
                continue
            found.extend(_modules(getattr(module, name, None), f"{path}.{name}"))
    elif isinstance(module, tuple | list):
        for i, value in enumerate(module):
            found.extend(_modules(value, f"{path}[{i}]"))
    return found


def _check_options(model: nn.Module, reset: bool) -> None:
    """Raises ValueError naming the first option a streaming export cannot honour."""
    for path, module in _modules(model, "model"):
        kind = type(module).__name__
        if isinstance(module, Bidirectional):
            raise ValueError(
                f"export_step: {path} is a Bidirectional layer; its backward half reads the future "
                "and cannot continue a stream one chunk at a time. Export a unidirectional model."
            )
        if getattr(module, "reverse", False):
            raise ValueError(
                f"export_step: {path} ({kind}) has reverse=True; a reversed layer cannot continue "
                "a stream one chunk at a time."
            )
        if getattr(module, "time_major", False):
            raise ValueError(
                f"export_step: {path} ({kind}) has time_major=True; the exported step takes "
                "batch-major inputs [batch, time, features]."
            )
        if getattr(module, "learn_initial_carry", False) and not reset:
            raise ValueError(
                f"export_step: {path} ({kind}) has learn_initial_carry=True: a stream must start "
                "from the learned initial state, not from zeros. Export with reset=True and pass "
                "reset=True for a stream's first call (its rows then start from the learned state)."
            )


def _recurrent_input_features(model: nn.Module, params: Mapping[str, Any]) -> int | None:
    """``F`` from the first recurrent layer's input kernel ``[F, G*H]``, if it can be found."""
    module, tree = model, params
    if hasattr(module, "recurrent") and "recurrent" in tree:
        module, tree = module.recurrent, tree["recurrent"]
    while isinstance(module, StackedRNN) and "layers_0" in tree:
        module, tree = module.layers[0], tree["layers_0"]
    kernel = tree.get("kernel") if isinstance(tree, Mapping) else None
    return None if kernel is None else int(np.shape(kernel)[0])


def _stats(scaler: Any, name: str, width: int | None, dtype: Any) -> tuple[np.ndarray, ...] | None:
    if scaler is None:
        return None
    mean, scale = getattr(scaler, "mean_", None), getattr(scaler, "scale_", None)
    if mean is None or scale is None:
        raise ValueError(f"export_step: {name} is not fitted (call fit(train) first).")
    mean, scale = np.asarray(mean), np.asarray(scale)
    if width is not None and mean.shape not in ((), (width,)):
        raise ValueError(
            f"export_step: {name} was fitted on {mean.shape[-1]} features; the exported step "
            f"needs a scalar or {width} features here."
        )
    return np.asarray(mean, dtype), np.asarray(scale, dtype)


def _batch_dim(batch_size: int | str | None) -> Any:
    if batch_size is None or isinstance(batch_size, str):
        return jax.export.symbolic_shape(batch_size or SYMBOLIC_BATCH)[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(
            f"export_step: batch_size must be an int >= 1, None or a symbol name; "
            f"got {batch_size!r}."
        )
    if batch_size < 1:
        raise ValueError(f"export_step: batch_size must be >= 1; got {batch_size}.")
    return int(batch_size)


def export_step(
    model: nn.Module,
    variables: Mapping[str, Any],
    *,
    batch_size: int | str | None,
    time_steps: int = 1,
    platforms: Sequence[str] = ("cpu",),
    standardizer: Any = None,
    target_standardizer: Any = "same",
    features: int | None = None,
    reset: bool = False,
    dtype: Any = jnp.float32,
) -> bytes:
    """Serializes ``model`` with ``variables`` as a stateful step (module docstring).

    Args:
      model: a sequence model following seqjax's model protocol, e.g. a
        :class:`seqjax.train.SequenceModel` (``model.apply(variables, inputs, carry) ->
        (carry, predictions)``) with an ``initial_carry(batch_size, dtype)`` method.
      variables: its variables, ``{"params": ..., "batch_stats"?: ...}`` (baked in).
      batch_size: the ``B`` streams served at once; ``None`` or a name (e.g. ``"b"``) exports a
        symbolic batch size (``jax.export.symbolic_shape``): any ``B`` at call time (exported as
        ``jax.vmap`` of the one-row step, since the layers check concrete shapes).
      time_steps: ``T`` observations per call (1: one data point at a time).
      platforms: lowerings in the artifact, any of ``("cpu", "cuda", "rocm", "tpu")``; all can
        be produced on a CPU-only machine.
      standardizer: an optional fitted :class:`seqjax.data.Standardizer` (``mean_``, ``scale_``
        scalar or ``[F]``) applied to ``inputs`` inside the step, so a service feeds raw values.
      target_standardizer: inverted on the predictions (``mean_`` scalar or ``[O]``);
        ``"same"`` (default): the ``standardizer`` (next-step forecasting of the same
        quantity); ``None``: predictions stay standardised.
      features: ``F``; default: read from the first recurrent layer's input kernel.
      reset: add a third argument ``reset [B] bool``; its true rows restart from the initial
        carry (zeros, or the learned initial state; required with ``learn_initial_carry``).
      dtype: dtype of ``inputs``, the carry and the baked statistics.

    Returns:
      ``bytes``: ``jax.export.deserialize(blob)`` gives the ``Exported``; call it as
      ``carry, predictions = exp.call(carry, inputs[, reset])``. The zero carry is built from
      ``exp.in_avals`` (README, "Export and serve").

    Raises:
      ValueError: an option a streaming step cannot honour (``Bidirectional``, ``reverse``,
        ``time_major``, ``learn_initial_carry`` without ``reset``), a bad ``batch_size``/``time_steps``/platform,
        or an unfitted or mis-shaped standardizer; named in the message. Calling the artifact
        with another batch size or feature count fails in ``exp.call``, naming the shapes.

    >>> import jax, numpy as np
    >>> from seqjax.nn import LSTM
    >>> from seqjax.train import SequenceModel
    >>> model = SequenceModel(LSTM(4), output_features=1)
    >>> variables = model.init(jax.random.key(0), np.zeros((2, 1, 3), np.float32))
    >>> blob = export_step(model, variables, batch_size=2, platforms=("cpu", "cuda", "tpu"))
    >>> exp = jax.export.deserialize(blob)
    >>> exp.platforms, [a.shape for a in exp.in_avals]
    (('cpu', 'cuda', 'tpu'), [(2, 4), (2, 4), (2, 1, 3)])
    >>> carry = {"cell": np.zeros((2, 4), np.float32), "hidden": np.zeros((2, 4), np.float32)}
    >>> carry, y = exp.call(carry, np.ones((2, 1, 3), np.float32))
    >>> y.shape, sorted(carry)
    ((2, 1, 1), ['cell', 'hidden'])
    """
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise ValueError("export_step: variables must be a dict with a 'params' collection.")
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise ValueError(f"export_step: time_steps must be an int >= 1; got {time_steps!r}.")
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown or not platforms:
        raise ValueError(
            f"export_step: platforms must be a non-empty subset of {PLATFORMS}; "
            f"got {tuple(platforms)}."
        )
    if not hasattr(model, "initial_carry"):
        raise ValueError(
            f"export_step: {type(model).__name__} has no initial_carry(batch_size, "
            "dtype) method (use seqjax.train.SequenceModel)."
        )
    _check_options(model, reset)
    batch = _batch_dim(batch_size)
    if features is None:
        features = _recurrent_input_features(model, variables["params"])
        if features is None:
            raise ValueError(
                "export_step: cannot read the input features F from the variables; pass features=F."
            )
    dtype = jnp.dtype(dtype)
    inputs_stats = _stats(standardizer, "standardizer", features, dtype)
    if isinstance(target_standardizer, str) and target_standardizer == "same":
        target_standardizer = standardizer
    target_stats = _stats(target_standardizer, "target_standardizer", None, dtype)

    scan_model = with_scan(model)
    variables = dict(variables)
    initial_carry = lambda module, size: module.initial_carry(size, dtype)
    # Bound: a learned initial state (learn_initial_carry) needs the parameters.
    template = jax.eval_shape(lambda: model.apply(variables, 1, method=initial_carry))
    carry_avals = to_plain(
        jax.tree.map(lambda a: jax.ShapeDtypeStruct((batch, *a.shape[1:]), a.dtype), template)
    )
    inputs_aval = jax.ShapeDtypeStruct((batch, time_steps, features), dtype)

    def step(carry, inputs, reset_rows=None):
        carry = from_plain(template, carry)
        if reset_rows is not None:
            rows = inputs.shape[0]
            # zeros, or the learned initial state (learn_initial_carry)
            fresh = scan_model.apply(variables, rows, method=initial_carry)
            select = lambda new, old: jnp.where(
                reset_rows.reshape((-1,) + (1,) * (old.ndim - 1)), new.astype(old.dtype), old
            )
            carry = jax.tree.map(select, fresh, carry)
        if inputs_stats is not None:
            inputs = (inputs - inputs_stats[0]) / inputs_stats[1]
        carry, predictions = scan_model.apply(variables, inputs, carry)
        if target_stats is not None:
            predictions = predictions * target_stats[1] + target_stats[0]
        return to_plain(carry), predictions

    if not isinstance(batch, int):
        # The layers check concrete shapes (int(batch)), so a symbolic batch runs the one-row
        # step under vmap: inside, every row is a batch of 1; the same maths per row.
        one_row = step

        def step(carry, inputs, reset_rows=None):
            add_row = lambda tree: jax.tree.map(lambda a: a[None], tree)
            drop_row = lambda tree: jax.tree.map(lambda a: a[0], tree)

            def row(carry, inputs, reset_rows=None):
                reset_rows = None if reset_rows is None else reset_rows[None]
                out = one_row(add_row(carry), inputs[None], reset_rows)
                return drop_row(out)

            return jax.vmap(row)(carry, inputs, *(() if reset_rows is None else (reset_rows,)))

    avals = [carry_avals, inputs_aval]
    if reset:
        avals.append(jax.ShapeDtypeStruct((batch,), jnp.bool_))
    # with_scan covers layers held as attributes; the context also covers layers a model builds
    # inside its own __call__: on CPU they lower to the scan, never to seqjax's custom calls.
    with portable_lowering():
        exported = jax.export.export(jax.jit(step), platforms=tuple(platforms))(*avals)
    return bytes(exported.serialize())

"""Gradient flow over time: how much of the loss's gradient reaches each step of the sequence.

The recurrent layers add an optional ``hidden_offsets [B, T, H]`` to the hidden state after every
step; zeros change nothing and the gradient with respect to it is ``dL/dh_t``. Everything here is
that gradient, or the Jacobian ``dh_T/dh_t``, summarised per step:

- :func:`loss_gradient_norms`: ``|dL/dh_t|`` for a loss on a layer's outputs;
- :func:`jacobian_norms`: ``|dh_T/dh_t|_F``, the pure recurrence (no loss);
- :func:`model_gradient_norms`: ``|dL/dh_t|`` inside a whole model (e.g. a trained
  ``SequenceModel``) for one batch and its loss.

Each returns ``[T]``: the per-row norm averaged over the batch. Plotted on a log scale they show
the simple RNN's vanishing gradient (a straight line down: ``0.9 · 0.9 · 0.9 ...``), the
exploding one when the recurrent weights are large, and the LSTM's flat curve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.nn import RecurrentLayer
from seqjax.train import losses

Array = jax.Array


def _row_norms(grads: Array) -> Array:
    """``[B, T, H]`` -> ``[T]``: the L2 norm over ``H``, averaged over the batch."""
    return jnp.mean(jnp.sqrt(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=-1)), axis=0)


def _offsets(layer: RecurrentLayer, inputs: Array) -> Array:
    batch, time = inputs.shape[:2]
    return jnp.zeros((batch, time, layer.features), jnp.float32)


def _through_scan(layer: RecurrentLayer) -> RecurrentLayer:
    """The same layer (same parameters, same function) on its ``lax.scan``: ``hidden_offsets``
    exist only there (``implementation="cpu_kernel"`` does not take them)."""
    if getattr(layer, "implementation", "scan") != "scan":
        return layer.clone(implementation="scan", parent=None)
    return layer


def loss_gradient_norms(
    layer: RecurrentLayer,
    variables: Mapping[str, Any],
    inputs: Array,
    loss_fn: Callable[[Array], Array],
    *,
    initial_carry: Any = None,
    seq_lengths: Array | None = None,
) -> Array:
    """``|dL/dh_t|`` for every step ``t``, averaged over the batch: ``[T]``.

    Args:
      layer: a seqjax recurrent layer (``SimpleRNN``, ``LSTM``, ``GRU``), batch-major.
      variables: its variables (``{"params": ...}``).
      inputs: ``[B, T, F]``.
      loss_fn: ``outputs [B, T, H] -> scalar``, e.g. a readout of the last step and a loss.
      initial_carry, seq_lengths: passed to the layer.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import SimpleRNN
        >>> from seqjax.diagnostics import loss_gradient_norms
        >>> x = jnp.ones((2, 8, 1))                                 # [batch, time, features]
        >>> layer = SimpleRNN(4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> norms = loss_gradient_norms(layer, variables, x, lambda ys: jnp.sum(ys[:, -1]))
        >>> norms.shape                                             # one norm per step
        (8,)
        >>> bool(norms[0] < norms[-1])                              # it vanishes with the lag
        True
    """
    if layer.time_major:
        raise ValueError("loss_gradient_norms: use a batch-major layer (time_major=False).")
    layer = _through_scan(layer)

    def loss(offsets: Array) -> Array:
        _, outputs = cast(
            tuple[Any, Array],
            layer.apply(variables, inputs, initial_carry, seq_lengths, hidden_offsets=offsets),
        )
        return loss_fn(outputs)

    return _row_norms(jax.grad(loss)(_offsets(layer, inputs)))


def jacobian_norms(
    layer: RecurrentLayer,
    variables: Mapping[str, Any],
    inputs: Array,
    *,
    initial_carry: Any = None,
    target_step: int = -1,
) -> Array:
    """``|dh_T/dh_t|_F`` (Frobenius norm of the ``[H, H]`` Jacobian) for every ``t``: ``[T]``.

    ``T`` is ``target_step`` (the last step by default); steps after it get 0, and the entry at
    ``target_step`` itself is ``|I|_F = sqrt(H)``. Averaged over the batch rows. Costs ``H``
    backward passes (one per component of ``h_T``), fine for diagnostic sizes.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import SimpleRNN
        >>> from seqjax.diagnostics import jacobian_norms
        >>> x = jnp.ones((2, 8, 1))
        >>> layer = SimpleRNN(4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> norms = jacobian_norms(layer, variables, x)
        >>> norms.shape, round(float(norms[-1]), 4)                 # |I|_F = sqrt(4) at T itself
        ((8,), 2.0)
        >>> bool(norms[0] < norms[-1])
        True
    """
    if layer.time_major:
        raise ValueError("jacobian_norms: use a batch-major layer (time_major=False).")
    layer = _through_scan(layer)
    features = layer.features

    def last_hidden(offsets: Array) -> Array:
        _, outputs = cast(
            tuple[Any, Array],
            layer.apply(variables, inputs, initial_carry, hidden_offsets=offsets),
        )
        return outputs[:, target_step]  # [B, H]

    offsets = _offsets(layer, inputs)
    _, pullback = jax.vjp(last_hidden, offsets)
    batch = offsets.shape[0]
    basis = jnp.broadcast_to(jnp.eye(features)[:, None, :], (features, batch, features))
    (rows,) = jax.vmap(pullback)(basis)  # [H_out, B, T, H_in]: row i of every dh_T/dh_t
    per_row = jnp.sqrt(jnp.sum(jnp.square(rows), axis=(0, 3)))  # [B, T]
    return jnp.mean(per_row, axis=0)


def model_gradient_norms(
    model: nn.Module,
    variables: Mapping[str, Any],
    batch: Mapping[str, Any],
    *,
    loss: str | Callable[[Array, Array], Array] = "mse",
    carry: Any = None,
    layer: str | None = None,
) -> Array:
    """``|dL/dh_t|`` of one recurrent layer inside ``model`` for one batch: ``[T]``.

    The model follows the train steps' protocol (``model.apply(variables, inputs, carry) ->
    (carry, predictions)``), e.g. a trained :class:`seqjax.train.SequenceModel`; ``loss`` is a
    loss name of :mod:`seqjax.train.losses` or a per-example function, masked by ``batch["mask"]``.
    The probed layer is the first seqjax recurrent layer the model calls, or the one whose module
    name is ``layer`` (e.g. ``"layers_1"`` inside a ``StackedRNN``).

    Example:
        >>> import flax.linen as nn
        >>> import jax, jax.numpy as jnp
        >>> from seqjax.nn import LSTM
        >>> from seqjax.diagnostics import model_gradient_norms
        >>> class Forecaster(nn.Module):                            # (inputs, carry) -> (carry, predictions)
        ...     @nn.compact
        ...     def __call__(self, inputs, carry=None):
        ...         carry, hs = LSTM(4)(inputs, carry)
        ...         return carry, nn.Dense(1)(hs)
        >>> batch = {"inputs": jnp.ones((2, 8, 1)), "targets": jnp.zeros((2, 8, 1))}
        >>> model = Forecaster()
        >>> variables = model.init(jax.random.key(0), batch["inputs"])
        >>> model_gradient_norms(model, variables, batch, loss="mse").shape
        (8,)
    """
    pointwise = losses.pointwise(loss) if isinstance(loss, str) else loss
    inputs = jnp.asarray(batch["inputs"])

    def probe(offsets: Array | None, seen: dict[str, Any]) -> Callable:
        def interceptor(next_fun, args, kwargs, context):
            module = context.module
            chosen = layer is None or module.name == layer
            if (
                isinstance(module, RecurrentLayer)
                and context.method_name == "__call__"
                and chosen
                and "shape" not in seen
            ):
                seen["shape"] = (inputs.shape[0], inputs.shape[1], module.features)
                if offsets is not None:
                    kwargs = {**kwargs, "hidden_offsets": offsets}
            return next_fun(*args, **kwargs)

        return interceptor

    seen: dict[str, Any] = {}
    with nn.intercept_methods(probe(None, seen)):
        jax.eval_shape(lambda: model.apply(variables, inputs, carry))
    if "shape" not in seen:
        raise ValueError(
            f"model_gradient_norms: {type(model).__name__} calls no seqjax recurrent layer"
            + (f" named {layer!r}." if layer else ".")
        )

    def total_loss(offsets: Array) -> Array:
        with nn.intercept_methods(probe(offsets, {})):
            _, predictions = cast(tuple[Any, Array], model.apply(variables, inputs, carry))
        mask = batch.get("mask")
        mask = None if mask is None else jnp.asarray(mask, jnp.float32)
        return losses.masked_mean(pointwise(predictions, jnp.asarray(batch["targets"])), mask)

    return _row_norms(jax.grad(total_loss)(jnp.zeros(seen["shape"], jnp.float32)))

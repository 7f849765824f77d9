"""Online learning: one optimiser update per observation, TBPTT(k1=1, k2=k).

Feeding a long series one data point at a time with the carry held (T=1 chunks through
:func:`seqjax.train.train_step`) is truncated BPTT of *one* step: the gradient never reaches an
earlier observation. :func:`online_step` keeps a window of the last ``k`` observations and the
carry from before the window's first one, and at every new observation ``t``:

1. appends ``(x_t, y_t)`` to the window (dropping the oldest once it holds ``k``);
2. runs the model from the held carry over the window (``k`` steps, fewer while it fills);
3. takes the gradient of **the loss at step t only** (the newest target), backpropagated through
   the last ``k`` observations (the held carry is a constant), and applies one optimiser update;
4. when the window is full, advances the held carry by one observation (the carry after the
   window's first step, computed in this forward pass with the parameters before the update).

``k=1`` is exactly ``train_step`` on ``T=1`` chunks with the carry threaded. The prediction
returned for step ``t`` is made before the update that sees ``y_t`` (prequential: an honest
forecast). Everything is one jitted step; :func:`online_fit` scans it over a whole series.

Example::

    state = create_online_state(SequenceModel(LSTM(32), 1), optax.adam(1e-3),
                                batch_size=1, features=1, window=20)
    step = jax.jit(online_step, donate_argnums=0)
    for x_t, y_t in stream:                        # x_t [1, 1], y_t [1, 1]
        state, prediction, metrics = step(state, x_t, y_t, rng)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from seqjax.train import losses
from seqjax.train.carry import reset_carry
from seqjax.train.state import TrainState, create_train_state


class OnlineState(struct.PyTreeNode):
    """What :func:`online_step` threads from observation to observation.

    Attributes:
      train: the :class:`TrainState` (parameters, optimiser, step).
      carry: the model's carry before the window's first observation (``[B, ...]`` leaves).
      inputs: the window ``[B, k, F]``, oldest first; ``filled`` entries are valid.
      targets: its targets ``[B, k, O]``.
      filled: int32, the observations in the window (``k`` once full).
    """

    train: TrainState
    carry: Any
    inputs: jax.Array
    targets: jax.Array
    filled: jax.Array

    @property
    def window(self) -> int:
        """``k``: the observations the gradient runs back through."""
        return self.inputs.shape[1]


def create_online_state(
    model: nn.Module,
    optimizer: optax.GradientTransformation,
    *,
    batch_size: int,
    features: int,
    window: int,
    seed: int = 0,
    params: Any = None,
) -> OnlineState:
    """A fresh :class:`OnlineState` for ``batch_size`` streams of ``features`` inputs.

    Args:
      model: a module of the model protocol (:class:`seqjax.train.SequenceModel`) with
        ``return_sequences=True`` and an ``initial_carry(batch_size)`` method.
      optimizer: the optax transformation applied at every observation.
      window: ``k >= 1``, the observations each gradient runs back through.
      seed: parameters and dropout (as :func:`seqjax.train.create_train_state`).
      params: start from these parameters (e.g. a model trained offline) instead of the init.

    >>> import optax
    >>> from seqjax.nn import LSTM
    >>> from seqjax.train import SequenceModel
    >>> state = create_online_state(SequenceModel(LSTM(4), 1), optax.sgd(0.1),
    ...                             batch_size=2, features=3, window=5)
    >>> state.window, state.inputs.shape, state.targets.shape, int(state.filled)
    (5, (2, 5, 3), (2, 5, 1), 0)
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window (k) must be an int >= 1; got {window!r}.")
    if batch_size < 1 or features < 1:
        raise ValueError(f"batch_size and features must be >= 1; got {batch_size}, {features}.")
    example = jnp.zeros((batch_size, 1, features), jnp.float32)
    train = create_train_state(model, optimizer, example, seed=seed)
    if params is not None:
        train = train.replace(params=params, opt_state=optimizer.init(params))
    out = jax.eval_shape(lambda: model.apply({"params": train.params}, example)[1])
    if out.ndim != 3:
        raise ValueError(
            f"online learning needs one prediction per step [B, T, O]; the model returns {out.shape}"
            " (use return_sequences=True)."
        )
    return OnlineState(
        train=train,
        carry=model.initial_carry(batch_size),
        inputs=jnp.zeros((batch_size, window, features), jnp.float32),
        targets=jnp.zeros((batch_size, window, out.shape[-1]), jnp.float32),
        filled=jnp.zeros((), jnp.int32),
    )


def _append(window: jax.Array, value: jax.Array, filled: jax.Array) -> jax.Array:
    """``window [B, k, ...]`` with ``value [B, ...]`` appended (the oldest dropped when full)."""
    k = window.shape[1]
    window = jnp.where(filled >= k, jnp.roll(window, -1, axis=1), window)
    position = jnp.minimum(filled, k - 1)
    return jax.lax.dynamic_update_slice_in_dim(
        window, value[:, None].astype(window.dtype), position, axis=1
    )


def _window_loss(params, state: OnlineState, inputs, targets, valid, rng, term):
    """The loss at the newest observation, from the held carry through the ``valid`` steps of the
    window; aux ``(carry after the window's first step, prediction at the newest step)``."""
    train = state.train
    variables = {"params": params}
    if train.batch_stats:
        variables["batch_stats"] = train.batch_stats
    apply = functools.partial(train.apply_fn, variables, deterministic=False, rngs={"dropout": rng})
    carry = jax.lax.stop_gradient(state.carry)
    first_carry, predictions = apply(inputs[:, :1], carry)
    if state.window > 1:
        rest = jnp.full((inputs.shape[0],), valid - 1, jnp.int32)
        rest_keys = {"dropout": jax.random.fold_in(rng, 1)}
        _, later = train.apply_fn(
            variables,
            inputs[:, 1:],
            first_carry,
            seq_lengths=rest,
            deterministic=False,
            rngs=rest_keys,
        )
        predictions = jnp.concatenate([predictions, later], axis=1)
    newest = jax.lax.dynamic_index_in_dim(predictions, valid - 1, axis=1, keepdims=False)
    value = jnp.mean(term(newest, targets))
    return value, (first_carry, newest)


def online_step(
    state: OnlineState,
    inputs: jax.Array,
    targets: jax.Array,
    rng: jax.Array,
    *,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "mse",
    reset: jax.Array | None = None,
) -> tuple[OnlineState, jax.Array, dict[str, jax.Array]]:
    """One observation: predict it, then one update with TBPTT(1, k) (module docstring).

    Args:
      state: the :class:`OnlineState` (donate it when jitted).
      inputs: ``x_t`` ``[B, F]``, the newest observation of each stream.
      targets: ``y_t`` ``[B, O]``, its target (e.g. the next value).
      rng: the base key; dropout uses ``fold_in(rng, step)``.
      loss: "mse", "mae", "huber" or a per-example function ``(predictions, targets) -> [B]``.
      reset: optional ``[B]`` bool, accepted only with ``k = 1``: those rows start from zeros.

    Returns:
      ``(new_state, prediction [B, O] made before the update, metrics)``; metrics ``loss`` (at
      step t, before the update) and ``grad_norm``.

    >>> import jax, optax, numpy as np
    >>> from seqjax.nn import GRU
    >>> from seqjax.train import SequenceModel
    >>> state = create_online_state(SequenceModel(GRU(8), 1), optax.adam(0.02),
    ...                             batch_size=1, features=1, window=4)
    >>> series = np.sin(0.3 * np.arange(301, dtype=np.float32))
    >>> step, rng, errors = jax.jit(online_step), jax.random.key(0), []
    >>> for t in range(300):
    ...     state, prediction, _ = step(state, series[t : t + 1, None], series[t + 1 : t + 2, None], rng)
    ...     errors.append(float((prediction[0, 0] - series[t + 1]) ** 2))
    >>> int(state.train.step), int(state.filled)
    (300, 4)
    >>> bool(np.mean(errors[-50:]) < 0.1 * np.mean(series**2))  # learned, vs predicting zero
    True
    """
    term = losses.pointwise(loss) if isinstance(loss, str) else loss
    batch = state.inputs.shape[0]
    if inputs.shape != (batch, state.inputs.shape[2]):
        raise ValueError(
            f"online_step: inputs must be [B, F] = {(batch, state.inputs.shape[2])};"
            f" got {inputs.shape}."
        )
    if targets.shape != (batch, state.targets.shape[2]):
        raise ValueError(
            f"online_step: targets must be [B, O] = "
            f"{(batch, state.targets.shape[2])}; got {targets.shape}."
        )
    if reset is not None:
        if state.window != 1:
            raise ValueError(
                "online_step: reset is supported for window k=1 only (a longer "
                "window would mix the old and the new stream)."
            )
        state = state.replace(carry=reset_carry(state.carry, reset))
    window_x = _append(state.inputs, inputs, state.filled)
    window_y = _append(state.targets, targets, state.filled)
    valid = jnp.minimum(state.filled + 1, state.window)
    train = state.train
    step_rng = jax.random.fold_in(rng, train.step)
    grad_fn = jax.value_and_grad(_window_loss, has_aux=True)
    (value, (first_carry, prediction)), grads = grad_fn(
        train.params, state, window_x, targets, valid, step_rng, term
    )
    full = valid == state.window
    carry = jax.tree.map(lambda new, old: jnp.where(full, new, old), first_carry, state.carry)
    new_state = state.replace(
        train=train.apply_gradients(grads=grads),
        carry=carry,
        inputs=window_x,
        targets=window_y,
        filled=valid,
    )
    return new_state, prediction, {"loss": value, "grad_norm": optax.global_norm(grads)}


def online_fit(
    state: OnlineState,
    inputs: jax.Array,
    targets: jax.Array,
    rng: jax.Array,
    *,
    loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "mse",
) -> tuple[OnlineState, jax.Array, jax.Array]:
    """:func:`online_step` over a whole stream (one ``lax.scan``; jit it with ``loss`` static).

    Args:
      inputs: ``[N, B, F]``, the observations in time order; targets ``[N, B, O]``.

    Returns:
      ``(state after the N updates, predictions [N, B, O] each made before its update,
      losses [N])``.

    >>> import jax, optax, numpy as np
    >>> from seqjax.nn import LSTM
    >>> from seqjax.train import SequenceModel
    >>> state = create_online_state(SequenceModel(LSTM(4), 1), optax.sgd(0.01),
    ...                             batch_size=2, features=1, window=3)
    >>> x = np.ones((10, 2, 1), np.float32)
    >>> state, predictions, losses = jax.jit(online_fit)(state, x, 0 * x, jax.random.key(0))
    >>> predictions.shape, losses.shape, int(state.train.step)
    ((10, 2, 1), (10,), 10)
    """

    def body(state, observation):
        x, y = observation
        state, prediction, metrics = online_step(state, x, y, rng, loss=loss)
        return state, (prediction, metrics["loss"])

    state, (predictions, step_losses) = jax.lax.scan(body, state, (inputs, targets))
    return state, predictions, step_losses

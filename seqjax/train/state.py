"""``TrainState``: flax's ``train_state.TrainState`` plus batch statistics and the run's key.

The recurrent carry is *not* part of the state: it belongs to the data stream, not to the model,
and it is threaded through the train step next to the state (see :mod:`seqjax.train.steps`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
    """Parameters, optimiser state and step, plus:

    Attributes:
      batch_stats: the model's ``batch_stats`` collection (``{}`` when it has none).
      rng: the run's base PRNG key as raw ``uint32`` key data (checkpointable); the step key is
        ``fold_in(key, step)``, so a resumed run draws the same dropout masks.
    """

    batch_stats: Any = None
    rng: jax.Array | None = None

    def base_key(self) -> jax.Array:
        """The base key as a typed PRNG key (a copy, safe to pass next to a donated state)."""
        return jax.random.wrap_key_data(jnp.asarray(np.asarray(self.rng)))


def create_train_state(
    model: nn.Module,
    tx: optax.GradientTransformation,
    example: Mapping[str, Any] | jax.Array,
    *,
    seed: int = 0,
    carry: Any = None,
    variables: Mapping[str, Any] | None = None,
) -> TrainState:
    """Initialises ``model`` on ``example`` (a batch dict or inputs ``[B, T, F]`` / images).

    The key ``jax.random.key(seed)`` is split into the parameter key, the dropout key of ``init``
    and the run's base key stored in the state. With ``variables`` (``{"params",
    "batch_stats"?}``, e.g. a pretrained backbone and a new head) the model is not initialised:
    the state starts from those, with a fresh optimiser state.

    >>> import jax.numpy as jnp, optax
    >>> from seqjax.nn import GRU
    >>> from seqjax.train import SequenceModel
    >>> model = SequenceModel(GRU(4), output_features=1)
    >>> state = create_train_state(model, optax.adam(1e-3), jnp.ones((2, 5, 3)))
    >>> again = create_train_state(model, optax.sgd(0.1), jnp.ones((2, 5, 3)),
    ...                            variables={"params": state.params})
    >>> int(again.step), again.params["head"]["kernel"].shape
    (0, (4, 1))
    """
    inputs = example["inputs"] if isinstance(example, Mapping) else example
    params_key, dropout_key, run_key = jax.random.split(jax.random.key(seed), 3)
    if variables is None:
        # Eager on purpose: the small ops' compilations are cached across models, while a jitted
        # init compiles every initialiser (QR for the orthogonal ones) again for each new model.
        variables = model.init({"params": params_key, "dropout": dropout_key}, inputs, carry)
    variables = dict(variables)
    params = variables.pop("params")
    batch_stats = variables.pop("batch_stats", {})
    return TrainState.create(
        apply_fn=model.apply,
        params=params,
        tx=tx,
        batch_stats=batch_stats,
        rng=jax.random.key_data(run_key),
    ).replace(step=jnp.zeros((), jnp.int32))  # an array, as after a step: no retrace on step 2

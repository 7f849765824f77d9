"""Keras 3 layers and models in and out of seqjax: :func:`from_keras` and :func:`to_keras`.

Supported Keras layers (``from_keras``):

- ``LSTM`` / ``RNN(LSTMCell)`` -> :class:`seqjax.nn.LSTM`: weights copied (Keras i, f, c, o is
  seqjax i, f, g, o); ``activation`` becomes both ``cell_activation`` and ``output_activation``.
- ``GRU`` / ``RNN(GRUCell)`` with ``reset_after=True`` (the Keras default) -> :class:`seqjax.nn.GRU`:
  gate blocks reordered from Keras (z, r, h) to seqjax (r, z, n); ``bias (2, 3H)`` split into
  ``bias`` (row 0, input side) and ``recurrent_bias`` (row 1).
- ``SimpleRNN`` / ``RNN(SimpleRNNCell)`` -> :class:`seqjax.nn.SimpleRNN`.
- ``Bidirectional`` of these -> :class:`seqjax.nn.Bidirectional` (merge ``"ave"`` is ``"mean"``).
- ``Dense`` -> ``flax.linen.Dense``; ``Conv1D`` (channels-last; padding valid/same/causal,
  strides, dilation, groups) -> ``flax.linen.Conv``; with a non-linear ``activation`` either is
  wrapped in :class:`~seqjax.interop.sequential.Activated` (variables under ``"layer"``).
- ``BatchNormalization`` (last axis) -> ``flax.linen.BatchNorm(use_running_average=True)``
  with ``batch_stats`` ``mean``/``var``; ``Dropout``, ``Activation``, ``Masking``,
  ``GlobalAveragePooling1D``, ``GlobalMaxPooling1D``, ``Flatten``.
- a ``Sequential`` of these -> :class:`~seqjax.interop.sequential.Sequential` whose output is the
  Keras model's output (``return_sequences=False`` and ``go_backwards`` included);
- a functional ``MobileNetV2`` (``keras.applications``) -> dispatched to
  ``seqjax.interop.keras_mobilenet.mobilenet_v2_from_keras``.

What differs from Keras for a single recurrent layer (a ``Sequential`` handles both for you):

- seqjax returns all steps. With ``return_sequences=False`` the Keras output is
  ``outputs[:, -1]``, or with padding each row's last valid step, which is the carry's hidden
  state (``carry.hidden`` for an LSTM, ``carry`` for GRU/SimpleRNN);
- ``go_backwards=True`` becomes ``reverse=True``, whose outputs are in the original time order:
  Keras' output is ``outputs[:, ::-1]`` (``return_sequences=True``) or ``outputs[:, 0]``.
- Keras' ``mask`` (from ``Masking`` or ``mask=``) is ``seq_lengths = mask.sum(1)`` for right
  padding. At masked steps seqjax outputs zeros; Keras repeats the last output unless
  ``zero_output_for_mask`` (which ``Bidirectional`` sets).
- Carries: Keras' LSTM state ``[h, c]`` is ``LSTMCarry(cell=c, hidden=h)``; see
  :mod:`seqjax.interop.carries`. A ``stateful=True`` layer is the seqjax layer called with
  ``initial_carry`` = the previous call's carry.
- ``dropout`` / ``recurrent_dropout`` are training-time settings and are not carried over (a
  warning names them).

Unsupported settings raise ``ValueError`` naming the setting: ``reset_after=False``, a
``recurrent_activation`` other than sigmoid, custom activations, ``data_format="channels_first"``,
a ``Bidirectional`` whose forward layer has ``go_backwards=True``, stacked cells.
"""

from __future__ import annotations

import warnings
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from seqjax.interop import gates
from seqjax.interop._lazy import require_keras
from seqjax.interop.activations import JAX_ACTIVATIONS, jax_activation, keras_activation_name
from seqjax.interop.sequential import (
    Activated,
    Activation,
    Flatten,
    GlobalPool1D,
    Masking,
    Sequential,
    is_recurrent,
)
from seqjax.nn.base import RecurrentLayer
from seqjax.nn.bidirectional import Bidirectional
from seqjax.nn.gru import GRU
from seqjax.nn.lstm import LSTM
from seqjax.nn.simple_rnn import SimpleRNN
from seqjax.nn.stack import StackedRNN

__all__ = ["from_keras", "is_keras_mobilenet_v2", "to_keras"]

Variables = dict[str, Any]

_MERGE_FROM_KERAS = {"concat": "concat", "sum": "sum", "ave": "mean", "mul": "mul", None: None}
_MERGE_TO_KERAS = {v: k for k, v in _MERGE_FROM_KERAS.items()}
_MOBILENET_LAYERS = {"Conv1", "bn_Conv1", "expanded_conv_depthwise", "block_1_depthwise"}


def _numpy(variable: Any) -> np.ndarray:
    """A Keras variable (any backend) as a NumPy array, dtype kept."""
    value = variable.numpy() if hasattr(variable, "numpy") else variable
    return np.array(value, copy=True)


def _to_jax(tree: Any) -> Any:
    return jax.tree.map(jnp.asarray, tree)


def _check_built(layer: Any) -> None:
    if not layer.built:
        raise ValueError(
            f"from_keras: Keras layer {layer.name!r} ({type(layer).__name__}) has no weights yet; "
            "build it first (call it on an input, or use keras.Input in a model)."
        )


def is_keras_mobilenet_v2(model: Any) -> bool:
    """True for a functional Keras model built by ``keras.applications.MobileNetV2``."""
    name = str(getattr(model, "name", "")).lower()
    names = {layer.name for layer in getattr(model, "layers", [])}
    return name.startswith("mobilenetv2") or _MOBILENET_LAYERS <= names


# ---- Keras -> seqjax ----------------------------------------------------------------------------
def from_keras(layer_or_model: Any) -> tuple[nn.Module, Variables]:
    """A configured seqjax (or Flax) module and its variables from a built Keras layer or model.

    Args:
      layer_or_model: a built ``keras.layers.LSTM`` / ``GRU`` / ``SimpleRNN`` / ``RNN`` of one of
        their cells, ``Bidirectional``, ``Conv1D``, ``Dense``, ``BatchNormalization``, a
        ``keras.Sequential`` of supported layers, or a functional ``MobileNetV2``.

    Returns:
      ``(module, variables)`` with ``variables = {"params": ...}`` (plus ``"batch_stats"`` when
      there is a BatchNorm). For recurrent layers ``module.apply(variables, x)`` returns
      ``(carry, outputs)`` with all steps (see the module docstring for ``return_sequences=False``
      and ``go_backwards``); a ``Sequential`` returns ``(carries, keras_output)``.

    Raises:
      ValueError: a configuration seqjax cannot reproduce; the message names the setting.
      TypeError: a layer type with no converter.

    Example:
        >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "jax")
        >>> import keras, numpy as np
        >>> from seqjax.interop import from_keras
        >>> model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
        >>> module, variables = from_keras(model)
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
        >>> carries, y = module.apply(variables, x)
        >>> y.shape, bool(np.allclose(y, model(x), atol=1e-5))
        ((2, 1), True)
    """
    keras = require_keras("seqjax.interop.from_keras")
    if isinstance(layer_or_model, keras.Sequential):
        return _from_sequential(keras, layer_or_model)
    if isinstance(layer_or_model, keras.Model):
        if is_keras_mobilenet_v2(layer_or_model):
            from seqjax.interop.keras_mobilenet import mobilenet_v2_from_keras

            return mobilenet_v2_from_keras(layer_or_model)
        nested = [
            layer.name
            for layer in layer_or_model.layers
            if isinstance(layer, keras.Model) and is_keras_mobilenet_v2(layer)
        ]
        hint = f" (for its MobileNetV2 pass model.get_layer({nested[0]!r}))" if nested else ""
        raise TypeError(
            f"from_keras: functional model {layer_or_model.name!r} is not supported{hint}; pass a "
            "keras.Sequential, a MobileNetV2 from keras.applications, or convert its layers one by "
            "one."
        )
    module, variables, _ = _convert_layer(keras, layer_or_model)
    return module, variables


def _from_sequential(keras: Any, model: Any) -> tuple[Sequential, Variables]:
    modules, modes = [], []
    params: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for i, layer in enumerate(layers):
        module, variables, mode = _convert_layer(keras, layer)
        if isinstance(module, Bidirectional) and module.merge_mode is None and i < len(layers) - 1:
            raise ValueError(
                f"from_keras: Bidirectional {layer.name!r} has merge_mode=None (two outputs) and is "
                "not the last layer of the Sequential."
            )
        modules.append(module)
        modes.append(mode or "sequences")
        if variables.get("params"):
            params[f"layers_{i}"] = variables["params"]
        if variables.get("batch_stats"):
            stats[f"layers_{i}"] = variables["batch_stats"]
    out: Variables = {"params": params}
    if stats:
        out["batch_stats"] = stats
    return Sequential(tuple(modules), output_modes=tuple(modes)), out


def _convert_layer(keras: Any, layer: Any) -> tuple[nn.Module, Variables, str | None]:
    """``(module, variables, output_mode)``; output_mode is None for non-recurrent layers."""
    L = keras.layers
    if isinstance(layer, L.Bidirectional):
        return _from_bidirectional(keras, layer)
    if isinstance(layer, L.RNN):
        module, params = _from_rnn(keras, layer)
        return module, {"params": params}, _output_mode(layer)
    if isinstance(layer, L.Dense):
        return _from_dense(layer) + (None,)
    if isinstance(layer, L.Conv1D) and not isinstance(layer, L.Conv1DTranspose):
        return _from_conv1d(layer) + (None,)
    if isinstance(layer, L.BatchNormalization):
        return _from_batch_norm(layer) + (None,)
    if isinstance(layer, L.Dropout):
        return nn.Dropout(float(layer.rate)), {}, None
    if isinstance(layer, L.Activation):
        fn = jax_activation(layer.activation, setting="activation", layer=layer.name)
        return Activation(fn), {}, None
    if isinstance(layer, L.Masking):
        return Masking(float(layer.mask_value)), {}, None
    if isinstance(layer, L.GlobalAveragePooling1D | L.GlobalMaxPooling1D):
        if layer.data_format != "channels_last":
            raise ValueError(
                f"from_keras: {layer.name}: data_format={layer.data_format!r} is not supported "
                "(channels_last only)."
            )
        op = "mean" if isinstance(layer, L.GlobalAveragePooling1D) else "max"
        return GlobalPool1D(op, keepdims=bool(layer.keepdims)), {}, None
    if isinstance(layer, L.Flatten):
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise ValueError(
                f"from_keras: {layer.name}: data_format={layer.data_format!r} is not supported."
            )
        return Flatten(), {}, None
    raise TypeError(
        f"from_keras: no converter for Keras layer {layer.name!r} of type {type(layer).__name__}; "
        "supported: LSTM, GRU, SimpleRNN, RNN of their cells, Bidirectional, Dense, Conv1D, "
        "BatchNormalization, Dropout, Activation, Masking, GlobalAveragePooling1D, "
        "GlobalMaxPooling1D, Flatten, and Sequential models of these."
    )


def _output_mode(layer: Any) -> str:
    if not layer.return_sequences:
        return "last"
    return "reversed" if layer.go_backwards else "sequences"


def _from_rnn(keras: Any, layer: Any) -> tuple[RecurrentLayer, dict[str, Any]]:
    L = keras.layers
    cell = layer.cell
    name = f"{type(layer).__name__} {layer.name!r}"
    if isinstance(cell, L.LSTMCell):
        kind = "lstm"
    elif isinstance(cell, L.GRUCell):
        kind = "gru"
    elif isinstance(cell, L.SimpleRNNCell):
        kind = "simple_rnn"
    else:
        raise ValueError(
            f"from_keras: {name}: cell={type(cell).__name__} is not supported (LSTMCell, GRUCell, "
            "SimpleRNNCell only; stacked cells: use one RNN layer per cell)."
        )
    _check_built(layer)
    activation = jax_activation(cell.activation, setting="activation", layer=name)
    if kind != "simple_rnn":
        recurrent = jax_activation(
            cell.recurrent_activation, setting="recurrent_activation", layer=name
        )
        if recurrent is not jax.nn.sigmoid:
            raise ValueError(
                f"from_keras: {name}: recurrent_activation={cell.recurrent_activation.__name__!r} "
                "is not supported; seqjax gates use sigmoid."
            )
    if kind == "gru" and not cell.reset_after:
        raise ValueError(
            f"from_keras: {name}: reset_after=False is not weight-compatible with seqjax.nn.GRU "
            "(which applies the reset gate after the recurrent matmul, like reset_after=True)."
        )
    dropped = [s for s in ("dropout", "recurrent_dropout") if float(getattr(cell, s, 0.0)) > 0]
    if dropped:
        warnings.warn(
            f"from_keras: {name}: {', '.join(dropped)} is a training-time setting and is not "
            "carried over to the seqjax layer.",
            stacklevel=3,
        )
    bias = _numpy(cell.bias) if cell.use_bias else None
    params = gates.keras_to_seqjax(kind, _numpy(cell.kernel), _numpy(cell.recurrent_kernel), bias)
    units = int(cell.units)
    reverse = bool(layer.go_backwards)
    module: RecurrentLayer
    if kind == "lstm":
        module = LSTM(
            units, reverse=reverse, cell_activation=activation, output_activation=activation
        )
    elif kind == "gru":
        module = GRU(units, reverse=reverse, activation=activation)
    else:
        module = SimpleRNN(units, reverse=reverse, activation=activation)
    return module, _to_jax(params)


def _from_bidirectional(keras: Any, layer: Any) -> tuple[Bidirectional, Variables, str]:
    fwd_layer, bwd_layer = layer.forward_layer, layer.backward_layer
    if fwd_layer.go_backwards:
        raise ValueError(
            f"from_keras: Bidirectional {layer.name!r}: a forward layer with go_backwards=True "
            "(and a forward-running backward_layer) is not supported; swap the two layers."
        )
    for sub in (fwd_layer, bwd_layer):
        if not isinstance(sub, keras.layers.RNN):
            raise TypeError(
                f"from_keras: Bidirectional {layer.name!r} wraps {type(sub).__name__}; only RNN "
                "layers (LSTM, GRU, SimpleRNN) are supported."
            )
    fwd, fwd_params = _from_rnn(keras, fwd_layer)
    bwd, bwd_params = _from_rnn(keras, bwd_layer)
    module = Bidirectional(fwd, backward_layer=bwd, merge_mode=_MERGE_FROM_KERAS[layer.merge_mode])
    variables = {"params": {"forward_rnn": fwd_params, "backward_rnn": bwd_params}}
    return module, variables, "sequences" if layer.return_sequences else "last"


def _activated(
    module: nn.Module, params: dict[str, Any], activation: Any, name: str
) -> tuple[nn.Module, Variables]:
    fn = jax_activation(activation, setting="activation", layer=name)
    if fn is JAX_ACTIVATIONS["linear"]:
        return module, {"params": _to_jax(params)}
    return Activated(module, fn), {"params": {"layer": _to_jax(params)}}


def _from_dense(layer: Any) -> tuple[nn.Module, Variables]:
    _check_built(layer)
    name = f"Dense {layer.name!r}"
    if getattr(layer, "lora_enabled", False):
        raise ValueError(f"from_keras: {name}: lora_enabled=True is not supported.")
    params = {"kernel": _numpy(layer.kernel)}
    if layer.use_bias:
        params["bias"] = _numpy(layer.bias)
    module = nn.Dense(int(layer.units), use_bias=bool(layer.use_bias))
    return _activated(module, params, layer.activation, name)


def _from_conv1d(layer: Any) -> tuple[nn.Module, Variables]:
    _check_built(layer)
    name = f"Conv1D {layer.name!r}"
    if layer.data_format != "channels_last":
        raise ValueError(
            f"from_keras: {name}: data_format={layer.data_format!r} is not supported "
            "(channels_last only, [batch, time, channels])."
        )
    padding = {"valid": "VALID", "same": "SAME", "causal": "CAUSAL"}.get(layer.padding)
    if padding is None:
        raise ValueError(f"from_keras: {name}: padding={layer.padding!r} is not supported.")
    params = {"kernel": _numpy(layer.kernel)}  # [k, C_in / groups, C_out], as flax
    if layer.use_bias:
        params["bias"] = _numpy(layer.bias)
    module = nn.Conv(
        int(layer.filters),
        kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides),
        padding=padding,
        kernel_dilation=tuple(layer.dilation_rate),
        feature_group_count=int(layer.groups),
        use_bias=bool(layer.use_bias),
    )
    return _activated(module, params, layer.activation, name)


def _from_batch_norm(layer: Any) -> tuple[nn.Module, Variables]:
    _check_built(layer)
    ndim = getattr(layer.input_spec, "ndim", None)
    if layer.axis != -1 and (ndim is None or layer.axis != ndim - 1):
        raise ValueError(
            f"from_keras: BatchNormalization {layer.name!r}: axis={layer.axis} is not supported "
            "(the last axis only)."
        )
    params, stats = {}, {"mean": _numpy(layer.moving_mean), "var": _numpy(layer.moving_variance)}
    if layer.scale:
        params["scale"] = _numpy(layer.gamma)
    if layer.center:
        params["bias"] = _numpy(layer.beta)
    module = nn.BatchNorm(
        use_running_average=True,
        momentum=float(layer.momentum),
        epsilon=float(layer.epsilon),
        use_bias=bool(layer.center),
        use_scale=bool(layer.scale),
    )
    return module, {"params": _to_jax(params), "batch_stats": _to_jax(stats)}


# ---- seqjax -> Keras ----------------------------------------------------------------------------
def _params(variables: Variables) -> dict[str, Any]:
    return variables["params"] if "params" in variables else variables


def _kind(module: RecurrentLayer) -> str:
    if isinstance(module, LSTM):
        return "lstm"
    if isinstance(module, GRU):
        return "gru"
    if isinstance(module, SimpleRNN):
        return "simple_rnn"
    raise TypeError(f"no Keras equivalent for {type(module).__name__}.")


def _keras_rnn(keras: Any, module: RecurrentLayer, params: dict[str, Any], name: str | None):
    kind = _kind(module)
    label = f"to_keras: {type(module).__name__}"
    if module.time_major:
        raise ValueError(f"{label}: time_major=True has no Keras equivalent.")
    if module.learn_initial_carry:
        raise ValueError(f"{label}: learn_initial_carry=True has no Keras equivalent.")
    if kind == "lstm":
        if module.use_peepholes:
            raise ValueError(f"{label}: use_peepholes=True has no Keras equivalent.")
        if module.cell_activation is not module.output_activation:
            raise ValueError(
                f"{label}: cell_activation and output_activation differ; Keras has one "
                "`activation` for both."
            )
        act = keras_activation_name(module.cell_activation, setting="cell_activation", layer=label)
        cls = keras.layers.LSTM
    else:
        act = keras_activation_name(module.activation, setting="activation", layer=label)
        cls = keras.layers.GRU if kind == "gru" else keras.layers.SimpleRNN
    kwargs = {"activation": act, "return_sequences": True, "go_backwards": bool(module.reverse)}
    if kind != "simple_rnn":
        kwargs["recurrent_activation"] = "sigmoid"
    if name:
        kwargs["name"] = name
    layer = cls(module.features, **kwargs)
    in_features = int(np.shape(params["kernel"])[0])
    layer.build((None, None, in_features))
    layer.set_weights(gates.seqjax_to_keras(kind, {k: np.asarray(v) for k, v in params.items()}))
    return layer, in_features


def to_keras(module: nn.Module, variables: Variables) -> Any:
    """A built Keras layer (or ``Sequential``) holding the seqjax module's weights.

    Supported: ``LSTM`` (no peepholes, one activation), ``GRU`` (-> ``reset_after=True``),
    ``SimpleRNN``, ``Bidirectional`` of these, and ``StackedRNN`` of these (-> a
    ``keras.Sequential`` with ``Dropout`` between layers for ``dropout_rate``). Every Keras RNN
    layer is made with ``return_sequences=True``; a seqjax ``reverse=True`` layer becomes
    ``go_backwards=True``, whose Keras outputs are time-reversed (``outputs[:, ::-1]``).

    Raises ValueError naming the setting for ``time_major``, ``learn_initial_carry``,
    ``use_peepholes``, activations without a Keras name.

    Example:
        >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "jax")
        >>> import jax, numpy as np
        >>> from seqjax.nn import SimpleRNN
        >>> from seqjax.interop import to_keras
        >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
        >>> layer = SimpleRNN(4)
        >>> variables = layer.init(jax.random.key(0), x)
        >>> keras_layer = to_keras(layer, variables)
        >>> type(keras_layer).__name__, keras_layer.return_sequences
        ('SimpleRNN', True)
        >>> bool(np.allclose(keras_layer(x), layer.apply(variables, x)[1], atol=1e-5))
        True
    """
    keras = require_keras("seqjax.interop.to_keras")
    params = _params(variables)
    if isinstance(module, RecurrentLayer):
        return _keras_rnn(keras, module, params, None)[0]
    if isinstance(module, Bidirectional):
        return _keras_bidirectional(keras, module, params)[0]
    if isinstance(module, StackedRNN):
        layers, in_features = [], None
        for i, sub in enumerate(module.layers):
            sub_params = params[f"layers_{i}"]
            if isinstance(sub, Bidirectional):
                layer, f = _keras_bidirectional(keras, sub, sub_params)
            elif isinstance(sub, RecurrentLayer):
                layer, f = _keras_rnn(keras, sub, sub_params, None)
            else:
                raise TypeError(f"to_keras: StackedRNN layer {i} is a {type(sub).__name__}.")
            in_features = f if in_features is None else in_features
            if i and module.dropout_rate > 0:
                layers.append(keras.layers.Dropout(module.dropout_rate))
            layers.append(layer)
        model = keras.Sequential([keras.Input((None, in_features)), *layers])
        return model
    if is_recurrent(module):
        raise TypeError(f"to_keras: {type(module).__name__} is not supported.")
    raise TypeError(
        f"to_keras: {type(module).__name__} is not supported (LSTM, GRU, SimpleRNN, "
        "Bidirectional, StackedRNN)."
    )


def _keras_bidirectional(keras: Any, module: Bidirectional, params: dict[str, Any]):
    if module.merge_mode not in _MERGE_TO_KERAS:
        raise ValueError(f"to_keras: Bidirectional merge_mode={module.merge_mode!r}.")
    fwd_module = module.layer
    bwd_module = module.backward_layer or module.layer.clone(reverse=True, parent=None)
    fwd, in_features = _keras_rnn(keras, fwd_module, params["forward_rnn"], None)
    bwd, _ = _keras_rnn(keras, bwd_module, params["backward_rnn"], None)
    layer = keras.layers.Bidirectional(
        fwd, backward_layer=bwd, merge_mode=_MERGE_TO_KERAS[module.merge_mode]
    )
    layer.build((None, None, in_features))
    # Bidirectional rebuilds its forward layer from the config: set the weights again.
    layer.forward_layer.set_weights(fwd.get_weights())
    layer.backward_layer.set_weights(bwd.get_weights())
    return layer, in_features

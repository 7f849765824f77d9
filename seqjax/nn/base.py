"""``RecurrentLayer``: what SimpleRNN, LSTM and GRU share.

A subclass declares its parameters and its step (pure maths in the subclass's module); this class
checks the inputs, projects them for all time steps with one matmul before the loop, builds or
checks the carry, and runs :func:`seqjax.nn.recurrence.scan_recurrence`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from seqjax.nn import checks, cpu_kernels, fused
from seqjax.nn.initializers import Initializer
from seqjax.nn.recurrence import scan_recurrence

Array = jax.Array
Dtype = Any


class RecurrentLayer(nn.Module):
    """Base of the recurrent layers. Inputs ``[batch, time, features]``; returns ``(carry, outputs)``.

    Attributes:
      features: width ``H`` of the hidden state and of the outputs.
      reverse: run from the last step to the first (from each row's own last valid step when
        ``seq_lengths`` is given). Outputs are returned in the original time order.
      time_major: inputs and outputs are ``[time, batch, features]``.
      unroll: time steps per loop iteration of ``lax.scan``.
      remat: recompute each step in the backward pass (``jax.checkpoint``): memory O(T·B·H) for the
        hidden states only, at the cost of a second forward pass.
      learn_initial_carry: the initial carry is a learned parameter (``initial_hidden`` and, for the
        LSTM, ``initial_cell``, each ``[H]``, zeros at init) instead of zeros, used when no
        ``initial_carry`` is passed.
      dtype: computation dtype (e.g. ``jnp.bfloat16``); default: promoted from inputs and params.
      param_dtype: parameter dtype (float32 by default, also for bf16 computation).
      kernel_init: input kernel ``[F, G·H]`` initialiser (Glorot uniform).
      recurrent_kernel_init: recurrent kernel initialiser, applied per gate block ``[H, H]``
        (orthogonal).
      bias_init: bias initialiser (zeros).
      input_projection: "per_step" (default) computes ``x_t W + b`` inside the loop, one
        ``[B, F] x [F, G·H]`` matmul per step; "hoisted" computes it for all time steps as one
        matmul before the loop. The same function; per_step measured faster on XLA:CPU (the
        per-step slice of a hoisted projection fuses into the gate kernel and slows it), hoisting
        may win on accelerators (benchmarks/).
      implementation: "scan" (default): ``lax.scan`` of the step, on every platform, with every
        option and every order of differentiation. "cpu_kernel": on CPU, the whole time loop as
        one compiled custom call (``seqjax.nn.cpu_kernels``; measured 1.8-2.4x faster LSTM training
        steps, benchmarks/README.md), first-order reverse-mode gradients only, float32/float64,
        tanh activations, no peepholes/remat/hidden_offsets (an error names what is not
        covered); on GPU/TPU the same layer runs the scan.
    """

    features: int
    reverse: bool = False
    time_major: bool = False
    unroll: int = 1
    remat: bool = False
    learn_initial_carry: bool = False
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.glorot_uniform()
    recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
    bias_init: Initializer = nn.initializers.zeros_init()
    input_projection: str = "per_step"
    implementation: str = "scan"

    num_gates: ClassVar[int] = 1
    carry_fields: ClassVar[tuple[str, ...]] = ("hidden",)

    # ---- hooks for subclasses -------------------------------------------------------------
    def _declare_params(self, in_features: int) -> dict[str, Array]:
        """Declares and returns the cell parameters (``kernel``, ``recurrent_kernel``, ``bias``...)."""
        raise NotImplementedError  # abstract: every concrete layer overrides it

    def _step_fn(self) -> Callable[[dict[str, Array], Any, Array], Any]:
        """The pure step ``(params, carry, x_proj_t) -> carry`` for this configuration."""
        raise NotImplementedError  # abstract: every concrete layer overrides it

    def _make_carry(self, fields: dict[str, Array]) -> Any:
        """Builds a carry from ``{field: [B, H]}``; the hidden array itself by default."""
        return fields["hidden"]

    def _carry_fields(self, carry: Any) -> dict[str, Any]:
        """The inverse of ``_make_carry``; raises ValueError on a carry of the wrong structure."""
        if isinstance(carry, tuple):
            raise ValueError(
                f"{type(self).__name__}: initial_carry must be the hidden array [batch, features]; "
                f"got a {type(carry).__name__} of {len(carry)} elements."
            )
        return {"hidden": carry}

    @staticmethod
    def _get_hidden(carry: Any) -> Array:
        return carry

    @staticmethod
    def _set_hidden(carry: Any, hidden: Array) -> Any:
        return hidden

    def _input_bias(self, params: dict[str, Array]) -> Array:
        return params["bias"]

    # ---- shared machinery -----------------------------------------------------------------
    def initial_carry(self, batch_size: int, dtype: Dtype | None = None) -> Any:
        """The carry a sequence starts from: zeros, or the learned initial state if bound.

        Works on an unbound layer (``LSTM(8).initial_carry(4)``) unless ``learn_initial_carry``;
        then call it through ``layer.apply(variables, batch_size, method="initial_carry")``.
        """
        dtype = dtype or self.dtype or jnp.float32
        shape = (batch_size, self.features)
        fields = {}
        for field in self.carry_fields:
            name = f"initial_{field}"
            if self.learn_initial_carry:
                if self.scope is None or not self.has_variable("params", name):
                    raise ValueError(
                        f"{type(self).__name__}: learn_initial_carry=True needs the parameters; call "
                        f"layer.apply(variables, batch_size, method='initial_carry')."
                    )
                value: Array = self.get_variable("params", name)
                fields[field] = jnp.broadcast_to(value.astype(dtype), shape)
            else:
                fields[field] = jnp.zeros(shape, dtype)
        return self._make_carry(fields)

    @nn.compact
    def __call__(
        self,
        inputs: Array,
        initial_carry: Any = None,
        seq_lengths: Array | None = None,
        *,
        hidden_offsets: Array | None = None,
    ) -> tuple[Any, Array]:
        """Runs the layer over a batch of sequences.

        Args:
          inputs: ``[batch, time, features]`` (``[time, batch, features]`` if ``time_major``).
          initial_carry: the carry to continue from (e.g. the carry returned for the previous chunk
            of the same streams); zeros (or the learned initial state) if omitted.
          seq_lengths: ``[batch]`` integer lengths of right-padded rows. Outputs past a row's length
            are zero, the returned carry is the row's carry at its own last valid step, and padded
            inputs get no gradient.
          hidden_offsets: optional, shaped like the outputs; added to the hidden state after each step.
            For diagnostics: zeros change nothing and the gradient with respect to it is dL/dh_t.

        Returns:
          ``(carry, outputs)``: the final carry and the hidden states ``[batch, time, features]``
          (time-major if ``time_major``).
        """
        name = type(self).__name__
        batch, time, in_features = checks.check_inputs(
            inputs, time_major=self.time_major, layer=name
        )
        if self.has_variable("params", "kernel"):
            kernel_shape = jnp.shape(self.get_variable("params", "kernel"))
            checks.check_features(in_features, kernel_shape, layer=name)
        if seq_lengths is not None:
            seq_lengths = checks.check_seq_lengths(seq_lengths, batch=batch, time=time, layer=name)
        out_shape = (
            (time, batch, self.features) if self.time_major else (batch, time, self.features)
        )
        if hidden_offsets is not None:
            checks.check_time_aligned(
                hidden_offsets, expected=out_shape, layer=name, name="hidden_offsets"
            )

        params = self._declare_params(in_features)
        if self.learn_initial_carry:
            for field in self.carry_fields:
                self.param(
                    f"initial_{field}",
                    nn.initializers.zeros_init(),
                    (self.features,),
                    self.param_dtype,
                )
        inputs, *values = promote_dtype(inputs, *params.values(), dtype=self.dtype)
        params = dict(zip(params.keys(), values, strict=True))
        dtype = inputs.dtype

        if initial_carry is None:
            carry = self.initial_carry(batch, dtype)
        else:
            fields = self._carry_fields(initial_carry)
            for field, value in fields.items():
                checks.check_carry_array(
                    value,
                    batch=batch,
                    features=self.features,
                    layer=name,
                    field=f"initial_carry.{field}" if len(fields) > 1 else "initial_carry",
                )
            carry = self._make_carry({k: jnp.asarray(v, dtype) for k, v in fields.items()})

        if self.input_projection not in ("hoisted", "per_step"):
            raise ValueError(
                f"{name}: input_projection must be 'hoisted' or 'per_step'; "
                f"got {self.input_projection!r}."
            )
        offsets_tm = None
        if hidden_offsets is not None:
            offsets_tm = hidden_offsets.astype(dtype)
            if not self.time_major:
                offsets_tm = jnp.swapaxes(offsets_tm, 0, 1)

        xs_tm = inputs if self.time_major else jnp.swapaxes(inputs, 0, 1)
        if self.implementation not in ("scan", "cpu_kernel"):
            raise ValueError(
                f"{name}: implementation must be 'scan' or 'cpu_kernel'; "
                f"got {self.implementation!r}."
            )
        if self.implementation == "cpu_kernel":
            why = cpu_kernels.unsupported(self, dtype, hidden_offsets=offsets_tm is not None)
            if why:
                raise ValueError(
                    f"{name}: implementation='cpu_kernel' does not cover {', '.join(why)}; "
                    "use implementation='scan'."
                )
            carry, hs_tm = jax.lax.platform_dependent(
                params,
                carry,
                xs_tm,
                cpu=lambda p, c, x: cpu_kernels.run_layer(self, p, c, x, seq_lengths),
                default=lambda p, c, x: self._scan(p, c, x, seq_lengths, None),
            )
        else:
            carry, hs_tm = self._scan(params, carry, xs_tm, seq_lengths, offsets_tm)
        outputs = hs_tm if self.time_major else jnp.swapaxes(hs_tm, 0, 1)
        return carry, outputs

    def _scan(self, params, carry, xs_tm, seq_lengths, offsets_tm):
        """The time loop as a ``lax.scan`` (or the opt-in fused derivative): ``(carry, hs_tm)``."""
        spec = None
        if fused.is_enabled() and offsets_tm is None and not self.remat:
            spec = fused.cell_spec(self)
        step = self._step_fn()
        if spec is not None or self.input_projection == "hoisted":
            # All time steps at once: one [B*T, F] x [F, G*H] matmul, time-major.
            xs_tm = jnp.einsum("tbf,fg->tbg", xs_tm, params["kernel"]) + self._input_bias(params)
        else:
            # Inside the loop, one [B, F] x [F, G*H] matmul per step (as Flax's cells do). On
            # XLA:CPU this measured 1.4-1.8x faster than hoisting (benchmarks/NOTES.md).
            cell_step = step
            step = lambda p, c, x_t: cell_step(p, c, x_t @ p["kernel"] + self._input_bias(p))

        if spec is not None:  # cuDNN-style derivative; the same function (seqjax/nn/fused.py)
            carry, hs_tm = fused.fused_recurrence(
                spec,
                params,
                carry,
                xs_tm,
                seq_lengths=seq_lengths,
                reverse=self.reverse,
                unroll=self.unroll,
            )
            return carry, hs_tm

        return scan_recurrence(
            step,
            params,
            carry,
            xs_tm,
            get_hidden=self._get_hidden,
            set_hidden=self._set_hidden,
            seq_lengths=seq_lengths,
            reverse=self.reverse,
            hidden_offsets_tm=offsets_tm,
            unroll=self.unroll,
            remat=self.remat,
        )

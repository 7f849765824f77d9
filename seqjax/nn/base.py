"""``RecurrentLayer``: what SimpleRNN, LSTM and GRU share.

A subclass declares its parameters and its step (pure maths in the subclass's module) and names
its compiled kernel; this class checks the inputs, builds or checks the carry, and runs the time
loop on the engine that ``implementation`` selects: the scan
(:func:`seqjax.nn.recurrence.scan_recurrence`), the CPU kernel (``seqjax.nn.engines.cpu``) or
cuDNN (``seqjax.nn.engines.cuda``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from seqjax.nn import checks
from seqjax.nn.engines import cpu
from seqjax.nn.initializers import Initializer
from seqjax.nn.recurrence import scan_recurrence

Array = jax.Array
Dtype = Any
IMPLEMENTATIONS = ("auto", "scan", "cpu_kernel", "cudnn")


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
      implementation: which engine runs the time loop (the same function on each):

        * "auto" (default): on CPU the compiled kernel (``seqjax.nn.engines.cpu``, the whole
          loop as one custom call) when the configuration is covered and a C++ compiler is
          available; otherwise the scan, with one warning per reason and process (never an
          error; ``hidden_offsets``, the diagnostics' probe, runs the scan without one).
          Covered: SimpleRNN, GRU and LSTM with their tanh activations, float32/float64, no
          peepholes, ``remat`` or ``hidden_offsets``. On GPU, TPU and other platforms: the scan.
          The kernel is built and chosen when lowering for CPU, never while tracing, so exporting
          for another platform builds nothing. Forward and reverse mode work; derivatives of
          order two (grad of grad, Hessians) raise an error naming ``"scan"`` on CPU.
        * "scan": ``lax.scan`` of the step on every platform, with every option and every order
          of differentiation.
        * "cpu_kernel": the CPU kernel, or an error naming what it does not cover (or why it could
          not be built); the scan on other platforms.
        * "cudnn": the LSTM through cuDNN (``seqjax.nn.engines.cuda``), on CUDA only; an error
          elsewhere or for other layers. Opt-in until measured on a GPU.
      kernel: class attribute naming the layer's compiled kernel in ``seqjax.nn.engines.cpu``
        (``None``: none). A subclass that defines its own ``_step_fn`` has none unless it names
        one.
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
    implementation: str = "auto"

    num_gates: ClassVar[int] = 1
    carry_fields: ClassVar[tuple[str, ...]] = ("hidden",)
    kernel: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_step_fn" in cls.__dict__ and "kernel" not in cls.__dict__:
            cls.kernel = None  # its own step: the parent's kernel computes another function

    # ---- hooks for subclasses -------------------------------------------------------------
    def _declare_params(self, in_features: int) -> dict[str, Array]:
        """Declares and returns the cell parameters (``kernel``, ``recurrent_kernel``, ``bias``...)."""
        raise NotImplementedError  # abstract: every concrete layer overrides it

    def _step_fn(self) -> Callable[[dict[str, Array], Any, Array], Any]:
        """The pure step ``(params, carry, x_proj_t) -> carry`` for this configuration."""
        raise NotImplementedError  # abstract: every concrete layer overrides it

    def _kernel_limits(self) -> list[str]:
        """What in this configuration the layer's kernel does not compute (empty: covered)."""
        return []

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
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"{name}: implementation must be one of {', '.join(map(repr, IMPLEMENTATIONS))}; "
                f"got {self.implementation!r}."
            )
        run_scan = lambda p, c, x: self._scan(p, c, x, seq_lengths, offsets_tm)
        if self.implementation == "scan":
            carry, hs_tm = run_scan(params, carry, xs_tm)
        elif self.implementation == "cudnn":
            carry, hs_tm = self._cudnn(params, carry, xs_tm, seq_lengths, offsets_tm)
        else:
            carry, hs_tm = self._cpu_kernel_or_scan(
                params, carry, xs_tm, seq_lengths, dtype, offsets_tm, run_scan
            )
        outputs = hs_tm if self.time_major else jnp.swapaxes(hs_tm, 0, 1)
        return carry, outputs

    def _not_covered(self, dtype, *, hidden_offsets: bool) -> list[str]:
        """What the CPU kernel does not cover here (empty list: covered)."""
        name = type(self).__name__
        if self.kernel is None:
            return [f"{name} (it has its own step; kernels exist for SimpleRNN, GRU and LSTM)"]
        why = self._kernel_limits()
        if jnp.dtype(dtype) not in (jnp.float32, jnp.float64):
            why.append(f"dtype {jnp.dtype(dtype).name} (float32/float64 only)")
        if hidden_offsets:
            why.append("hidden_offsets")
        if self.remat:
            why.append("remat=True")
        return why

    def _cpu_kernel_or_scan(self, params, carry, xs_tm, seq_lengths, dtype, offsets_tm, run_scan):
        """implementation "auto" / "cpu_kernel": the kernel when lowering for CPU, else the scan."""
        name = type(self).__name__
        why = self._not_covered(dtype, hidden_offsets=offsets_tm is not None)
        if why and self.implementation == "cpu_kernel":
            raise ValueError(
                f"{name}: implementation='cpu_kernel' does not cover {', '.join(why)}; "
                "use implementation='scan' or 'auto'."
            )
        if why:
            # Elsewhere auto means the scan anyway; hidden_offsets is the diagnostics' own probe
            # (seqjax.diagnostics), not a choice the user could change, so it goes unsaid.
            if jax.default_backend() == "cpu":
                for reason in (r for r in why if r != "hidden_offsets"):
                    cpu.warn_once(
                        f"seqjax {name}: the CPU kernel does not cover {reason}; "
                        "implementation='auto' runs the scan."
                    )
            return run_scan(params, carry, xs_tm)
        strict = self.implementation == "cpu_kernel"
        return jax.lax.platform_dependent(
            params,
            carry,
            xs_tm,
            cpu=lambda p, c, x: cpu.run_layer(self, p, c, x, seq_lengths, strict=strict),
            default=run_scan,
        )

    def _cudnn(self, params, carry, xs_tm, seq_lengths, offsets_tm):
        """implementation "cudnn": the LSTM through cuDNN; the engine refuses what it does not
        cover and runs only where CUDA is present (a ValueError naming 'scan' or 'auto')."""
        try:
            from seqjax.nn.engines import cuda
        except ImportError as exc:
            raise ValueError(
                f"{type(self).__name__}: the cuDNN engine is unavailable ({exc}); "
                "use implementation='scan' or 'auto'."
            ) from exc
        return cuda.run_layer(
            self, params, carry, xs_tm, seq_lengths, hidden_offsets=offsets_tm is not None
        )

    def _scan(self, params, carry, xs_tm, seq_lengths, offsets_tm):
        """The time loop as a ``lax.scan``: ``(carry, hs_tm)``."""
        step = self._step_fn()
        if self.input_projection == "hoisted":
            # All time steps at once: one [B*T, F] x [F, G*H] matmul, time-major.
            xs_tm = jnp.einsum("tbf,fg->tbg", xs_tm, params["kernel"]) + params["bias"]
        else:
            # Inside the loop, one [B, F] x [F, G*H] matmul per step (as Flax's cells do). On
            # XLA:CPU this measured 1.4-1.8x faster than hoisting (benchmarks/NOTES.md).
            cell_step = step
            step = lambda p, c, x_t: cell_step(p, c, x_t @ p["kernel"] + p["bias"])

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

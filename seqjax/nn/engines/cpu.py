"""The CPU engine: the whole time loop of SimpleRNN, GRU and LSTM as one XLA FFI custom call.

XLA:CPU runs a ``lax.scan`` of small matmuls well below the machine's matmul speed: every step of
its while loop dispatches a dozen separate operations, and those per-operation costs, not the
arithmetic, are most of a training step (benchmarks/NOTES.md). Here the loop is C++
(``csrc/recurrence_cpu.cc``, built by :mod:`seqjax.nn.engines.cpu_build`): the forward keeps the
gate activations (and the LSTM cell states) when differentiated, and stores the weight gradients'
operand ``[h_{t-1}, x_t, 1]`` transposed as it goes; the backward returns the gradients of the
pre-activations ``dz``; everything that is not sequential stays in XLA as large matmuls after the
loop: ``[dU; dW; db]`` as one plain matmul of that operand with ``dz``, and ``dx``.

Each recurrence is three JAX primitives:

* ``seqjax_<cell>_fwd`` (with or without residuals) and ``seqjax_<cell>_bwd``. Their lowering on
  CPU builds and loads the kernel *at lowering time* (never while tracing) and emits the custom
  call; if no kernel can be had (no C++ compiler, unusable cache) it warns once with the reason
  and lowers the same maths as a ``lax.scan`` (:mod:`seqjax.nn.engines.portable`), which is also
  the lowering for every other platform. So exporting for CUDA/TPU builds nothing.
* ``seqjax_<cell>_tangent``: the linear tangent map. Its forward (forward mode: ``jax.jvp``,
  ``jacfwd``) is the JVP of the portable scan; its transpose (reverse mode) is the backward kernel
  plus the large matmuls. So ``jax.grad`` costs one forward and one backward custom call.
  Derivatives of order two or more raise an error that names ``implementation="scan"``.

``jax.vmap`` folds the mapped axis into the batch when the weights are not mapped (else it loops).
float32 and float64; tanh activations; no peepholes, ``hidden_offsets`` or ``remat`` (the layers
check this: ``RecurrentLayer.implementation``).

>>> import jax.numpy as jnp, numpy as np
>>> x = jnp.ones((4, 2, 3))                                  # [T, B, F]
>>> w, b, u = jnp.full((3, 5), 0.1), jnp.zeros(5), jnp.zeros((5, 5))
>>> hs, ht = simple_rnn(x, w, b, u, jnp.zeros((2, 5)), jnp.array([4, 2]))
>>> hs.shape, np.asarray(ht[:, 0], np.float64).round(4).tolist()
((4, 2, 5), [0.2913, 0.2913])
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import threading
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax._src import dispatch, sharding_impls
from jax._src.interpreters import ad, batching, mlir
from jax._src.lib.mlir import ir
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from seqjax.nn.engines import cpu_build, portable
from seqjax.nn.engines.cpu_build import KernelUnavailableError
from seqjax.nn.recurrence import reverse_padded

__all__ = [
    "KERNELS",
    "KernelUnavailableError",
    "covers_activation",
    "gru",
    "lstm",
    "portable_lowering",
    "run_layer",
    "simple_rnn",
    "warn_once",
]

SECOND_ORDER = (
    "seqjax CPU kernel: derivatives of order two or more (grad of grad, hessian, jacfwd of grad) "
    "are not implemented; use implementation='scan' for them."
)

_warned: set[str] = set()
_portable_only: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "seqjax_portable_only", default=False
)


@contextlib.contextmanager
def portable_lowering():
    """Within this context the kernels lower to their pure-JAX scan on CPU too: no custom call.

    For artifacts that must run without seqjax (``jax.export``: seqjax's custom calls are not
    among its stable targets); lowering happens inside the context, e.g. around
    ``jax.export.export(...)(...)`` or ``jax.jit(f).lower(...)``. The same function as the
    kernel (the portable scan is its tested reference).

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.nn import LSTM
    >>> layer, x = LSTM(2), jnp.ones((1, 3, 1))
    >>> v = layer.init(jax.random.key(0), x)
    >>> with portable_lowering():
    ...     text = jax.jit(lambda x: layer.apply(v, x)[1]).lower(x).as_text()
    >>> "Seqjax" in text, "stablehlo.while" in text
    (False, True)
    """
    token = _portable_only.set(True)
    try:
        yield
    finally:
        _portable_only.reset(token)


_warn_lock = threading.Lock()


def warn_once(message: str) -> None:
    """Emits ``message`` as a UserWarning the first time this process sees it.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn_once("example: said once"); warn_once("example: said once")
    >>> len(seen)
    1
    """
    with _warn_lock:
        if message in _warned:
            return
        _warned.add(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def covers_activation(fn) -> bool:
    """Whether the kernels compute ``fn`` (they hard-code tanh).

    >>> covers_activation(jnp.tanh), covers_activation(jax.nn.relu)
    (True, False)
    """
    return fn is jnp.tanh or fn is jax.nn.tanh or fn is jax.lax.tanh


@dataclasses.dataclass(frozen=True, eq=False)
class Kernel:
    """One recurrence's kernels. Batch axes name where each operand/result holds the batch
    (``None``: a weight); ``outputs`` are the forward results the layer returns (the others are
    residuals); ``bwd_aliases`` maps a backward operand to the result written over it;
    ``residual_widths`` are the residual buffers' last axes in multiples of ``H``, and each
    backward result has the shape of the backward operand ``bwd_result_like`` names (the operand
    it is the gradient of, or is written over)."""

    name: str
    targets: tuple[str, str]  # the FFI targets of the forward and backward kernels
    fwd_portable: Callable
    bwd_portable: Callable
    fwd_in_axes: tuple
    fwd_out_axes: tuple
    bwd_in_axes: tuple
    bwd_out_axes: tuple
    outputs: tuple[int, ...]
    bwd_aliases: dict
    residual_widths: tuple[int, ...]
    num_carries: int
    bwd_result_like: tuple[int, ...]
    transpose: Callable  # (kernel, primals, fwd_outs, cts, strict) -> cotangents of the floats

    @property
    def num_primals(self) -> int:
        return len(self.fwd_in_axes)

    def fwd_shapes(self, x, u, carry, residuals):
        """Result shapes: ``hs [T, B, H]``, residual buffers ``[T or 1, B, k*H]``, carries, the
        operand of the weight gradients ``[H + F + 1, T or 1, B]``
        (:func:`seqjax.nn.engines.portable.weight_operand`)."""
        t, bsz, f = x.shape
        h = u.shape[0]
        steps = t if residuals else 1
        residual = [(steps, bsz, k * h) for k in self.residual_widths]
        operand = (h + f + 1, steps, bsz)
        return [(t, bsz, h), *residual, *[carry.shape] * self.num_carries, operand]


# ---- the XLA matmuls around the backward kernel ---------------------------------------------
def _times_transposed(d, w):
    """``d [T, B, G] @ w.T`` for ``w [F, G]``: ``[T, B, F]``."""
    return jax.lax.dot_general(d, w, (((2,), (1,)), ((), ())))


def _weight_grads(at, dz, h):
    """``(dU [H, G], dW [F, G], db [G])`` from the forward's operand ``at [H + F + 1, T, B]``
    (columns ``[h_{t-1}, x_t, 1]``) and ``dz [T, B, G]``, the gradients of the pre-activations
    ``h_{t-1} U + x_t W + b``: ONE plain matmul over (t, b), no transposed copy and one pass over
    ``dz`` (benchmarks/NOTES.md, lever 10). No reshape to ``[T*B, .]``: with the batch sharded over
    devices that would gather it; this way each device sums its rows and one all-reduce adds the
    partial sums."""
    m = jax.lax.dot_general(at, dz, (((1, 2), (0, 1)), ((), ())))
    return m[:h], m[h:-1], m[-1]


def _srn_transpose(k, primals, outs, cts, strict):
    _, w, _, u, _, lengths = primals
    hs, _, at = outs
    dhs, dht = cts
    dz, dh0 = _BWD[k.name].bind(u, lengths, hs, dhs, dht, strict=strict)
    du, dw, db = _weight_grads(at, dz, u.shape[0])
    return _times_transposed(dz, w), dw, db, du, dh0


def _gru_transpose(k, primals, outs, cts, strict):
    _, w, _, u, _, h0, lengths = primals
    hs, res, _, at = outs
    dhs, dht = cts
    h = u.shape[0]
    # d4 = [dr, dz, dn_x, dn_h] over the residuals' buffer: no fresh [T, B, 3H] gradients. The
    # input part is blocks (0, 1, 2), the recurrent part (0, 1, 3); the weight gradients come from
    # one matmul against all four blocks, then the small [., 4H] results are sliced.
    d4, dh0 = _BWD[k.name].bind(u, h0, lengths, hs, res, dhs, dht, strict=strict)

    def recurrent_part(m):
        return jnp.concatenate([m[..., : 2 * h], m[..., 3 * h :]], axis=-1)

    w4 = jnp.concatenate([w, jnp.zeros((w.shape[0], h), w.dtype)], axis=1)  # dn_h gets no W
    du4, dw4, sums = _weight_grads(at, d4, h)
    dx = _times_transposed(d4, w4)
    return dx, dw4[:, : 3 * h], sums[: 3 * h], recurrent_part(du4), recurrent_part(sums), dh0


def _lstm_transpose(k, primals, outs, cts, strict):
    _, w, _, u, _, c0, lengths = primals
    _, cs, acts, _, _, at = outs
    dhs, dht, dct = cts
    # dz overwrites the activations in place (they are dead after this call).
    dz, dh0, dc0 = _BWD[k.name].bind(u, c0, lengths, cs, acts, dhs, dht, dct, strict=strict)
    du, dw, db = _weight_grads(at, dz, u.shape[0])
    return _times_transposed(dz, w), dw, db, du, dh0, dc0


KERNELS: dict[str, Kernel] = {
    "simple_rnn": Kernel(
        "simple_rnn",
        ("SeqjaxSrnFwd", "SeqjaxSrnBwd"),
        portable.srn_forward,
        portable.srn_backward,
        fwd_in_axes=(1, None, None, None, 0, 0),  # x, W, b, U, h0, lengths
        fwd_out_axes=(1, 0, 2),  # hs, hT, at
        bwd_in_axes=(None, 0, 1, 1, 0),  # U, lengths, hs, dhs, dhT
        bwd_out_axes=(1, 0),  # dz, dh0
        outputs=(0, 1),
        bwd_aliases={},
        residual_widths=(),
        num_carries=1,
        bwd_result_like=(2, 4),  # dz like hs, dh0 like dhT
        transpose=_srn_transpose,
    ),
    "gru": Kernel(
        "gru",
        ("SeqjaxGruFwd", "SeqjaxGruBwd"),
        portable.gru_forward,
        portable.gru_backward,
        fwd_in_axes=(1, None, None, None, None, 0, 0),  # x, W, b, U, rb, h0, lengths
        fwd_out_axes=(1, 1, 0, 2),  # hs, res, hT, at
        bwd_in_axes=(None, 0, 0, 1, 1, 1, 0),  # U, h0, lengths, hs, res, dhs, dhT
        bwd_out_axes=(1, 0),  # d4, dh0
        outputs=(0, 2),
        bwd_aliases={4: 0},
        residual_widths=(4,),  # [r, z, n, h U_n + rb_n] per step
        num_carries=1,
        bwd_result_like=(4, 1),  # d4 over res, dh0 like h0
        transpose=_gru_transpose,
    ),
    "lstm": Kernel(
        "lstm",
        ("SeqjaxLstmFwd", "SeqjaxLstmBwd"),
        portable.lstm_forward,
        portable.lstm_backward,
        fwd_in_axes=(1, None, None, None, 0, 0, 0),  # x, W, b, U, h0, c0, lengths
        fwd_out_axes=(1, 1, 1, 0, 0, 2),  # hs, cs, acts, hT, cT, at
        bwd_in_axes=(None, 0, 0, 1, 1, 1, 0, 0),  # U, c0, lengths, cs, acts, dhs, dhT, dcT
        bwd_out_axes=(1, 0, 0),  # dz, dh0, dc0
        outputs=(0, 3, 4),
        bwd_aliases={4: 0},
        residual_widths=(1, 4),  # cell states, gate activations
        num_carries=2,
        bwd_result_like=(4, 6, 1),  # dz over acts, dh0 like dhT, dc0 like c0
        transpose=_lstm_transpose,
    ),
}


# ---- abstract evaluation ------------------------------------------------------------------------
def _fwd_abstract(k, *avals, residuals, strict):
    del strict
    x, u, carry = avals[0], avals[3], avals[-2]
    return [jax.core.ShapedArray(s, x.dtype) for s in k.fwd_shapes(x, u, carry, residuals)]


def _bwd_abstract(k, *avals, strict):
    del strict
    return [jax.core.ShapedArray(avals[i].shape, avals[i].dtype) for i in k.bwd_result_like]


# ---- lowering: the kernel on CPU when it can be had, the portable scan everywhere else ---------
def _batch_spec(arg_shapes, in_axes):
    """How the operands' batch axis is sharded (the first operand that says), or None."""
    for shape, axis in zip(arg_shapes, in_axes, strict=True):
        spec = getattr(getattr(shape, "sharding", None), "spec", None)
        if axis is not None and spec is not None and len(spec) > axis and spec[axis] is not None:
            return spec[axis]
    return None


def _batch_shardings(mesh, axes, spec):
    return tuple(
        NamedSharding(mesh, P() if axis is None else P(*([None] * axis), spec)) for axis in axes
    )


def _batch_rule(in_axes, out_axes, mesh, operand_types, result_types):
    """Shardy rule: the batch dimensions share one factor, every other dimension is its own."""
    counter = iter(range(10**6))

    def dims(types, axes):
        return ", ".join(
            " ".join(
                "b" if d == axis else f"d{next(counter)}"
                for d in range(ir.RankedTensorType(t).rank)
            )
            for t, axis in zip(types, axes, strict=True)
        )

    return f"{dims(operand_types, in_axes)} -> {dims(result_types, out_axes)}"


@functools.cache
def _partitioned_kernel(target, aliases, abstract, params, in_axes, out_axes):
    """The FFI call as a ``custom_partitioning``: batch-sharded operands run per shard (weights
    replicated) instead of being gathered onto every device; one device: the plain call."""

    def call(*args):
        outs = abstract(*(jax.typeof(a) for a in args), **dict(params))
        shapes = [jax.ShapeDtypeStruct(o.shape, o.dtype) for o in outs]
        return tuple(jax.ffi.ffi_call(target, shapes, input_output_aliases=dict(aliases))(*args))

    wrapped = custom_partitioning(call)

    def infer(mesh, arg_shapes, result_shape):
        return _batch_shardings(mesh, out_axes, _batch_spec(arg_shapes, in_axes))

    def partition(mesh, arg_shapes, result_shape):
        spec = _batch_spec(arg_shapes, in_axes)
        outs = _batch_shardings(mesh, out_axes, spec)
        return mesh, call, outs, _batch_shardings(mesh, in_axes, spec)

    wrapped.def_partition(
        partition=partition,
        infer_sharding_from_operands=infer,
        sharding_rule=functools.partial(_batch_rule, in_axes, out_axes),
    )
    return wrapped


def _partitioning_needed(ctx) -> bool:
    """Whether the module is lowered for several devices that XLA's partitioner will split
    (under shard_map's manual axes, or on one device, the kernel is called as it is)."""
    context = ctx.module_context.axis_context
    if isinstance(context, sharding_impls.SPMDAxisContext):
        if set(context.manual_axes) == set(context.mesh.axis_names):
            return False
        devices = context.mesh._flat_devices_tuple
    else:
        devices = getattr(context, "device_assignment", None)
    return bool(devices) and len(devices) > 1


@functools.cache
def _plain_kernel(target, aliases):
    return jax.ffi.ffi_lowering(target, operand_output_aliases=dict(aliases) or None)


def _lowerings(prim, target, portable_fn, abstract, aliases, in_axes, out_axes):
    portable_rule = mlir.lower_fun(portable_fn, multiple_results=True)

    def cpu_rule(ctx, *args, strict, **params):
        if _portable_only.get():  # an artifact that must load without seqjax
            return portable_rule(ctx, *args, strict=strict, **params)
        try:
            if not strict and not cpu_build.faster_than_the_scan():
                # auto: the portable build (no AVX2/AVX-512) measured slower than the scan.
                warn_once(
                    f"seqjax: the CPU kernel's {cpu_build.selected_isa()!r} build is not faster "
                    "than the scan on this CPU; implementation='auto' runs the scan "
                    "(implementation='cpu_kernel' forces the kernel)"
                )
                return portable_rule(ctx, *args, strict=strict, **params)
            cpu_build.load()  # at lowering time, and only when lowering for CPU
        except KernelUnavailableError as exc:
            if strict:
                raise
            warn_once(f"seqjax: the CPU kernels are unavailable, the layers run the scan ({exc})")
            return portable_rule(ctx, *args, strict=strict, **params)
        if not _partitioning_needed(ctx):
            return _plain_kernel(target, tuple(sorted(aliases.items())))(ctx, *args)
        kernel = _partitioned_kernel(
            target,
            tuple(sorted(aliases.items())),
            abstract,
            tuple(sorted({**params, "strict": strict}.items())),
            in_axes,
            out_axes,
        )
        return mlir.lower_fun(lambda *a: list(kernel(*a)), multiple_results=True)(ctx, *args)

    mlir.register_lowering(prim, portable_rule)
    mlir.register_lowering(prim, cpu_rule, platform="cpu")


# ---- vmap: fold the mapped axis into the batch, or loop when a weight is mapped ----------------
def _fold_batching(prim, in_axes, out_axes):
    def rule(args, dims, **params):
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
        if any(d is not None and ax is None for d, ax in zip(dims, in_axes, strict=True)):
            moved = [
                jnp.broadcast_to(a, (size, *a.shape)) if d is None else jnp.moveaxis(a, d, 0)
                for a, d in zip(args, dims, strict=True)
            ]
            outs = jax.lax.map(lambda xs: prim.bind(*xs, **params), moved)
            return outs, [0] * len(outs)
        folded = []
        for a, d, ax in zip(args, dims, in_axes, strict=True):
            if ax is None:
                folded.append(a)
                continue
            a = jnp.moveaxis(a, d, ax) if d is not None else jnp.expand_dims(a, ax)
            a = jnp.broadcast_to(a, (*a.shape[:ax], size, *a.shape[ax + 1 :]))
            folded.append(a.reshape(*a.shape[:ax], -1, *a.shape[ax + 2 :]))
        outs = prim.bind(*folded, **params)
        unfolded = [
            o.reshape(*o.shape[:ax], size, -1, *o.shape[ax + 1 :])
            for o, ax in zip(outs, out_axes, strict=True)
        ]
        return unfolded, list(out_axes)

    batching.primitive_batchers[prim] = rule


# ---- differentiation ------------------------------------------------------------------------------
def _second_order(*_, **__):
    raise NotImplementedError(SECOND_ORDER)


def _zero_tangent(x):
    return ad.Zero(jax.typeof(x).to_tangent_aval())


def _fwd_jvp(k, primals, tangents, *, residuals, strict):
    if residuals:  # differentiating the derivative itself
        _second_order()
    outs = _FWD[k.name].bind(*primals, residuals=True, strict=strict)
    lin = [ad.instantiate_zeros(t) for t in tangents[:-1]]  # lengths (last) has no tangent
    t_outs = _TAN[k.name].bind(*primals, *outs, *lin, strict=strict)
    primal_out, tangent_out = list(outs), []
    x, u, carry = primals[0], primals[3], primals[-2]
    scratch = k.fwd_shapes(x, u, carry, residuals=False)
    for i, o in enumerate(outs):
        if i in k.outputs:
            tangent_out.append(t_outs[k.outputs.index(i)])
        else:  # a residual: the primal without residuals has its one-step scratch buffer there
            primal_out[i] = jnp.zeros(scratch[i], o.dtype)
            tangent_out.append(_zero_tangent(primal_out[i]))
    return primal_out, tangent_out


def _split_tangent_args(k, args):
    n, m = k.num_primals, len(k.fwd_out_axes)
    return args[:n], args[n : n + m], args[n + m :]


def _tangent_impl(k, *args, strict):
    """Forward mode: the JVP of the portable scan (forward mode need not be fast)."""
    del strict
    primals, _, tangents = _split_tangent_args(k, args)
    lengths = primals[-1]

    def run(*floats):
        outs = k.fwd_portable(*floats, lengths, residuals=False)
        return tuple(outs[i] for i in k.outputs)

    return list(jax.jvp(run, tuple(primals[:-1]), tuple(tangents))[1])


def _tangent_abstract(k, *avals, strict):
    del strict
    _, outs, _ = _split_tangent_args(k, avals)
    return [outs[i] for i in k.outputs]


def _tangent_transpose(k, cts, *args, strict):
    """Reverse mode: the backward kernel and the matmuls after it."""
    primals, outs, lin = _split_tangent_args(k, args)
    cts = [
        jnp.zeros(outs[i].shape, outs[i].dtype) if type(ct) is ad.Zero else ct
        for ct, i in zip(cts, k.outputs, strict=True)
    ]
    grads = k.transpose(k, primals, outs, cts, strict)
    return [None] * (len(primals) + len(outs)) + [
        g if ad.is_undefined_primal(t) else None for g, t in zip(grads, lin, strict=True)
    ]


def _tangent_batching(k, args, dims, *, strict):
    outs = jax.vmap(functools.partial(_tangent_impl, k, strict=strict), in_axes=tuple(dims))(*args)
    return outs, [0] * len(outs)


# ---- the primitives -----------------------------------------------------------------------------
_FWD: dict[str, Primitive] = {}
_BWD: dict[str, Primitive] = {}
_TAN: dict[str, Primitive] = {}


def _define(k: Kernel) -> None:
    fwd, bwd, tan = (Primitive(f"seqjax_{k.name}_{part}") for part in ("fwd", "bwd", "tangent"))
    for p in (fwd, bwd, tan):
        p.multiple_results = True
        p.def_impl(functools.partial(dispatch.apply_primitive, p))
    tan.def_abstract_eval(functools.partial(_tangent_abstract, k))
    fwd_target, bwd_target = k.targets
    fwd_abstract = functools.partial(_fwd_abstract, k)
    bwd_abstract = functools.partial(_bwd_abstract, k)
    fwd.def_abstract_eval(fwd_abstract)
    bwd.def_abstract_eval(bwd_abstract)
    _lowerings(fwd, fwd_target, k.fwd_portable, fwd_abstract, {}, k.fwd_in_axes, k.fwd_out_axes)
    _lowerings(
        bwd, bwd_target, k.bwd_portable, bwd_abstract, k.bwd_aliases, k.bwd_in_axes, k.bwd_out_axes
    )
    mlir.register_lowering(
        tan, mlir.lower_fun(functools.partial(_tangent_impl, k), multiple_results=True)
    )
    _fold_batching(fwd, k.fwd_in_axes, k.fwd_out_axes)
    _fold_batching(bwd, k.bwd_in_axes, k.bwd_out_axes)
    batching.primitive_batchers[tan] = functools.partial(_tangent_batching, k)
    ad.primitive_jvps[fwd] = functools.partial(_fwd_jvp, k)
    ad.primitive_jvps[bwd] = _second_order
    ad.primitive_jvps[tan] = _second_order
    ad.primitive_transposes[tan] = functools.partial(_tangent_transpose, k)
    # The kernels' CPU lowering partitions them over the devices (custom_partitioning), which
    # needs the device assignment while lowering.
    dispatch.prim_requires_devices_during_lowering.update((fwd, bwd))
    _FWD[k.name], _BWD[k.name], _TAN[k.name] = fwd, bwd, tan


for _kernel in KERNELS.values():
    _define(_kernel)


def forward(name: str, *args, residuals: bool, strict: bool = False):
    """The forward primitive of kernel ``name`` (all its results, residual buffers included):
    the operands and results of ``KERNELS[name].fwd_portable``.

    >>> x, w, b, u = jnp.ones((4, 2, 3)), jnp.ones((3, 20)), jnp.zeros(20), jnp.zeros((5, 20))
    >>> h0 = c0 = jnp.zeros((2, 5))
    >>> outs = forward("lstm", x, w, b, u, h0, c0, jnp.array([4, 1]), residuals=True)
    >>> [o.shape for o in outs]  # hs, cs, acts, hT, cT, at ([h_{t-1}, x_t, 1] per column)
    [(4, 2, 5), (4, 2, 5), (4, 2, 20), (2, 5), (2, 5), (9, 4, 2)]
    """
    return _FWD[name].bind(*args, residuals=residuals, strict=strict)


def backward(name: str, *args, strict: bool = False):
    """The backward primitive of kernel ``name``: the gradients of the pre-activations (the
    operands and results of ``KERNELS[name].bwd_portable``).

    >>> import numpy as np
    >>> hs, ones = jnp.full((3, 2, 4), 0.5), jnp.ones((3, 2, 4))
    >>> dz, dh0 = backward("simple_rnn", jnp.zeros((4, 4)), jnp.array([3, 0]), hs, ones, ones[0])
    >>> np.asarray(dz[:, :, 0], np.float64).tolist()  # row 1 has length 0: no gradient
    [[0.75, 0.0], [0.75, 0.0], [1.5, 0.0]]
    """
    return _BWD[name].bind(*args, strict=strict)


# ---- the recurrences ------------------------------------------------------------------------------
def simple_rnn(x, w, b, u, h0, lengths, *, strict=False):
    """``x [T, B, F]``, ``w [F, H]``, ``b [H]``, ``u [H, H]``, ``h0 [B, H]``, ``lengths [B]`` ->
    ``(hs [T, B, H], hT)``. ``strict``: raise KernelUnavailableError instead of running the scan."""
    hs, ht, _ = forward("simple_rnn", x, w, b, u, h0, lengths, residuals=False, strict=strict)
    return hs, ht


def gru(x, w, b, u, rb, h0, lengths, *, strict=False):
    """``x [T, B, F]``, ``w [F, 3H]``, ``b [3H]``, ``u [H, 3H]``, recurrent bias ``rb [3H]``,
    ``h0 [B, H]`` -> ``(hs [T, B, H], hT)``.

    >>> import numpy as np
    >>> x, w, u = jnp.ones((4, 2, 3)), jnp.zeros((3, 6)), jnp.zeros((2, 6))
    >>> hs, ht = gru(x, w, jnp.zeros(6), u, jnp.zeros(6), jnp.ones((2, 2)), jnp.array([4, 2]))
    >>> np.asarray(ht, np.float64).round(4).tolist()  # z = 1/2, n = 0: h halves each step
    [[0.0625, 0.0625], [0.25, 0.25]]
    """
    hs, _, ht, _ = forward("gru", x, w, b, u, rb, h0, lengths, residuals=False, strict=strict)
    return hs, ht


def lstm(x, w, b, u, h0, c0, lengths, *, strict=False):
    """``x [T, B, F]``, ``w [F, 4H]``, ``b [4H]``, ``u [H, 4H]``, ``h0, c0 [B, H]`` ->
    ``(hs [T, B, H], hT, cT)``.

    >>> import numpy as np
    >>> x, w, u = jnp.ones((4, 2, 3)), jnp.zeros((3, 8)), jnp.zeros((2, 8))
    >>> h0, c0 = jnp.zeros((2, 2)), jnp.ones((2, 2))
    >>> hs, ht, ct = lstm(x, w, jnp.zeros(8), u, h0, c0, jnp.array([4, 1]))
    >>> np.asarray(ct[:, 0], np.float64).tolist()  # f = 1/2, g = 0: c halves each valid step
    [0.0625, 0.5]
    """
    hs, _, _, ht, ct, _ = forward(
        "lstm", x, w, b, u, h0, c0, lengths, residuals=False, strict=strict
    )
    return hs, ht, ct


def run_layer(layer, params, carry, xs_tm, seq_lengths, *, strict=False):
    """The layer's recurrence through its kernel (``layer.kernel`` names it):
    ``xs_tm [T, B, F]`` -> ``(carry, hs [T, B, H])``, the contract of
    :func:`seqjax.nn.recurrence.scan_recurrence` (``reverse`` from the layer)."""
    time, batch = xs_tm.shape[:2]
    if seq_lengths is None:
        lengths = jnp.full((batch,), time, jnp.int32)
    else:
        lengths = seq_lengths.astype(jnp.int32)
    if layer.reverse:
        xs_tm = xs_tm[::-1] if seq_lengths is None else reverse_padded(xs_tm, seq_lengths)
    w, b, u = params["kernel"], params["bias"], params["recurrent_kernel"]
    fields = layer._carry_fields(carry)
    if layer.kernel == "lstm":
        hs, h, c = lstm(xs_tm, w, b, u, fields["hidden"], fields["cell"], lengths, strict=strict)
        new = {"cell": c, "hidden": h}
    elif layer.kernel == "gru":
        rb = params["recurrent_bias"]
        hs, h = gru(xs_tm, w, b, u, rb, fields["hidden"], lengths, strict=strict)
        new = {"hidden": h}
    elif layer.kernel == "simple_rnn":
        hs, h = simple_rnn(xs_tm, w, b, u, fields["hidden"], lengths, strict=strict)
        new = {"hidden": h}
    else:
        raise ValueError(f"{type(layer).__name__} names no CPU kernel (kernel={layer.kernel!r}).")
    if layer.reverse:
        hs = hs[::-1] if seq_lengths is None else reverse_padded(hs, seq_lengths)
    return layer._make_carry(new), hs

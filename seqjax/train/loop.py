"""``fit``: the training loop, flat, top to bottom.

Per epoch: reset the carry (stateful) -> train steps over the epoch's batches, the carry flowing
from batch to batch -> a validation pass -> early stopping -> a checkpoint. Then one test pass.

The same loop trains models without carry (image classifiers: carry ``None``), frozen parameters
(``frozen=``: no gradient, no optimiser state, bit-identical after training), from given
variables (``variables=``: a pretrained backbone, a previous phase), and on a step budget
(``num_steps=`` with :class:`~seqjax.train.FreshBatches`: a new synthetic batch per step, an
"epoch" being the evaluation interval).

**How the carry enters evaluation** (``eval_carry``, stateful mode only):

- ``"zeros"`` (default): each validation pass, and the test pass, starts its streams from a zero
  carry and threads it through its own batches. Right whenever row ``b`` of the evaluation split is
  *not* the chronological continuation of training row ``b``: a different set of series, or one
  series cut into ``B`` side-by-side streams (only the last stream runs on into validation). The
  metric is then comparable from epoch to epoch and independent of the training order.
- ``"continue"``: validation starts from the carry at the end of the training epoch and the test
  pass from the carry at the end of the (last) validation pass. Right when every row of the
  validation split continues the same row of training in time (e.g. ``B`` series, each split
  chronologically into train / val / test): the model is evaluated warm, as it would be used.
  The splits must then have the training batch size.

Without ``stateful``, every batch (train or eval) starts from zeros and shuffling is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from seqjax.train.batches import (
    BatchSource,
    batch_size,
    check_batch,
    epoch_batches,
    first_batch,
    num_batches,
)
from seqjax.train.carry import Carry, zero_carry
from seqjax.train.checkpoint import Checkpointer, check_finite
from seqjax.train.metrics_writer import Averager, MetricsWriter
from seqjax.train.sharding import batch_sharding, replicate, replicated, shard_batch, shard_carry
from seqjax.train.state import TrainState, create_train_state
from seqjax.train.steps import LossSpec, _frozen_flags, eval_step, train_step

EVAL_CARRY = ("zeros", "continue")
_NO_CARRY = np.zeros((), np.float32)  # the carry slot of a checkpoint that holds none


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the final :class:`TrainState`.
      carry: the training streams' carry after the last training step.
      history: one record per epoch, ``{"epoch", "step", "train": {...}, "val": {...} | None}``.
      test: the test metrics, or None without ``test_data``.
      best_epoch: the epoch with the best validation ``monitor`` (None without ``val_data``).
      stopped_early: whether early stopping (or ``stop_at``) ended the run.
      best_state: with ``keep_best``, the state after the best validation epoch (else None).
    """

    state: TrainState
    carry: Carry
    history: list[dict[str, Any]]
    test: dict[str, float] | None
    best_epoch: int | None
    stopped_early: bool
    best_state: TrainState | None = None


@functools.lru_cache(maxsize=16)
def _selective(optimizer: optax.GradientTransformation, frozen_key: tuple) -> Any:
    """``optimizer`` on the trainable leaves only (cached: the same object for a resumed run)."""
    treedef, flags = frozen_key
    mask = jax.tree.unflatten(treedef, flags)
    return optax.transforms.selective_transform(optimizer, freeze_mask=mask)


def _frozen_key(frozen: Any, params: Any) -> tuple | None:
    """A hashable ``(treedef, flags)`` of a frozen mask (or of ``frozen(params)``), or None."""
    if frozen is None:
        return None
    mask = frozen(params) if callable(frozen) else frozen
    return jax.tree.structure(mask), _frozen_flags(mask, params)  # the latter checks the mask


@functools.lru_cache(maxsize=16)
def _jitted_steps(
    loss: LossSpec,
    metrics: tuple,
    truncation: int | None,
    mesh: Any,
    frozen_key: tuple | None = None,
    clip_norm: float | None = None,
) -> tuple[Callable, Callable]:
    """The jitted train step (state and carry donated) and eval step for these options; cached,
    so fitting the same model and optimiser again (a resumed run) reuses the compilation."""
    options: dict[str, Any] = dict(loss=loss, metrics=_metric_spec(metrics))
    frozen = None if frozen_key is None else jax.tree.unflatten(*frozen_key)
    shardings: dict[str, Any] = {}  # jax.jit's out_shardings, when there is a mesh
    if mesh is not None:
        shardings["out_shardings"] = (replicated(mesh), batch_sharding(mesh), replicated(mesh))
    train = jax.jit(
        functools.partial(
            train_step, truncation=truncation, frozen=frozen, clip_norm=clip_norm, **options
        ),
        donate_argnums=(0, 1),
        **shardings,
    )
    return train, jax.jit(functools.partial(eval_step, **options))


def _metric_key(metrics: Sequence[str] | Mapping[str, Callable]) -> tuple:
    """Metric names, or ``(name, function)`` pairs, as a hashable tuple."""
    if isinstance(metrics, Mapping):
        return tuple(("fn", name, fn) for name, fn in metrics.items())
    return tuple(metrics)


def _metric_spec(key: tuple) -> Sequence[str] | dict[str, Callable]:
    if key and isinstance(key[0], tuple):
        return {name: fn for _, name, fn in key}
    return key


def _finite_or_none(metrics: Mapping[str, float] | None) -> dict[str, float | None] | None:
    if metrics is None:
        return None
    return {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}


def _evaluate(
    evaluate: Callable,
    state: TrainState,
    data: BatchSource,
    *,
    stateful: bool,
    carry: Carry | None,
    fresh: Callable[[int], Carry],
    put: Callable,
) -> tuple[dict[str, float], Carry | None]:
    """One pass over ``data``. Stateful: threads ``carry`` (zeros of the first batch's size if
    None) through the batches; otherwise a fresh carry per batch. Returns the averaged metrics
    and the carry after the last batch (None without ``stateful``)."""
    averager = Averager()
    for batch in epoch_batches(data, 0):
        check_batch(batch)
        rows = batch_size(batch) * jax.process_count()
        batch_carry = carry if stateful and carry is not None else fresh(rows)
        batch_carry, metrics = evaluate(state, batch_carry, put(batch))
        averager.add(jax.device_get(metrics))
        carry = batch_carry if stateful else None
    return averager.result(), carry


def _fetch_checked(
    pending: list[tuple[int, int, Any]], *, epoch: int, last_good: int | None
) -> list[dict[str, float]]:
    """Fetches the pending step metrics and applies the NaN guard to each step in order."""
    fetched = []
    for step, index, metrics in jax.device_get(pending):
        check_finite(
            {k: metrics[k] for k in ("loss", "grad_norm")},
            step=step,
            where=f"epoch {epoch}, batch {index}",
            last_good=last_good,
        )
        fetched.append(metrics)
    return fetched


def fit(
    model: nn.Module,
    train_data: BatchSource,
    *,
    optimizer: optax.GradientTransformation,
    workdir: str | os.PathLike,
    num_epochs: int | None = None,
    val_data: BatchSource | None = None,
    test_data: BatchSource | None = None,
    loss: LossSpec = "mse",
    metrics: Sequence[str] | Mapping[str, Callable] = (),
    stateful: bool = True,
    shuffle: bool = False,
    eval_carry: str = "zeros",
    truncation: int | None = None,
    clip_norm: float | None = None,
    early_stopping_patience: int | None = None,
    monitor: str = "loss",
    monitor_mode: str = "min",
    seed: int = 0,
    checkpoint_every: int | None = None,
    max_to_keep: int = 3,
    log_every: int = 50,
    max_steps: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    num_steps: int | None = None,
    variables: Mapping[str, Any] | None = None,
    frozen: Any = None,
    stop_at: float | None = None,
    keep_best: bool = False,
) -> FitResult:
    """Trains ``model`` and resumes automatically from the newest checkpoint in ``workdir``.

    >>> import tempfile, numpy as np, optax
    >>> from seqjax.nn import GRU
    >>> from seqjax.train import FreshBatches, SequenceModel
    >>> def batch(step):                                 # a new batch per step: y = sum of x
    ...     x = np.random.default_rng(step).normal(size=(8, 4, 1)).astype(np.float32)
    ...     return {"inputs": x, "targets": x.sum(1)}
    >>> result = fit(SequenceModel(GRU(8), 1, return_sequences=False), FreshBatches(batch, 10),
    ...              optimizer=optax.adam(1e-2), num_steps=30, stateful=False,
    ...              val_data=[batch(99)], workdir=tempfile.mkdtemp(), progress=False)
    >>> [h["step"] for h in result.history], result.history[-1]["val"]["count"]
    ([10, 20, 30], 8.0)

    Args:
      model: a module following the model protocol of :mod:`seqjax.train.models`.
      train_data, val_data, test_data: data sources (see :mod:`seqjax.train.batches`); in stateful
        mode batch ``i + 1`` continues batch ``i`` row by row and every batch has ``B`` rows.
      optimizer: an optax transformation; learning-rate schedules go into it
        (``optax.adam(optax.cosine_decay_schedule(...))``).
      workdir: checkpoints (``workdir/checkpoints``), ``metrics.jsonl``, ``tensorboard/``. A run
        interrupted and started again with the same arguments continues exactly where the latest
        checkpoint left it, including the carry in the middle of an epoch.
      num_epochs: epochs in total (including those of a resumed run); or give ``num_steps``.
      loss, metrics: see :func:`seqjax.train.train_step` (metrics: names or
        ``{name: per-example function}``).
      stateful: thread the carry across the batches of an epoch (reset to zeros at each epoch's
        start and per row by ``batch["reset"]``); False: a fresh carry for every batch.
      shuffle: shuffle the training rows every epoch (only without ``stateful``).
      eval_carry: "zeros" or "continue": how the carry enters evaluation (module docstring).
      truncation: ``k2``, see :func:`seqjax.train.train_step`.
      clip_norm: clip the trainable gradients by their global norm before ``optimizer``.
      early_stopping_patience: stop after this many epochs without a better validation
        ``monitor`` (None: never).
      monitor, monitor_mode: the validation metric for early stopping and ``best_epoch``, and
        whether "min" or "max" is better.
      seed: parameters, dropout and shuffling all derive from it.
      checkpoint_every: also save every this many steps (besides every epoch's end).
      max_to_keep: checkpoints kept.
      log_every: fetch the step metrics, check them, log them every this many steps.
      max_steps: stop after this many steps in total (a checkpoint is saved; a later call with a
        larger budget continues). The test pass waits for the run to finish.
      mesh: data parallelism over this mesh (:func:`seqjax.train.make_mesh`); None: one device.
      progress: show a tqdm bar with the running loss.
      tensorboard: also write TensorBoard event files.
      num_steps: a step budget instead of ``num_epochs``: ``num_steps / steps_per_epoch`` epochs
        (it must divide evenly), e.g. with :class:`~seqjax.train.FreshBatches`, whose
        ``steps_per_epoch`` is then the evaluation interval.
      variables: start from these ``{"params", "batch_stats"?}`` (a pretrained backbone with a
        new head, the result of a previous phase) instead of initialising the model; a fresh
        optimiser state.
      frozen: parameters that do not train: a boolean pytree like the parameters (``True`` =
        frozen, e.g. :func:`seqjax.transfer.mask_params`) or a function of the parameters
        returning one. No gradient is computed for them, the optimiser holds no state for them
        (``optax.transforms.selective_transform``), clipping and ``grad_norm`` ignore them, and
        they come back bit-identical.
      stop_at: stop once the validation ``monitor`` reaches this value (a solved task).
      keep_best: also checkpoint the state of the best validation epoch (``workdir/best``) and
        return it as ``FitResult.best_state``.

    Returns:
      A :class:`FitResult`.

    Raises:
      NonFiniteError: a loss or gradient norm became NaN or infinite; it names the step, and the
        latest checkpoint is the last good one.
    """
    if stateful and shuffle:
        raise ValueError("shuffle=True would break the streams of stateful training.")
    if (num_epochs is None) == (num_steps is None):
        raise ValueError("give exactly one of num_epochs and num_steps.")
    if num_epochs is None:
        assert num_steps is not None  # exactly one is given (checked above)
        per_epoch = num_batches(train_data)
        if per_epoch is None or num_steps % per_epoch:
            raise ValueError(
                f"num_steps={num_steps} must be a multiple of the batches per epoch ({per_epoch}"
                "; a plain callable source has none: use FreshBatches)."
            )
        num_epochs = num_steps // per_epoch
    if keep_best and val_data is None:
        raise ValueError("keep_best=True needs val_data.")
    if eval_carry not in EVAL_CARRY:
        raise ValueError(f"eval_carry must be one of {EVAL_CARRY}; got {eval_carry!r}.")
    if monitor_mode not in ("min", "max"):
        raise ValueError(f"monitor_mode must be 'min' or 'max'; got {monitor_mode!r}.")
    if monitor not in ("loss", *metrics):
        raise ValueError(f"monitor {monitor!r} is not among the metrics {('loss', *metrics)}.")
    workdir = Path(workdir)

    # Parameters and the carry for the first batch's size; sharded over the mesh if there is one.
    example = first_batch(train_data)
    rows = batch_size(example) * jax.process_count()
    frozen_key = None
    if frozen is not None:
        params = (
            variables["params"]
            if variables is not None
            else jax.eval_shape(
                lambda: create_train_state(model, optax.identity(), example, seed=seed).params
            )
        )
        frozen_key = _frozen_key(frozen, params)
    tx = optimizer if frozen_key is None else _selective(optimizer, frozen_key)
    if variables is not None:  # copies: the train step donates the state's buffers
        variables = jax.tree.map(lambda a: jnp.array(a, copy=True), dict(variables))
    state = create_train_state(model, tx, example, seed=seed, variables=variables)
    if mesh is None:
        # Committed to one device, like the arrays a checkpoint restores: one compilation.
        device = jax.local_devices()[0]
        fresh = lambda size: jax.device_put(zero_carry(model, size), device)
        put = lambda batch: batch
        state = jax.device_put(state, device)
    else:
        fresh = lambda size: shard_carry(zero_carry(model, size), mesh)
        put = lambda batch: shard_batch(batch, mesh)
        state = replicate(state, mesh)
    carry = fresh(rows)

    # Resume from the newest checkpoint in the workdir, if any.
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=max_to_keep)
    loop: dict[str, Any] = {
        "epoch": 0,
        "batch": 0,
        "epoch_metrics": None,
        "history": [],
        "best": None,
        "best_epoch": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    last_good = checkpointer.latest_step()
    if last_good is not None:
        state, carry, loop = checkpointer.restore(state, carry, last_good)
    writer = MetricsWriter(workdir, resume_step=last_good, tensorboard=tensorboard)
    best_checkpointer = Checkpointer(workdir / "best", max_to_keep=1) if keep_best else None

    train, evaluate = _jitted_steps(
        loss, _metric_key(metrics), truncation, mesh, frozen_key, clip_norm
    )
    rng = state.base_key()
    step = int(jax.device_get(state.step))
    per_epoch = num_batches(train_data)
    val_carry = None
    try:
        for epoch in range(loop["epoch"], num_epochs):
            if loop["stopped_early"] or (max_steps is not None and step >= max_steps):
                break
            start = loop["batch"] if epoch == loop["epoch"] else 0
            averager = Averager(loop["epoch_metrics"] if start else None)
            if start == 0:
                carry = fresh(rows)  # every epoch starts its streams from zeros
            bar = tqdm(
                total=per_epoch,
                initial=start,
                disable=not progress,
                desc=f"epoch {epoch + 1}/{num_epochs}",
                leave=False,
            )
            pending = []  # (step, batch index, metrics on device): fetched late
            batch_index = start
            for batch_index, batch in enumerate(
                epoch_batches(train_data, epoch, shuffle=shuffle, seed=seed, start=start), start
            ):
                if max_steps is not None and step >= max_steps:
                    break
                check_batch(batch)
                if not stateful:
                    carry = fresh(batch_size(batch) * jax.process_count())
                state, carry, step_metrics = train(state, carry, put(batch), rng)
                pending.append((step, batch_index, step_metrics))
                step += 1
                bar.update(1)
                save_now = bool(checkpoint_every and step % checkpoint_every == 0)
                last_of_epoch = per_epoch is not None and batch_index + 1 == per_epoch
                if save_now or step % log_every == 0 or last_of_epoch:
                    # Fetch, check (NaN guard: before any save), average and log the pending steps.
                    window = Averager()
                    for fetched in _fetch_checked(pending, epoch=epoch, last_good=last_good):
                        averager.add(fetched)
                        window.add(fetched)
                    pending = []
                    writer.write(step, "train", window.result(), epoch=epoch)
                    bar.set_postfix(loss=f"{averager.result()['loss']:.4g}")
                if save_now and not last_of_epoch:  # the epoch's end is saved after validation
                    position: dict[str, Any] = {"epoch": epoch, "batch": batch_index + 1}
                    position["epoch_metrics"] = averager.state()
                    checkpointer.save(step, state, carry, {**loop, **position})
                    last_good = step
            else:
                batch_index = None  # the epoch ran to its end
            bar.close()
            for fetched in _fetch_checked(pending, epoch=epoch, last_good=last_good):
                averager.add(fetched)
            if batch_index is not None:  # max_steps reached in the middle of the epoch
                position = {"epoch": epoch, "batch": batch_index, "epoch_metrics": averager.state()}
                checkpointer.save(step, state, carry, {**loop, **position})
                last_good = step
                break

            # The epoch is done: its training average, a validation pass, early stopping.
            train_metrics = averager.result()
            writer.write(step, "train_epoch", train_metrics, epoch=epoch)
            val_metrics = None
            if val_data is not None:
                start_carry = carry if eval_carry == "continue" else None
                val_metrics, val_carry = _evaluate(
                    evaluate,
                    state,
                    val_data,
                    stateful=stateful,
                    carry=start_carry,
                    fresh=fresh,
                    put=put,
                )
                writer.write(step, "val", val_metrics, epoch=epoch)
                value = val_metrics[monitor]
                better = loop["best"] is None or (
                    value < loop["best"] if monitor_mode == "min" else value > loop["best"]
                )
                if better and math.isfinite(value):
                    loop.update(best=value, best_epoch=epoch, bad_epochs=0)
                    if best_checkpointer is not None:
                        best_checkpointer.save(step, state, _NO_CARRY, {"epoch": epoch})
                else:
                    loop["bad_epochs"] += 1
                if early_stopping_patience is not None:
                    loop["stopped_early"] = loop["bad_epochs"] >= early_stopping_patience
                if stop_at is not None and math.isfinite(value):
                    reached = value <= stop_at if monitor_mode == "min" else value >= stop_at
                    loop["stopped_early"] = loop["stopped_early"] or reached
            loop["history"].append(
                {
                    "epoch": epoch,
                    "step": step,
                    "train": _finite_or_none(train_metrics),
                    "val": _finite_or_none(val_metrics),
                }
            )
            if progress:
                summary = f"epoch {epoch + 1}/{num_epochs}: loss {train_metrics['loss']:.4g}"
                if val_metrics is not None:
                    summary += f", val {monitor} {val_metrics[monitor]:.4g}"
                tqdm.write(summary)
            loop.update(epoch=epoch + 1, batch=0, epoch_metrics=None)
            checkpointer.save(step, state, carry, loop, overwrite=True)
            last_good = step

        # One final evaluation on the test split, once training has finished.
        test_metrics = None
        finished = loop["stopped_early"] or loop["epoch"] >= num_epochs  # not cut by max_steps
        if test_data is not None and finished:
            start_carry = None  # zeros of the test batch size
            if stateful and eval_carry == "continue":
                if val_data is not None and val_carry is None:  # resumed after the last epoch
                    _, val_carry = _evaluate(
                        evaluate, state, val_data, stateful=True, carry=carry, fresh=fresh, put=put
                    )
                start_carry = carry if val_carry is None else val_carry
            test_metrics, _ = _evaluate(
                evaluate,
                state,
                test_data,
                stateful=stateful,
                carry=start_carry,
                fresh=fresh,
                put=put,
            )
            writer.write(step, "test", test_metrics)
        best_state = None
        if best_checkpointer is not None and best_checkpointer.latest_step() is not None:
            best_state, _, _ = best_checkpointer.restore(state, _NO_CARRY)
    finally:
        checkpointer.close()
        writer.close()
        if best_checkpointer is not None:
            best_checkpointer.close()
    return FitResult(
        state=state,
        carry=carry,
        history=list(loop["history"]),
        test=test_metrics,
        best_epoch=loop["best_epoch"],
        stopped_early=bool(loop["stopped_early"]),
        best_state=best_state,
    )

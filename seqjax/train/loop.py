"""``fit``: the training loop, flat, top to bottom.

Per epoch: reset the carry (stateful) -> train steps over the epoch's batches, the carry flowing
from batch to batch -> a validation pass -> early stopping -> a checkpoint. Then one test pass.

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
from seqjax.train.steps import LossSpec, eval_step, train_step

EVAL_CARRY = ("zeros", "continue")


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
      state: the final :class:`TrainState`.
      carry: the training streams' carry after the last training step.
      history: one record per epoch, ``{"epoch", "step", "train": {...}, "val": {...} | None}``.
      test: the test metrics, or None without ``test_data``.
      best_epoch: the epoch with the best validation ``monitor`` (None without ``val_data``).
      stopped_early: whether early stopping ended the run.
    """

    state: TrainState
    carry: Carry
    history: list[dict[str, Any]]
    test: dict[str, float] | None
    best_epoch: int | None
    stopped_early: bool


@functools.lru_cache(maxsize=16)
def _clipped(optimizer: optax.GradientTransformation, clip_norm: float) -> Any:
    """``optimizer`` after clipping by global norm (cached: the same object for a resumed run)."""
    return optax.chain(optax.clip_by_global_norm(clip_norm), optimizer)


@functools.lru_cache(maxsize=16)
def _jitted_steps(
    loss: LossSpec, metrics: tuple[str, ...], truncation: int | None, mesh: Any
) -> tuple[Callable, Callable]:
    """The jitted train step (state and carry donated) and eval step for these options; cached,
    so fitting the same model and optimiser again (a resumed run) reuses the compilation."""
    options = dict(loss=loss, metrics=metrics)
    shardings = {}
    if mesh is not None:
        shardings["out_shardings"] = (replicated(mesh), batch_sharding(mesh), replicated(mesh))
    train = jax.jit(
        functools.partial(train_step, truncation=truncation, **options),
        donate_argnums=(0, 1),
        **shardings,
    )
    return train, jax.jit(functools.partial(eval_step, **options))


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
    num_epochs: int,
    val_data: BatchSource | None = None,
    test_data: BatchSource | None = None,
    loss: LossSpec = "mse",
    metrics: Sequence[str] = (),
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
) -> FitResult:
    """Trains ``model`` and resumes automatically from the newest checkpoint in ``workdir``.

    Args:
      model: a module following the model protocol of :mod:`seqjax.train.models`.
      train_data, val_data, test_data: data sources (see :mod:`seqjax.train.batches`); in stateful
        mode batch ``i + 1`` continues batch ``i`` row by row and every batch has ``B`` rows.
      optimizer: an optax transformation; learning-rate schedules go into it
        (``optax.adam(optax.cosine_decay_schedule(...))``).
      workdir: checkpoints (``workdir/checkpoints``), ``metrics.jsonl``, ``tensorboard/``. A run
        interrupted and started again with the same arguments continues exactly where the latest
        checkpoint left it, including the carry in the middle of an epoch.
      num_epochs: epochs in total (including those of a resumed run).
      loss, metrics: see :func:`seqjax.train.train_step`.
      stateful: thread the carry across the batches of an epoch (reset to zeros at each epoch's
        start and per row by ``batch["reset"]``); False: a fresh carry for every batch.
      shuffle: shuffle the training rows every epoch (only without ``stateful``).
      eval_carry: "zeros" or "continue": how the carry enters evaluation (module docstring).
      truncation: ``k2``, see :func:`seqjax.train.train_step`.
      clip_norm: clip the gradient by global norm before ``optimizer`` (exploding gradients).
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

    Returns:
      A :class:`FitResult`.

    Raises:
      NonFiniteError: a loss or gradient norm became NaN or infinite; it names the step, and the
        latest checkpoint is the last good one.
    """
    if stateful and shuffle:
        raise ValueError("shuffle=True would break the streams of stateful training.")
    if eval_carry not in EVAL_CARRY:
        raise ValueError(f"eval_carry must be one of {EVAL_CARRY}; got {eval_carry!r}.")
    if monitor_mode not in ("min", "max"):
        raise ValueError(f"monitor_mode must be 'min' or 'max'; got {monitor_mode!r}.")
    if monitor not in ("loss", *metrics):
        raise ValueError(f"monitor {monitor!r} is not among the metrics {('loss', *metrics)}.")
    workdir = Path(workdir)
    tx = optimizer if clip_norm is None else _clipped(optimizer, clip_norm)

    # Parameters and the carry for the first batch's size; sharded over the mesh if there is one.
    example = first_batch(train_data)
    rows = batch_size(example) * jax.process_count()
    state = create_train_state(model, tx, example, seed=seed)
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

    train, evaluate = _jitted_steps(loss, tuple(metrics), truncation, mesh)
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
                save_now = bool(checkpoint_every) and step % checkpoint_every == 0
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
                    position = {"epoch": epoch, "batch": batch_index + 1}
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
                else:
                    loop["bad_epochs"] += 1
                if early_stopping_patience is not None:
                    loop["stopped_early"] = loop["bad_epochs"] >= early_stopping_patience
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
    finally:
        checkpointer.close()
        writer.close()
    return FitResult(
        state=state,
        carry=carry,
        history=list(loop["history"]),
        test=test_metrics,
        best_epoch=loop["best_epoch"],
        stopped_early=bool(loop["stopped_early"]),
    )

"""Data parallelism with ``jax.sharding``: a Mesh over the batch axis.

The batch and the carry are split by rows over all devices (row ``b`` of the carry lives on the
device that holds row ``b`` of every batch), the parameters and optimiser state are replicated,
and XLA inserts the gradient all-reduce. The same code runs on one CPU, a multi-GPU host or a TPU
pod; on several hosts call :func:`initialize_distributed` first, and let each process feed its
own rows (its ``B / process_count`` share of every batch)::

    initialize_distributed()                    # no-op on a single host
    mesh = make_mesh()                          # all devices of all hosts, axis "batch"
    result = fit(model, data, ..., mesh=mesh)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"

_CLUSTER_SIZE_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "WORLD_SIZE")


def _multi_host_env() -> bool:
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return True
    return any(int(os.environ.get(var, "1") or "1") > 1 for var in _CLUSTER_SIZE_VARS)


def initialize_distributed(**kwargs: Any) -> bool:
    """Calls ``jax.distributed.initialize(**kwargs)`` once, when this is a multi-host job.

    A job is multi-host when ``kwargs`` are given (e.g. ``coordinator_address``,
    ``num_processes``, ``process_id``) or the environment says so (a TPU pod, SLURM, Open MPI,
    ``JAX_COORDINATOR_ADDRESS``); ``initialize`` then detects the rest. On a single host it does
    nothing. Call it before any other JAX call. Returns whether JAX runs distributed.
    """
    if jax.distributed.is_initialized():
        return True
    if not kwargs and not _multi_host_env():
        return False
    jax.distributed.initialize(**kwargs)
    return True


def make_mesh(devices: Sequence[jax.Device] | None = None, axis_name: str = BATCH_AXIS) -> Mesh:
    """A one-axis Mesh over ``devices`` (all devices of all processes by default)."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.asarray(devices), (axis_name,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (the leading axis) split over the mesh's axis; the other axes whole."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def _check_rows(rows: int, mesh: Mesh, what: str) -> None:
    devices = mesh.devices.size
    if rows % devices:
        raise ValueError(
            f"{what} has {rows} rows, which {devices} devices cannot share evenly; use a batch "
            f"size divisible by {devices}."
        )


def shard_batch(batch: Mapping[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Places a batch (this process's rows) on the mesh, split by rows.

    On one host ``batch`` is the whole batch; on several, each process passes its own
    ``B / process_count`` rows and gets back the global arrays.
    """
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        _check_rows(value.shape[0] * jax.process_count(), mesh, f"batch[{key!r}]")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def shard_carry(carry: Any, mesh: Mesh) -> Any:
    """Places a carry (leaves ``[B, ...]``, the same value on every process) split by rows."""
    for leaf in jax.tree.leaves(carry):
        _check_rows(leaf.shape[0], mesh, "the carry")
    return jax.device_put(carry, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree (parameters, the train state) whole on every device."""
    return jax.device_put(tree, replicated(mesh))

"""Data parallelism over 4 CPU devices equals one device (run in a subprocess: the device count
is fixed when JAX starts, and this pytest process has started it with one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqjax.train import make_mesh, shard_batch


def test_sharded_over_4_cpu_devices_equals_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    script = Path(__file__).with_name("sharding_check.py")
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "SHARDING OK" in done.stdout


def test_shard_batch_rejects_rows_the_devices_cannot_share():
    mesh = make_mesh()
    batch = {"inputs": [[[0.0]]] * (mesh.devices.size + 1)}
    if mesh.devices.size == 1:
        assert shard_batch(batch, mesh)["inputs"].shape == (2, 1, 1)
        return
    with pytest.raises(ValueError, match="cannot share evenly"):
        shard_batch(batch, mesh)

"""A batch sharded over 4 CPU devices runs the CPU kernel per shard, with no gather of the batch
(run in a subprocess: the device count is fixed when JAX starts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_kernel_runs_per_shard_over_4_cpu_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = Path(__file__).parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    script = Path(__file__).with_name("sharding_engine_check.py")
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "ENGINE SHARDING OK" in done.stdout

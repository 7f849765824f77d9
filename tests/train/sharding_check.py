"""Run by test_sharding.py in a subprocess with 4 CPU devices (XLA_FLAGS must be set before JAX
starts): fit() sharded over a 4-device mesh gives the losses, parameters and carry of one device.

Prints ``SHARDING OK`` at the end; any mismatch raises.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jax
import numpy as np
import optax

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import stream_data  # noqa: E402

from seqjax.nn import LSTM  # noqa: E402
from seqjax.train import SequenceModel, fit, make_mesh  # noqa: E402


def main() -> None:
    assert jax.device_count() == 4, f"expected 4 CPU devices, got {jax.devices()}"
    model = SequenceModel(LSTM(4), output_features=1)
    optimizer = optax.adam(1e-2)
    data = stream_data(num_batches=3, batch=8, time=5)
    val = stream_data(num_batches=2, batch=8, time=5, seed=1)
    data["reset"] = np.zeros(data["inputs"].shape[:2], bool)
    data["reset"][1, ::3] = True  # some streams restart in the middle of the epoch
    options = dict(
        optimizer=optimizer, num_epochs=2, val_data=val, metrics=("mae",), progress=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        single = fit(model, data, workdir=Path(tmp) / "single", **options)
        mesh = make_mesh()
        sharded = fit(model, data, workdir=Path(tmp) / "sharded", mesh=mesh, **options)

    for a, b in zip(single.history, sharded.history, strict=True):
        for split in ("train", "val"):
            for name in ("loss", "mae", "count"):
                np.testing.assert_allclose(a[split][name], b[split][name], rtol=1e-5)
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    jax.tree.map(close, single.state.params, sharded.state.params)
    jax.tree.map(close, single.carry, sharded.carry)
    # The carry is split by rows over the 4 devices, the parameters are whole on each.
    for leaf in jax.tree.leaves(sharded.carry):
        assert len(leaf.sharding.device_set) == 4 and not leaf.sharding.is_fully_replicated
        assert leaf.addressable_shards[0].data.shape == (2, 4)
    for leaf in jax.tree.leaves(sharded.state.params):
        assert leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 4
    print("SHARDING OK", single.history[-1]["train"]["loss"], sharded.history[-1]["train"]["loss"])


if __name__ == "__main__":
    main()

"""``import seqjax`` is light: no TensorFlow, Keras or PyTorch; subpackages load on first use."""

import subprocess
import sys
import textwrap


def test_import_needs_no_heavy_frameworks():
    code = textwrap.dedent(
        """
        import sys
        import seqjax, seqjax.nn, seqjax.data, seqjax.train
        heavy = [m for m in ("tensorflow", "keras", "torch") if m in sys.modules]
        assert not heavy, heavy
        assert seqjax.nn.LSTM is not None
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_example_runs():
    import jax
    import jax.numpy as jnp

    import seqjax

    x = jnp.ones((8, 100, 3))
    layer = seqjax.nn.LSTM(features=64)
    variables = layer.init(jax.random.key(0), x)
    carry, ys = layer.apply(variables, x)
    carry, ys = layer.apply(variables, x, initial_carry=carry)
    lengths = jnp.array([100, 50, 3, 100, 1, 0, 80, 99])
    carry, ys = layer.apply(variables, x, seq_lengths=lengths)
    assert ys.shape == (8, 100, 64)
    assert carry.cell.shape == carry.hidden.shape == (8, 64)

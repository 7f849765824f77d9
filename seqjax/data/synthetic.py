"""Synthetic sequence tasks: the adding problem, a copy task and stock-like random walks.

All generators are NumPy on the host and take ``rng=`` (a ``numpy.random.Generator``) or
``seed=``; with neither, fresh OS entropy is used (NumPy's convention), so draw training
and test sets from different seeds or from one generator.
"""

from __future__ import annotations

import numpy as np

from seqjax.data.checks import check_positive_int

__all__ = ["adding_problem", "copy_task", "random_walk"]


def _rng(rng: np.random.Generator | None, seed: int | None) -> np.random.Generator:
    if rng is not None and seed is not None:
        raise ValueError("pass either rng= or seed=, not both")
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    return np.random.default_rng(seed)


def adding_problem(
    num_sequences: int,
    length: int,
    *,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    variable_length: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The adding problem of Hochreiter & Schmidhuber (1997), Experiment 4.

    Each element is a pair ``(value, marker)``:

    - ``value`` is uniform in ``[-1, 1]``;
    - the sequence length is uniform in ``{T, ..., T + T // 10}`` (``T = length``; always
      ``T`` with ``variable_length=False``);
    - exactly two pairs get marker ``1.0``: first one of the first ten pairs (its value is
      ``X1``), then one of the first ``T // 2 - 1`` pairs that are still unmarked
      (``X2``; read literally from the paper: the candidates are the first ``T // 2 - 1``
      positions other than ``X1``'s, so always ``T // 2 - 1`` of them);
    - the first and the last pair get marker ``-1.0``, unless marked (the last pair never
      is: it lies at index ``>= T - 1``); all other markers are ``0.0``;
    - the target is ``0.5 + (X1 + X2) / 4.0``, in ``[0, 1]``.

    The paper's rare case: "if the first pair of the sequence gets marked, we set X1 to
    zero". Resolution here: if position 0 is marked (by either draw), its marker is
    ``1.0`` (the mark wins over the ``-1`` of the first pair) and its *value in the inputs*
    is set to ``0.0``, so the target stays ``0.5 + (sum of the marked values) / 4`` and
    is consistent with what the network sees.

    Args:
      num_sequences: ``N``, >= 1.
      length: minimal length ``T``, >= 11 (so that the last pair is never among the first
        ten and ``T // 2 - 1 >= 2`` candidates exist for ``X2``). The paper uses 100, 500
        and 1000.
      rng, seed: randomness (see the module docstring).
      variable_length: draw lengths in ``[T, T + T // 10]`` (the paper) or use ``T``.

    Returns:
      ``inputs``: ``[N, T_max, 2]`` float32 (``[..., 0]`` values, ``[..., 1]`` markers),
      right-padded with zeros to ``T_max = T + T // 10`` (``T`` without variable length);
      ``targets``: ``[N]`` float32; ``lengths``: ``[N]`` int32. The target is due at
      step ``lengths[n] - 1``; a mask is ``seqjax.data.lengths_mask(lengths, T_max)``.

    Example:
        >>> from seqjax.data import adding_problem
        >>> inputs, targets, lengths = adding_problem(4, length=12, seed=0)
        >>> inputs.shape, targets.shape, lengths.shape             # [N, T, 2]: (value, marker) pairs
        ((4, 13, 2), (4,), (4,))
        >>> (inputs[..., 1] == 1).sum(axis=1)                      # two marked values per sequence
        array([2, 2, 2, 2])
        >>> bool(((targets >= 0) & (targets <= 1)).all())          # 0.5 + (X1 + X2) / 4 lies in [0, 1]
        True
    """
    num_sequences = check_positive_int("num_sequences", num_sequences)
    length = check_positive_int("length", length, minimum=11)
    gen = _rng(rng, seed)
    n = num_sequences
    t_max = length + length // 10 if variable_length else length
    if variable_length:
        lengths = gen.integers(length, t_max + 1, size=n).astype(np.int32)
    else:
        lengths = np.full(n, length, np.int32)
    values = gen.uniform(-1.0, 1.0, size=(n, t_max)).astype(np.float32)
    first = gen.integers(0, 10, size=n)
    k = length // 2 - 1
    r = gen.integers(0, k, size=n)
    second = r + (r >= first)  # the r-th of the first k positions other than `first`
    rows = np.arange(n)
    markers = np.zeros((n, t_max), np.float32)
    markers[:, 0] = -1.0
    markers[rows, lengths - 1] = -1.0
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    values[markers[:, 0] == 1.0, 0] = 0.0  # the paper's "set X1 to zero"
    values[np.arange(t_max) >= lengths[:, None]] = 0.0  # right padding
    x1 = values[rows, first].astype(np.float64)
    x2 = values[rows, second].astype(np.float64)
    targets = (0.5 + (x1 + x2) / 4.0).astype(np.float32)
    inputs = np.stack([values, markers], axis=-1)
    return inputs, targets, lengths


def copy_task(
    num_sequences: int,
    num_symbols: int = 10,
    delay: int = 100,
    *,
    alphabet_size: int = 8,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copy (memory) task: reproduce ``num_symbols`` symbols after ``delay`` blank steps.

    Tokens: ``0`` blank, ``1..alphabet_size`` symbols, ``alphabet_size + 1`` the
    delimiter ("now recall"). With ``M = num_symbols``, sequences have
    ``L = M + delay + M`` steps (Arjovsky et al. 2016 with ``delay = T``)::

        inputs  = [s_1 .. s_M] [0] * (delay - 1) [delimiter] [0] * M
        targets = [0] * (M + delay)                          [s_1 .. s_M]

    Args:
      num_sequences: ``N``, >= 1.
      num_symbols: ``M``, >= 1.
      delay: steps between the last symbol and the first recall step, >= 1.
      alphabet_size: number of distinct symbols, >= 1.

    Returns:
      ``inputs [N, L]`` int32 and ``targets [N, L]`` int32 tokens (one-hot them with
      ``jax.nn.one_hot(x, alphabet_size + 2)``), and ``mask [N, L]`` bool, ``True`` on the
      ``M`` recall steps (a loss on all steps is the other common choice).

    Example:
        >>> from seqjax.data import copy_task
        >>> inputs, targets, mask = copy_task(2, num_symbols=3, delay=4, seed=0)
        >>> inputs.shape, targets.shape, mask.shape
        ((2, 10), (2, 10), (2, 10))
        >>> mask[0].astype(int)                                    # the steps where the copy is scored
        array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    """
    n = check_positive_int("num_sequences", num_sequences)
    m = check_positive_int("num_symbols", num_symbols)
    delay = check_positive_int("delay", delay)
    alphabet_size = check_positive_int("alphabet_size", alphabet_size)
    gen = _rng(rng, seed)
    total = 2 * m + delay
    symbols = gen.integers(1, alphabet_size + 1, size=(n, m)).astype(np.int32)
    inputs = np.zeros((n, total), np.int32)
    targets = np.zeros((n, total), np.int32)
    inputs[:, :m] = symbols
    inputs[:, m + delay - 1] = alphabet_size + 1
    targets[:, m + delay :] = symbols
    mask = np.zeros((n, total), bool)
    mask[:, m + delay :] = True
    return inputs, targets, mask


def random_walk(
    length: int,
    *,
    num_series: int | None = None,
    start: float = 100.0,
    drift: float = 0.0,
    volatility: float = 0.01,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
) -> np.ndarray:
    """Stock-like prices: a geometric random walk (log returns ~ N(drift, volatility²)).

    ``price[0] = start`` and ``price[t] = price[t - 1] * exp(r_t)``; prices stay positive.

    Args:
      length: number of steps ``T``, >= 1.
      num_series: ``None`` for one series ``[T]``, else ``N`` independent ones ``[N, T]``.
      start: first price, > 0.
      drift: mean daily log return.
      volatility: standard deviation of the daily log return, >= 0.

    Returns:
      ``[T]`` or ``[N, T]`` float64 prices.

    Example:
        >>> from seqjax.data import random_walk
        >>> prices = random_walk(5, start=100.0, seed=0)
        >>> prices.shape, float(prices[0])
        ((5,), 100.0)
        >>> random_walk(5, num_series=3, seed=0).shape
        (3, 5)
    """
    length = check_positive_int("length", length)
    if num_series is not None:
        num_series = check_positive_int("num_series", num_series)
    if not start > 0:
        raise ValueError(f"start must be > 0, got {start}")
    if not volatility >= 0:
        raise ValueError(f"volatility must be >= 0, got {volatility}")
    gen = _rng(rng, seed)
    shape = (1 if num_series is None else num_series, length)
    returns = gen.normal(drift, volatility, size=shape)
    returns[:, 0] = 0.0
    prices = start * np.exp(np.cumsum(returns, axis=1))
    return prices[0] if num_series is None else prices

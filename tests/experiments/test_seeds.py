"""The figures over seeds that every study's table is built from (experiments.seeds.spread)."""

import doctest

import numpy as np
import pytest

from experiments import seeds


def test_spread_is_mean_sample_std_min_max_of_the_values():
    values = [0.91, 0.93, 0.88, 0.97]
    got = seeds.spread(values)
    assert got["mean"] == pytest.approx(np.mean(values))
    assert got["std"] == pytest.approx(np.std(values, ddof=1))
    assert (got["min"], got["max"], got["n"], got["values"]) == (0.88, 0.97, 4, values)


def test_one_value_has_no_spread_and_no_values_give_none():
    assert seeds.spread([2.0])["std"] == 0.0
    assert seeds.spread([]) is None


def test_the_docstring_example_runs():
    assert doctest.testmod(seeds).failed == 0

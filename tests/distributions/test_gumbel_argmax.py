"""Gumbel-softmax at evaluation: one_hot(argmax y) of a relaxed sample y = softmax((log a + G)/τ)
is an exact Categorical(a) draw for every τ > 0 (softmax keeps the order of its inputs, so
argmax y = argmax(log a + G), the Gumbel-max draw).  Checked with scipy's chi-square tests at
the stated level P_MIN, and shown to have power: a probability vector 0.02 off is rejected.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minivae.distributions import Categorical, RelaxedOneHotCategorical
from minivae.distributions.categorical import standard_gumbel

A = np.array([0.1, 0.2, 0.5, 0.2])  # the course notes' example
WRONG = np.array([0.12, 0.18, 0.5, 0.2])
N = 20_000
P_MIN = 1e-3  # a correct sampler fails one of these tests with probability 0.001


def argmax_counts(temperature: float, seed: int) -> np.ndarray:
    y = RelaxedOneHotCategorical(temperature, probs=A).rsample(np.random.default_rng(seed), (N,))
    return np.bincount(np.argmax(y.data, axis=-1), minlength=len(A))


# a seed of its own for each τ: with one seed the argmax would be the same draws every time
@pytest.mark.parametrize("temperature,seed", [(0.01, 1), (0.1, 2), (1.0, 3), (10.0, 4)])
def test_argmax_of_gumbel_softmax_fits_the_categorical(temperature, seed):
    counts = argmax_counts(temperature, seed)
    assert stats.chisquare(counts, N * A).pvalue >= P_MIN
    # power: the same counts reject a vector that differs by 0.02 in two classes
    # (expected χ² = N Σ (a − w)²/w ≈ 111 on 3 degrees of freedom)
    assert stats.chisquare(counts, N * WRONG).pvalue < 1e-9


def test_argmax_matches_direct_categorical_sampling():
    """The notebook's comparison at τ = 0.1: argmax of relaxed draws against
    Categorical(a).sample, as a two-sample χ² test of homogeneity."""
    direct = Categorical(probs=A).sample(np.random.default_rng(7), (N,))
    direct_counts = np.bincount(np.asarray(getattr(direct, "data", direct)), minlength=len(A))
    table = np.stack([argmax_counts(0.1, seed=8), direct_counts])
    assert stats.chi2_contingency(table).pvalue >= P_MIN


def test_argmax_is_the_gumbel_max_class_for_every_temperature():
    """Draw by draw, not only in distribution: with the same noise G, argmax y is
    argmax(log a + G) at every τ, hot or cold."""
    noise = standard_gumbel(np.random.default_rng(3), (5000, len(A)), np.float64)
    winners = np.argmax(np.log(A) + noise, axis=-1)
    for temperature in (100.0, 1.0, 0.1, 1e-3):
        y = RelaxedOneHotCategorical(temperature, probs=A).rsample(np.random.default_rng(3),
                                                                   (5000,))
        np.testing.assert_array_equal(np.argmax(y.data, axis=-1), winners)

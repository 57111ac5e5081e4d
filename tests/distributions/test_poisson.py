"""Poisson: log-probabilities, entropy, moments, sampling and KL against scipy and truncated
sums; gradients; huge counts and rates."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.stats as stats
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.distributions import Poisson, cross_entropy, kl_divergence
from tests.distributions.helpers import (
    assert_within_standard_errors,
    chi_square_pvalue,
    per_sample_score,
    reals,
)

SEED = 20240611


@given(rate=st.floats(1e-3, 100))
def test_poisson_matches_scipy(rate):
    d, k = Poisson(rate), np.arange(60.0)
    np.testing.assert_allclose(d.log_prob(k).data, stats.poisson.logpmf(k, rate), rtol=1e-10)
    np.testing.assert_allclose(d.entropy().data, stats.poisson.entropy(rate), rtol=1e-8)
    assert d.mean.data == stats.poisson.mean(rate) and d.variance.data == stats.poisson.var(rate)


def poisson_entropy_by_sum(rate):
    k = np.arange(max(0, int(rate - 30 * np.sqrt(rate) - 60)), int(rate + 30 * np.sqrt(rate) + 60))
    log_p = stats.poisson.logpmf(k, rate)
    return -(np.exp(log_p) * log_p).sum()


def test_poisson_entropy_for_large_and_small_rates():
    rates = np.array([1e-8, 1e-3, 0.7, 250.0, 1e4, 1e6])
    entropy = Poisson(rates).entropy().data
    expected = [poisson_entropy_by_sum(r) for r in rates]
    np.testing.assert_allclose(entropy, expected, rtol=1e-9)
    # the large-λ expansion H = ½ log(2πeλ) − 1/(12λ) − 1/(24λ²) + O(λ⁻³), to the rounding
    # error 1e-16 · λ log λ of the log-probabilities (documented in Poisson.entropy)
    large = rates[-2:]
    asymptotic = 0.5 * np.log(2 * np.pi * np.e * large) - 1 / (12 * large) - 1 / (24 * large**2)
    relative_error = np.abs(entropy[-2:] - asymptotic) / asymptotic
    assert np.all(relative_error <= 1e-15 * large * np.log(large)), relative_error


def test_poisson_outside_support():
    d = Poisson(np.array([2.0, 3.0]))
    outside = d.log_prob(np.array([[-1.0], [0.5], [np.inf]])).data
    np.testing.assert_array_equal(outside, np.full((3, 2), -np.inf))
    with pytest.raises(ValueError, match="k must be free of NaN"):
        d.log_prob(np.nan)
    np.testing.assert_allclose(d.log_prob(0).data, [-2.0, -3.0], rtol=1e-15)


@settings(max_examples=10)
@given(rate=reals((3,), 0.2, 20), other=reals((3,), 0.2, 20))
def test_poisson_gradients(rate, other):
    k = np.array([0.0, 3.0, 11.0])
    assert gradcheck(lambda r: Poisson(r).log_prob(k), rate)
    assert gradcheck(lambda r: Poisson(r).entropy(), rate)
    assert gradcheck(lambda a, b: kl_divergence(Poisson(a), Poisson(b)), rate, other)


def test_poisson_sampler_chi_square_and_moments():
    rate = 3.7
    draws = Poisson(np.array([rate, 40.0])).sample(np.random.default_rng(SEED), 20000).data
    assert draws.shape == (20000, 2) and np.all(draws == np.floor(draws))
    counts = draws[:, 0].astype(int)
    top = 12  # pool the tail k ≥ 12 so that every expected count is large
    pooled = np.minimum(counts, top)
    probs = np.append(stats.poisson.pmf(np.arange(top), rate), stats.poisson.sf(top - 1, rate))
    assert chi_square_pvalue(pooled, probs) > 1e-3
    assert_within_standard_errors(draws, [rate, 40.0], atol=1e-12)
    assert_within_standard_errors((draws - [rate, 40.0]) ** 2, [rate, 40.0], atol=1e-12)


def poisson_kl_by_sum(a, b):
    k = np.arange(0, int(max(a, b) + 40 * np.sqrt(max(a, b)) + 80))
    return (stats.poisson.pmf(k, a) * (stats.poisson.logpmf(k, a) - stats.poisson.logpmf(k, b))
            ).sum()


@given(a=st.floats(0.01, 60), b=st.floats(0.01, 60))
def test_poisson_kl_matches_truncated_sum(a, b):
    p, q = Poisson(a), Poisson(b)
    kl = kl_divergence(p, q).data
    np.testing.assert_allclose(kl, poisson_kl_by_sum(a, b), rtol=1e-8, atol=1e-13)
    assert kl >= 0 and kl_divergence(p, p).data == 0
    k = np.arange(0, int(a + 40 * np.sqrt(a) + 80))
    cross = -(stats.poisson.pmf(k, a) * stats.poisson.logpmf(k, b)).sum()
    np.testing.assert_allclose(cross_entropy(p, q).data, cross, rtol=1e-8)


def test_poisson_kl_matches_monte_carlo():
    p, q = Poisson(np.array([0.5, 4.0, 30.0])), Poisson(np.array([1.0, 3.0, 35.0]))
    k = p.sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors((p.log_prob(k) - q.log_prob(k)).data, kl_divergence(p, q).data,
                                  atol=1e-12)


def test_poisson_score_identity():
    rate = np.array([0.4, 6.0])
    k = Poisson(rate).sample(np.random.default_rng(SEED), 20000)
    assert_within_standard_errors(per_sample_score(Poisson, rate, k), 0.0, atol=1e-12)


def test_poisson_validation_and_dtype():
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="rate"):
            Poisson(np.array([1.0, bad]))
    d = Poisson(np.array([0.5, 7.0], dtype=np.float32))
    q = Poisson(np.array(2.0, dtype=np.float32))
    for out in (d.log_prob([0, 3]), d.entropy(), d.mean, d.variance, kl_divergence(d, q),
                d.sample(np.random.default_rng(0), 2)):
        assert out.dtype == np.float32
    np.testing.assert_allclose(d.entropy().data, [stats.poisson.entropy(0.5),
                                                  stats.poisson.entropy(7.0)], rtol=1e-5)


# the extreme inputs overflow on purpose (IEEE ∞), which NumPy reports
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("rate", [10.0, 2e6, 1e300])
def test_poisson_log_prob_at_huge_counts(rate):
    """Counts where k log λ and log k! overflow or cancel (scipy gives NaN, or −6e286 instead
    of −346 at k = λ = 1e300): the value of k log λ − λ − log Γ(k + 1) in 400-digit arithmetic
    (−∞ where it is below the float range), and a finite gradient k/λ − 1."""
    mpmath = pytest.importorskip("mpmath")
    counts = np.array([3e6, 1e300, 7.8e307])
    rate_leaf = Tensor(np.array(rate), requires_grad=True)
    log_p = Poisson(rate_leaf).log_prob(counts)
    for k, value in zip(counts, log_p.data):
        with mpmath.workdps(400):  # the terms reach 1e303 and cancel to 1e2: 300 digits go
            exact = mpmath.mpf(k) * mpmath.log(rate) - rate - mpmath.loggamma(mpmath.mpf(k) + 1)
        if abs(exact) > np.finfo(np.float64).max:
            assert value == -np.inf and exact < 0
        else:
            assert value == pytest.approx(float(exact), rel=1e-12)
    log_p.sum().backward()
    np.testing.assert_allclose(rate_leaf.grad, np.sum(counts / rate - 1), rtol=1e-12)


def test_poisson_entropy_at_huge_rates():
    """Above 1e6 the entropy follows ½ log(2πeλ) − 1/(12λ) + O(λ⁻²) and stays finite."""
    rates = np.array([2e6, 1e30, 1e300])
    h = Poisson(rates).entropy().data
    np.testing.assert_allclose(h, 0.5 * np.log(2 * np.pi * np.e * rates) - 1 / (12 * rates),
                               rtol=1e-14)
    below, above = Poisson(np.array([1e6, 1e6 * (1 + 1e-12)])).entropy().data
    # the sum and the expansion meet, within the sum's documented rounding 1e-16 · λ log λ
    assert abs(above - below) / below < 1e-16 * 1e6 * np.log(1e6)

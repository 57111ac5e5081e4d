"""Gamma (and its KL with Exponential): densities against scipy.stats, KL against quadrature and
Monte Carlo, samplers by moments and KS tests, the score identity, gradients, validation.

scipy is the independent oracle here (scipy.stats.gamma uses scale = 1/rate); the library
itself never imports it.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import stats

from minivae import Tensor, gradcheck
from minivae.distributions.exponential import Exponential
from minivae.distributions.gamma import Gamma
from minivae.distributions.kl import cross_entropy, kl_divergence
from tests.distributions.helpers import (
    assert_draws_match,
    assert_float32_throughout,
    assert_parameters_are_checked,
    assert_score_has_mean_zero,
    log_uniform,
    quad_expectation,
)


def scipy_gamma(alpha, rate):
    return stats.gamma(alpha, scale=1 / np.asarray(rate))


def quad_kl(p, q):
    return quad_expectation(lambda x: p.logpdf(x) - q.logpdf(x), p)


@given(alpha=log_uniform((3,), 0.05, 50), rate=log_uniform((3,), 0.05, 20),
       u=hnp.arrays(np.float64, (4, 3), elements=st.floats(1e-6, 1 - 1e-6)))
def test_log_prob_matches_scipy(alpha, rate, u):
    x = scipy_gamma(alpha, rate).ppf(u)
    expected = scipy_gamma(alpha, rate).logpdf(x)
    np.testing.assert_allclose(Gamma(alpha, rate).log_prob(x).data, expected, rtol=1e-8,
                               atol=1e-11)


def test_log_prob_at_the_edge_of_the_support():
    alpha, rate = np.array([0.5, 1.0, 2.0]), np.array([2.0, 3.0, 0.5])
    dist = Gamma(alpha, rate)
    at_zero = dist.log_prob(np.zeros(3)).data
    np.testing.assert_array_equal(at_zero[[0, 2]], [np.inf, -np.inf])
    np.testing.assert_allclose(at_zero[1], scipy_gamma(1.0, 3.0).logpdf(0.0), rtol=1e-14)
    assert np.all(dist.log_prob(np.full(3, -1e-3)).data == -np.inf)
    assert np.all(dist.log_prob(np.full(3, np.inf)).data == -np.inf)
    with pytest.raises(ValueError, match="x must be free of NaN"):
        dist.log_prob(np.full(3, np.nan))
    # gradients stay finite: the limit (α − 1) log 0 contributes 0, outside everything is 0
    a = Tensor(alpha, requires_grad=True)
    x = Tensor(np.array([0.0, -1.0, 2.0]), requires_grad=True)
    Gamma(a, rate).log_prob(x).backward(np.ones(3))
    assert np.all(np.isfinite(a.grad)) and np.all(np.isfinite(x.grad))
    assert x.grad[0] == -rate[0] and x.grad[1] == 0


@given(alpha=log_uniform((5,), 0.05, 100), rate=log_uniform((5,), 0.05, 20))
def test_entropy_mean_variance_match_scipy(alpha, rate):
    dist, oracle = Gamma(alpha, rate), scipy_gamma(alpha, rate)
    np.testing.assert_allclose(dist.entropy().data, oracle.entropy(), rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(dist.mean.data, oracle.mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.variance.data, oracle.var(), rtol=1e-12)


@settings(max_examples=20)
@given(alpha_p=st.floats(1, 20), rate_p=st.floats(0.2, 5), alpha_q=st.floats(0.5, 20),
       rate_q=st.floats(0.2, 5))
def test_kl_matches_quadrature(alpha_p, rate_p, alpha_q, rate_q):
    p, q = scipy_gamma(alpha_p, rate_p), scipy_gamma(alpha_q, rate_q)
    kl = kl_divergence(Gamma(alpha_p, rate_p), Gamma(alpha_q, rate_q)).item()
    np.testing.assert_allclose(kl, quad_kl(p, q), rtol=1e-8, atol=1e-11)
    cross = cross_entropy(Gamma(alpha_p, rate_p), Gamma(alpha_q, rate_q)).item()
    np.testing.assert_allclose(cross, quad_expectation(lambda x: -q.logpdf(x), p), rtol=1e-8,
                               atol=1e-11)


@settings(max_examples=15)
@given(rate_e=st.floats(0.2, 5), alpha=st.floats(0.5, 20), rate=st.floats(0.2, 5))
def test_exponential_gamma_kl_matches_quadrature(rate_e, alpha, rate):
    expon, gamma = stats.expon(scale=1 / rate_e), scipy_gamma(alpha, rate)
    forward = kl_divergence(Exponential(rate_e), Gamma(alpha, rate)).item()
    np.testing.assert_allclose(forward, quad_kl(expon, gamma), rtol=1e-8, atol=1e-11)
    if alpha >= 1:  # keeps p's density bounded at 0, where quad is reliable
        backward = kl_divergence(Gamma(alpha, rate), Exponential(rate_e)).item()
        np.testing.assert_allclose(backward, quad_kl(gamma, expon), rtol=1e-8, atol=1e-11)
    # Exponential(λ) is Gamma(1, λ): the cross-family pairs agree with the Gamma pair
    same = kl_divergence(Gamma(1.0, rate_e), Gamma(alpha, rate)).item()
    np.testing.assert_allclose(forward, same, rtol=1e-12)


PAIRS = [
    (Gamma(0.3, 1.0), Gamma(2.0, 0.5)),
    (Gamma(4.0, 2.0), Gamma(1.5, 3.0)),
    (Exponential(1.5), Gamma(2.5, 1.0)),
    (Gamma(0.7, 0.4), Exponential(0.8)),
]


@pytest.mark.parametrize("pair", range(len(PAIRS)))
def test_kl_matches_monte_carlo(pair):
    p, q = PAIRS[pair]
    x = p.sample(np.random.default_rng(pair), 200_000)
    log_ratio = p.log_prob(x).data - q.log_prob(x).data
    standard_error = log_ratio.std() / np.sqrt(log_ratio.size)
    assert abs(log_ratio.mean() - kl_divergence(p, q).item()) <= 5 * standard_error


@given(alpha_p=log_uniform((4,), 0.05, 50), rate_p=log_uniform((4,), 0.05, 20),
       alpha_q=log_uniform((4,), 0.05, 50), rate_q=log_uniform((4,), 0.05, 20))
def test_kl_is_nonnegative_zero_on_the_diagonal_and_cross_entropy_minus_entropy(
        alpha_p, rate_p, alpha_q, rate_q):
    p, q = Gamma(alpha_p, rate_p), Gamma(alpha_q, rate_q)
    kl = kl_divergence(p, q).data
    assert np.all(kl >= -1e-12)
    np.testing.assert_allclose(kl_divergence(p, p).data, 0, atol=1e-12)
    difference = cross_entropy(p, q).data - p.entropy().data
    assert np.all(np.abs(kl - difference) <= 1e-9 * (1 + np.abs(kl)))
    assert np.all(kl_divergence(Exponential(rate_p), q).data >= -1e-12)
    assert np.all(kl_divergence(p, Exponential(rate_q)).data >= -1e-12)


@pytest.mark.parametrize("alpha, rate", [(0.05, 1.0), (0.6, 2.0), (1.0, 0.5), (7.5, 3.0)])
def test_samplers_match_scipy_by_ks(alpha, rate):
    dist, oracle = Gamma(alpha, rate), scipy_gamma(alpha, rate)
    for method in (dist.sample, dist.rsample):
        assert_draws_match(method(np.random.default_rng(11), 20_000).data, oracle)


@pytest.mark.parametrize("alpha, rate", [(0.4, 1.5), (3.0, 0.7)])
def test_score_function_has_mean_zero(alpha, rate):
    """E_p[∇_θ log p(x)] = ∫ ∇_θ p = ∇_θ 1 = 0, for θ = α and θ = β."""
    assert_score_has_mean_zero(Gamma, alpha, rate)


@settings(max_examples=20)
@given(alpha=log_uniform((3,), 0.2, 20), rate=log_uniform((3,), 0.2, 5),
       x=log_uniform((2, 3), 0.05, 10), other=log_uniform((2, 3), 0.2, 20))
def test_gradients_of_log_prob_entropy_and_kl(alpha, rate, x, other):
    assert gradcheck(lambda a, b, v: Gamma(a, b).log_prob(v), alpha, rate, x)
    assert gradcheck(lambda a, b: Gamma(a, b).entropy(), alpha, rate)
    assert gradcheck(lambda a, b, c, d: kl_divergence(Gamma(a, b), Gamma(c, d)),
                     alpha, rate, other[0], other[1])
    assert gradcheck(lambda r, c, d: kl_divergence(Exponential(r), Gamma(c, d)),
                     rate, other[0], other[1])
    assert gradcheck(lambda a, b, r: kl_divergence(Gamma(a, b), Exponential(r)),
                     alpha, rate, other[1])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_parameters_raise_naming_them(bad):
    assert_parameters_are_checked(Gamma, ("concentration", "rate"), bad)


def test_float32_is_preserved():
    alpha, rate = np.array([0.5, 3.0], np.float32), np.array([1.0, 2.0], np.float32)
    x = np.array([0.5, 2.0], np.float32)
    assert_float32_throughout(Gamma, (alpha, rate), x, lambda dist: [
        dist.cdf(x), kl_divergence(dist, Gamma(rate, alpha)),
        kl_divergence(Exponential(rate), dist), kl_divergence(dist, Exponential(rate))])
    with pytest.raises(TypeError):
        Gamma(alpha, np.array([1.0, 2.0]))  # float32 with float64: no silent upcast


def test_sample_shapes():
    dist, rng = Gamma(np.array([0.5, 1.0, 4.0]), 2.0), np.random.default_rng(0)
    assert dist.batch_shape == (3,) and dist.event_shape == ()
    for method in (dist.sample, dist.rsample):
        assert method(rng).shape == (3,)
        assert method(rng, (5, 2)).shape == (5, 2, 3)
        assert method(rng, 4).shape == (4, 3)
    assert dist.log_prob(dist.sample(rng, (5, 2))).shape == (5, 2, 3)
    assert not dist.sample(rng).requires_grad

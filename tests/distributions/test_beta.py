"""Beta: densities against scipy.stats, KL against quadrature and Monte Carlo, samplers by
moments and KS tests, the score identity, the rsample gradient, gradients, validation.

scipy is the independent oracle here; the library itself never imports it.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import stats

from minivae import Tensor, gradcheck
from minivae.distributions.beta import Beta
from minivae.distributions.kl import cross_entropy, kl_divergence
from tests.distributions.helpers import (
    assert_draws_match,
    assert_float32_throughout,
    assert_parameters_are_checked,
    assert_score_has_mean_zero,
    log_uniform,
    quad_expectation,
)


@given(a=log_uniform((3,), 0.05, 50), b=log_uniform((3,), 0.05, 50),
       u=hnp.arrays(np.float64, (4, 3), elements=st.floats(1e-6, 1 - 1e-6)))
def test_log_prob_matches_scipy(a, b, u):
    x = stats.beta(a, b).ppf(u)
    x = np.where((x > 0) & (x < 1), x, 0.5)  # tiny α or β can round a quantile to 0 or 1
    np.testing.assert_allclose(Beta(a, b).log_prob(x).data, stats.beta(a, b).logpdf(x),
                               rtol=1e-8, atol=1e-10)


def test_log_prob_at_the_edges():
    a, b = np.array([0.5, 1.0, 2.0]), np.array([3.0, 2.5, 0.4])
    dist = Beta(a, b)
    at_zero, at_one = dist.log_prob(np.zeros(3)).data, dist.log_prob(np.ones(3)).data
    np.testing.assert_array_equal(at_zero[[0, 2]], [np.inf, -np.inf])
    np.testing.assert_allclose(at_zero[1], np.log(2.5), rtol=1e-14)  # Beta(1, β) at 0: β
    np.testing.assert_array_equal(at_one, [-np.inf, -np.inf, np.inf])
    np.testing.assert_allclose(Beta(3.0, 1.0).log_prob(1.0).data, np.log(3.0), rtol=1e-14)
    for outside in (-1e-9, 1 + 1e-9, np.inf, -np.inf):
        assert np.all(dist.log_prob(np.full(3, outside)).data == -np.inf)
    with pytest.raises(ValueError, match="x must be free of NaN"):
        dist.log_prob(np.full(3, np.nan))
    x = Tensor(np.array([0.0, 1.5, 0.3]), requires_grad=True)
    dist.log_prob(x).backward(np.ones(3))
    assert np.all(np.isfinite(x.grad)) and x.grad[1] == 0


@given(a=log_uniform((5,), 0.05, 100), b=log_uniform((5,), 0.05, 100))
def test_entropy_mean_variance_match_scipy(a, b):
    dist, oracle = Beta(a, b), stats.beta(a, b)
    np.testing.assert_allclose(dist.entropy().data, oracle.entropy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dist.mean.data, oracle.mean(), rtol=1e-12)
    np.testing.assert_allclose(dist.variance.data, oracle.var(), rtol=1e-12)


@settings(max_examples=20)
@given(a1=st.floats(1, 20), a0=st.floats(1, 20), b1=st.floats(0.5, 20), b0=st.floats(0.5, 20))
def test_kl_matches_quadrature(a1, a0, b1, b0):
    """p has α, β ≥ 1 (a bounded density, which quad integrates reliably)."""
    p, q = stats.beta(a1, a0), stats.beta(b1, b0)
    kl = kl_divergence(Beta(a1, a0), Beta(b1, b0)).item()
    np.testing.assert_allclose(kl, quad_expectation(lambda x: p.logpdf(x) - q.logpdf(x), p),
                               rtol=1e-8, atol=1e-11)
    cross = cross_entropy(Beta(a1, a0), Beta(b1, b0)).item()
    np.testing.assert_allclose(cross, quad_expectation(lambda x: -q.logpdf(x), p), rtol=1e-8,
                               atol=1e-11)


@pytest.mark.parametrize("params", [(0.3, 0.8, 2.0, 1.5), (5.0, 2.0, 1.0, 1.0),
                                    (1.5, 9.0, 0.6, 3.0)])
def test_kl_matches_monte_carlo(params):
    p, q = Beta(*params[:2]), Beta(*params[2:])
    x = p.sample(np.random.default_rng(4), 200_000)
    log_ratio = p.log_prob(x).data - q.log_prob(x).data
    standard_error = log_ratio.std() / np.sqrt(log_ratio.size)
    assert abs(log_ratio.mean() - kl_divergence(p, q).item()) <= 5 * standard_error


@given(a1=log_uniform((4,), 0.05, 50), a0=log_uniform((4,), 0.05, 50),
       b1=log_uniform((4,), 0.05, 50), b0=log_uniform((4,), 0.05, 50))
def test_kl_is_nonnegative_zero_on_the_diagonal_and_cross_entropy_minus_entropy(a1, a0, b1, b0):
    p, q = Beta(a1, a0), Beta(b1, b0)
    kl = kl_divergence(p, q).data
    assert np.all(kl >= -1e-12)
    np.testing.assert_allclose(kl_divergence(p, p).data, 0, atol=1e-12)
    difference = cross_entropy(p, q).data - p.entropy().data
    assert np.all(np.abs(kl - difference) <= 1e-9 * (1 + np.abs(kl)))


@pytest.mark.parametrize("a, b", [(0.05, 0.3), (0.5, 0.5), (2.0, 7.0), (30.0, 4.0)])
def test_samplers_match_scipy_by_ks(a, b):
    dist, oracle = Beta(a, b), stats.beta(a, b)
    for method in (dist.sample, dist.rsample):
        assert_draws_match(method(np.random.default_rng(12), 20_000).data, oracle)


@pytest.mark.parametrize("a, b", [(0.4, 2.0), (3.0, 1.2)])
def test_score_function_has_mean_zero(a, b):
    """E_p[∇_θ log p(x)] = ∇_θ ∫ p = 0, for θ = α and θ = β."""
    assert_score_has_mean_zero(Beta, a, b)


@pytest.mark.parametrize("a, b", [(0.2, 0.7), (1.0, 1.0), (4.0, 9.0)])
def test_rsample_gradient_is_unbiased(a, b):
    """E[dx/dα] = d/dα α/(α + β) = β/(α + β)²,  E[dx/dβ] = −α/(α + β)² (Monte Carlo, 5 SE)."""
    n = 20_000
    alpha = Tensor(np.full(n, a), requires_grad=True)
    beta = Tensor(np.full(n, b), requires_grad=True)
    Beta(alpha, beta).rsample(np.random.default_rng(6)).sum().backward()
    for per_draw, expected in ((alpha.grad, b / (a + b) ** 2), (beta.grad, -a / (a + b) ** 2)):
        assert abs(per_draw.mean() - expected) <= 5 * per_draw.std() / np.sqrt(n)


@settings(max_examples=6)  # each example gradchecks the float-range KL graph (~3 s)
@given(a=log_uniform((3,), 0.2, 20), b=log_uniform((3,), 0.2, 20),
       x=hnp.arrays(np.float64, (2, 3), elements=st.floats(0.05, 0.95)),
       other=log_uniform((2, 3), 0.2, 20))
def test_gradients_of_log_prob_entropy_and_kl(a, b, x, other):
    assert gradcheck(lambda s, t, v: Beta(s, t).log_prob(v), a, b, x)
    assert gradcheck(lambda s, t: Beta(s, t).entropy(), a, b)
    assert gradcheck(lambda s, t, c, d: kl_divergence(Beta(s, t), Beta(c, d)),
                     a, b, other[0], other[1])


@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_parameters_raise_naming_them(bad):
    assert_parameters_are_checked(Beta, ("concentration1", "concentration0"), bad)


def test_float32_is_preserved():
    a, b = np.array([0.5, 3.0], np.float32), np.array([1.0, 2.0], np.float32)
    assert_float32_throughout(Beta, (a, b), np.array([0.25, 0.5], np.float32),
                              lambda dist: [kl_divergence(dist, Beta(b, a))])


def test_sample_shapes():
    dist, rng = Beta(np.array([0.5, 1.0, 4.0]), np.array([[2.0], [3.0]])), np.random.default_rng(0)
    assert dist.batch_shape == (2, 3) and dist.event_shape == ()
    for method in (dist.sample, dist.rsample):
        assert method(rng).shape == (2, 3)
        assert method(rng, (5, 4)).shape == (5, 4, 2, 3)
    assert dist.log_prob(dist.sample(rng, 5)).shape == (5, 2, 3)

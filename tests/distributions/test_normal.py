"""Normal: densities against scipy.stats, KL against quadrature and Monte Carlo, gradients.

scipy is the independent oracle here; the library itself never imports it.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import integrate, stats

from minivae import Tensor, gradcheck
from minivae.distributions import Independent, Normal, cross_entropy, kl_divergence
from tests.distributions.helpers import assert_finite, floats, leaf, reals


@st.composite
def normal_parameters(draw, shape=(3,)):
    """(loc, scale) with scale drawn log-uniformly in [0.1, 10]."""
    loc = draw(reals(shape, -5, 5), label="loc")
    scale = np.exp(draw(reals(shape, np.log(0.1), np.log(10.0)), label="log_scale"))
    return loc, scale


@given(params=normal_parameters(shape=(2, 3)), x=reals((4, 1, 3), -30, 30))
def test_log_prob_and_entropy_match_scipy(params, x):
    loc, scale = params
    dist = Normal(loc, scale)
    np.testing.assert_allclose(dist.log_prob(x).data, stats.norm.logpdf(x, loc, scale),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dist.entropy().data, stats.norm.entropy(loc, scale), rtol=1e-10)


def test_log_prob_is_minus_infinity_at_infinity():
    values = Normal(0.0, 1.0).log_prob(np.array([-np.inf, np.inf])).data
    assert np.all(values == -np.inf)


@given(params=normal_parameters())
def test_mean_and_variance(params):
    loc, scale = params
    dist = Normal(loc, scale)
    np.testing.assert_allclose(dist.mean.data, stats.norm.mean(loc, scale), rtol=1e-12)
    np.testing.assert_allclose(dist.variance.data, stats.norm.var(loc, scale), rtol=1e-12)
    np.testing.assert_allclose(dist.stddev.data, scale, rtol=0)


@given(params=normal_parameters(), x=reals((3,), -40, 40))
def test_cdf_matches_scipy_and_has_gradients(params, x):
    loc, scale = params
    dist = Normal(loc, scale)
    expected = stats.norm.cdf(x, loc, scale)
    np.testing.assert_allclose(dist.cdf(x).data, expected, rtol=1e-10, atol=1e-300)
    assert gradcheck(lambda m, s, v: Normal(m, s).cdf(v), loc, scale, np.clip(x, -4, 4) * scale)


def test_samples_have_the_normal_distribution():
    loc, scale = 1.5, 0.7
    n = 40_000
    draws = Normal(loc, scale).sample(np.random.default_rng(3), (n,)).data
    standard_error = scale / np.sqrt(n)
    assert abs(draws.mean() - loc) <= 5 * standard_error
    # Var of the sample variance of a Gaussian is 2σ⁴/(n − 1).
    assert abs(draws.var(ddof=1) - scale**2) <= 5 * np.sqrt(2 * scale**4 / (n - 1))
    assert stats.kstest(draws, stats.norm(loc, scale).cdf).pvalue > 1e-3


@given(params=normal_parameters())
@settings(max_examples=20)
def test_rsample_is_differentiable_in_the_parameters(params):
    loc, scale = params

    def draw(m, s):  # the same noise every call: z is a deterministic function of (μ, σ)
        return Normal(m, s).rsample(np.random.default_rng(7), (2,))

    assert gradcheck(draw, loc, scale)
    m, s = Tensor(loc, requires_grad=True), Tensor(scale, requires_grad=True)
    draw(m, s).sum().backward()
    noise = np.random.default_rng(7).standard_normal((2, 3))
    np.testing.assert_allclose(m.grad, 2.0)           # dz/dμ = 1 per draw
    np.testing.assert_allclose(s.grad, noise.sum(0))  # dz/dσ = ε


@given(p=normal_parameters(), q=normal_parameters(), x=reals((3,), -5, 5))
@settings(max_examples=20)
def test_log_prob_entropy_and_kl_gradients(p, q, x):
    assert gradcheck(lambda m, s, v: Normal(m, s).log_prob(v), *p, x)
    assert gradcheck(lambda s: Normal(0.0, s).entropy(), p[1])
    assert gradcheck(lambda a, b, c, d: kl_divergence(Normal(a, b), Normal(c, d)), *p, *q)
    assert gradcheck(lambda a, b, c, d: cross_entropy(Normal(a, b), Normal(c, d)), *p, *q)


def quadrature(integrand, loc, scale):
    """∫ integrand over loc ± 40 scale (the Gaussian mass outside is below e^-800)."""
    value, _ = integrate.quad(integrand, loc - 40 * scale, loc + 40 * scale, epsabs=0,
                              epsrel=1e-13, limit=500, points=[loc])
    return value


@given(loc_p=floats(-3, 3), scale_p=floats(0.3, 3), loc_q=floats(-3, 3), scale_q=floats(0.3, 3))
@settings(max_examples=25)
def test_kl_matches_quadrature(loc_p, scale_p, loc_q, scale_q):
    p, q = stats.norm(loc_p, scale_p), stats.norm(loc_q, scale_q)
    expected = quadrature(lambda z: p.pdf(z) * (p.logpdf(z) - q.logpdf(z)), loc_p, scale_p)
    kl = kl_divergence(Normal(loc_p, scale_p), Normal(loc_q, scale_q)).item()
    # Relative 1e-8; the absolute floor covers KL ≈ 0, where quad's rounding error dominates.
    assert kl == pytest.approx(expected, rel=1e-8, abs=1e-11)
    cross = quadrature(lambda z: -p.pdf(z) * q.logpdf(z), loc_p, scale_p)
    assert cross_entropy(Normal(loc_p, scale_p), Normal(loc_q, scale_q)).item() == \
        pytest.approx(cross, rel=1e-8)


def test_kl_matches_monte_carlo():
    rng = np.random.default_rng(11)
    loc_p, scale_p, loc_q, scale_q = 0.3, 0.8, -0.5, 1.6
    z = rng.normal(loc_p, scale_p, 100_000)
    terms = stats.norm.logpdf(z, loc_p, scale_p) - stats.norm.logpdf(z, loc_q, scale_q)
    standard_error = terms.std(ddof=1) / np.sqrt(z.size)
    kl = kl_divergence(Normal(loc_p, scale_p), Normal(loc_q, scale_q)).item()
    assert abs(terms.mean() - kl) <= 5 * standard_error


@given(p=normal_parameters(), q=normal_parameters())
def test_kl_is_nonnegative_and_zero_on_the_diagonal(p, q):
    assert np.all(kl_divergence(Normal(*p), Normal(*q)).data >= 0)
    np.testing.assert_allclose(kl_divergence(Normal(*p), Normal(*p)).data, 0.0, atol=1e-12)


@given(p=normal_parameters(), q=normal_parameters())
def test_kl_is_cross_entropy_minus_entropy(p, q):
    p_dist, q_dist = Normal(*p), Normal(*q)
    np.testing.assert_allclose(kl_divergence(p_dist, q_dist).data,
                               (cross_entropy(p_dist, q_dist) - p_dist.entropy()).data,
                               rtol=1e-9, atol=1e-9)
    # cross_entropy(p, p) is the entropy
    np.testing.assert_allclose(cross_entropy(p_dist, p_dist).data, p_dist.entropy().data,
                               rtol=1e-12)


@given(params=normal_parameters(shape=(4,)), noise=reals((4,), -3, 3))
def test_diagonal_gaussian_change_of_variables(params, noise):
    """z = μ + σ ⊙ ε has density N(ε; 0, I) / Π_j σ_j, which is N(z; μ, diag σ²)."""
    loc, scale = params
    z = loc + scale * noise
    diagonal = Independent(Normal(loc, scale), 1)
    through_noise = stats.norm.logpdf(noise).sum() - np.log(scale).sum()
    assert diagonal.log_prob(z).item() == pytest.approx(through_noise, rel=1e-10)
    full = stats.multivariate_normal(loc, np.diag(scale**2)).logpdf(z)
    assert diagonal.log_prob(z).item() == pytest.approx(full, rel=1e-10)


def test_independent_kl_is_the_sum_over_coordinates():
    p, q = (np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])), (np.zeros(3), np.ones(3))
    total = kl_divergence(Independent(Normal(*p), 1), Independent(Normal(*q), 1)).item()
    assert total == pytest.approx(kl_divergence(Normal(*p), Normal(*q)).data.sum(), rel=1e-12)


def test_score_function_has_zero_mean():
    """E_q[∂/∂θ log q(x)] = ∫ ∂q/∂θ dx = ∂/∂θ ∫ q dx = 0 for θ = μ and θ = σ."""
    n = 50_000
    loc = Tensor(np.full(n, 0.4), requires_grad=True)  # one copy of μ per draw: per-draw scores
    scale = Tensor(np.full(n, 1.3), requires_grad=True)
    dist = Normal(loc, scale)
    dist.log_prob(dist.sample(np.random.default_rng(5))).sum().backward()
    for score in (loc.grad, scale.grad):
        assert abs(score.mean()) <= 5 * score.std(ddof=1) / np.sqrt(n)


@pytest.mark.parametrize("name, loc, scale, expected", [
    ("scale", 0.0, 0.0, "positive"),
    ("scale", 0.0, -1.0, "positive"),
    ("scale", 0.0, np.inf, "positive and finite"),
    ("scale", 0.0, np.nan, "positive"),
    ("loc", np.nan, 1.0, "finite"),
    ("loc", np.array([0.0, np.inf]), 1.0, "finite"),
])
def test_invalid_parameters_raise_value_errors_naming_them(name, loc, scale, expected):
    with pytest.raises(ValueError, match=rf"^{name} must be {expected}"):
        Normal(loc, scale)
    Normal(loc, scale, validate_args=False)  # the check can be switched off


def test_bad_arguments_raise_type_errors():
    with pytest.raises(TypeError, match="rng"):
        Normal(0.0, 1.0).sample(0)
    with pytest.raises(TypeError, match="scale"):
        Normal(np.zeros(2, np.float32), np.ones(2))
    with pytest.raises(TypeError, match="dtype"):
        kl_divergence(Normal(np.zeros(2, np.float32), 1.0), Normal(np.zeros(2), 1.0))


def test_float32_is_preserved():
    p = Normal(np.array([0.0, 1.0], np.float32), np.float32(2.0))
    q = Normal(np.float32(1.0), np.array([1.0, 3.0], np.float32))
    rng = np.random.default_rng(0)
    x = p.rsample(rng, (3,))
    outputs = [x, p.sample(rng), p.log_prob(x), p.log_prob(np.float32(0.5)), p.entropy(), p.mean,
               p.variance, p.cdf(x), kl_divergence(p, q), cross_entropy(p, q)]
    assert all(out.dtype == np.float32 for out in outputs)


def test_shapes_follow_sample_batch_event():
    dist = Normal(np.zeros((3, 1)), np.ones(4))
    assert dist.batch_shape == (3, 4) and dist.event_shape == ()
    x = dist.sample(np.random.default_rng(0), (5, 2))
    assert x.shape == (5, 2, 3, 4)
    assert dist.rsample(np.random.default_rng(0)).shape == (3, 4)
    assert dist.log_prob(x).shape == (5, 2, 3, 4)
    assert dist.log_prob(0.0).shape == (3, 4)
    assert dist.entropy().shape == dist.mean.shape == dist.variance.shape == (3, 4)
    assert kl_divergence(dist, Normal(np.zeros(4), 2.0)).shape == (3, 4)
    diagonal = Independent(dist, 1)
    assert diagonal.batch_shape == (3,) and diagonal.event_shape == (4,)
    assert diagonal.sample(np.random.default_rng(0), (5,)).shape == (5, 3, 4)
    assert diagonal.log_prob(x).shape == (5, 2, 3)


# -- at extreme scales -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, log_scale", [
    (np.float32, 25.0), (np.float32, -25.0),  # log σ² = ±50: σ⁻² and σ² fit in float32
    (np.float64, 50.0), (np.float64, -50.0),  # log σ = ±50: e^±100 fits in float64
])
def test_normal_at_extreme_log_scale(dtype, log_scale):
    loc, s = leaf([0.5, -2.0], dtype), leaf([log_scale, log_scale], dtype)
    p = Normal(loc, s.exp())
    z = p.rsample(np.random.default_rng(3), (5,))
    values = [p.log_prob(z).sum(), p.entropy().sum(),
              kl_divergence(p, Normal(np.zeros(2, dtype), np.ones(2, dtype))).sum(),
              p.log_prob(np.zeros(2, dtype)).sum()]
    for value in values:
        assert_finite(value.data)
    # H = ½(1 + log 2π) + log σ, exact in the log-scale
    np.testing.assert_allclose(p.entropy().data, 0.5 * (1 + np.log(2 * np.pi)) + log_scale,
                               rtol=1e-6)
    sum(values[1:], values[0]).backward()
    assert_finite(loc.grad, s.grad)

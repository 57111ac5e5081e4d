"""The bias of fitting θ with q held fixed, on the scalar linear-Gaussian model.

The closed forms are checked against quadrature (scipy.integrate.quad over z, the posterior
built by Bayes' rule from the joint), Monte Carlo and scipy.stats; the maximizers against a
bounded scalar search and against the values derived by hand in the module docstring.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

from minivae.models import LinearGaussian
from minivae.topics.fixed_q_bias import (
    FixedQProblem,
    bias,
    bias_maximizer,
    elbo,
    elbo_maximizer,
    log_marginal,
    mle,
)
from tests.helpers import demo

SIGMA = 0.8


def problem(seed=0, n=5, theta_true=1.3):
    rng = np.random.default_rng(seed)
    x = theta_true * rng.standard_normal(n) + SIGMA * rng.standard_normal(n)
    return FixedQProblem(x, SIGMA, rng.normal(size=n), rng.uniform(0.3, 1.5, size=n))


def joint_density(x_i, theta, z):
    return stats.norm.pdf(z) * stats.norm.pdf(x_i, theta * z, SIGMA)


def test_log_marginal_matches_scipy():
    p = problem()
    for theta in (0.0, 0.4, 1.7):
        expected = stats.norm.logpdf(p.x, 0.0, math.sqrt(theta**2 + SIGMA**2)).sum()
        assert log_marginal(p, theta) == pytest.approx(expected, rel=1e-13)
        model = LinearGaussian(np.array([[theta]]), np.zeros(1), SIGMA)
        assert log_marginal(p, theta) == pytest.approx(
            model.log_marginal(p.x[:, None]).data.sum(), rel=1e-12)


def test_elbo_matches_quadrature_and_monte_carlo():
    p, theta = problem(1), 0.9
    by_quadrature = 0.0
    for x_i, mu, tau in zip(p.x, p.loc, p.scale):
        def integrand(z, x_i=x_i, mu=mu, tau=tau):
            q = stats.norm(mu, tau)
            return q.pdf(z) * (math.log(joint_density(x_i, theta, z)) - q.logpdf(z))
        by_quadrature += integrate.quad(integrand, mu - 12 * tau, mu + 12 * tau,
                                        epsabs=1e-13)[0]
    assert elbo(p, theta) == pytest.approx(by_quadrature, abs=1e-9)

    rng = np.random.default_rng(2)
    z = p.loc + p.scale * rng.standard_normal((200_000, len(p.x)))
    log_w = (stats.norm.logpdf(z) + stats.norm.logpdf(p.x, theta * z, SIGMA)
             - stats.norm.logpdf(z, p.loc, p.scale)).sum(axis=1)
    assert abs(elbo(p, theta) - log_w.mean()) < 5 * log_w.std() / math.sqrt(len(log_w))


def test_bias_matches_quadrature():
    """B = −Σ KL(q_i ‖ p_θ(z|x_i)), the posterior from Bayes' rule: joint / ∫ joint dz."""
    p = problem(3)
    for theta in (0.2, 1.1):
        total = 0.0
        for x_i, mu, tau in zip(p.x, p.loc, p.scale):
            evidence = integrate.quad(lambda z, x_i=x_i, theta=theta: joint_density(x_i, theta, z),
                                      -np.inf, np.inf, epsabs=1e-14)[0]

            def integrand(z, x_i=x_i, mu=mu, tau=tau, evidence=evidence, theta=theta):
                q = stats.norm(mu, tau)
                posterior = joint_density(x_i, theta, z) / evidence
                return q.pdf(z) * (q.logpdf(z) - math.log(posterior))
            total -= integrate.quad(integrand, mu - 12 * tau, mu + 12 * tau, epsabs=1e-13)[0]
        assert bias(p, theta) == pytest.approx(total, abs=1e-8)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), theta=st.floats(0.0, 5.0))
def test_elbo_is_log_marginal_plus_bias(seed, theta):
    p = problem(seed)
    assert bias(p, theta) <= 0.0
    assert elbo(p, theta) == pytest.approx(log_marginal(p, theta) + bias(p, theta),
                                           rel=1e-11, abs=1e-11)


def test_maximizers_match_a_numerical_search():
    p = problem(4, n=40)
    for objective, closed_form in ((log_marginal, mle(p)), (elbo, elbo_maximizer(p))):
        search = optimize.minimize_scalar(lambda t, f=objective: -f(p, t), bounds=(0.0, 5.0),
                                          method="bounded", options={"xatol": 1e-10})
        assert closed_form == pytest.approx(search.x, abs=1e-6)
    search = optimize.minimize_scalar(lambda t: -bias(p, t), bounds=(0.0, 5.0),
                                      method="bounded", options={"xatol": 1e-10})
    assert bias_maximizer(p, 5.0) == pytest.approx(search.x, abs=1e-6)


def test_mle_is_zero_when_the_data_are_no_wider_than_the_noise():
    p = FixedQProblem(np.array([0.1, -0.2, 0.3]), SIGMA, 0.0, 1.0)
    assert mle(p) == 0.0
    assert log_marginal(p, 0.0) > log_marginal(p, 1e-3)


@pytest.mark.parametrize("theta0", [0.3, 2.5])
def test_bias_is_maximal_where_q_is_the_posterior(theta0):
    """q_i = p_θ₀(z|x_i): B(θ₀) = 0 ≥ B elsewhere, so argmax B = θ₀, not the MLE."""
    p = FixedQProblem.posterior_at(problem(5, n=60).x, SIGMA, theta0)
    assert bias(p, theta0) == pytest.approx(0.0, abs=1e-12)
    assert bias_maximizer(p, 6.0) == pytest.approx(theta0, abs=1e-7)
    v = np.mean(p.x**2)
    assert bias_maximizer(p, 6.0) - mle(p) == pytest.approx(theta0 - math.sqrt(v - SIGMA**2),
                                                            abs=1e-7)
    assert abs(bias_maximizer(p, 6.0) - mle(p)) > 0.2


def test_one_em_step_from_a_stale_posterior_is_the_derived_value():
    """θ_ELBO = θ₀ v c₀ / (θ₀² v + σ² c₀), v = mean x², c₀ = θ₀² + σ²: between θ₀ and the
    MLE, and equal to both at the MLE (a fixed point of EM)."""
    x = problem(6, n=80).x
    v = np.mean(x**2)
    theta_mle = math.sqrt(v - SIGMA**2)
    for theta0 in (0.3, 2.5):
        c0 = theta0**2 + SIGMA**2
        step = elbo_maximizer(FixedQProblem.posterior_at(x, SIGMA, theta0))
        assert step == pytest.approx(theta0 * v * c0 / (theta0**2 * v + SIGMA**2 * c0),
                                     rel=1e-12)
        assert min(theta0, theta_mle) < step < max(theta0, theta_mle)
    at_mle = FixedQProblem.posterior_at(x, SIGMA, theta_mle)
    assert elbo_maximizer(at_mle) == pytest.approx(theta_mle, rel=1e-12)
    assert bias_maximizer(at_mle, 6.0) == pytest.approx(theta_mle, abs=1e-7)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="scale"):
        FixedQProblem(np.ones(3), SIGMA, 0.0, -1.0)
    with pytest.raises(ValueError, match="x must be a non-empty 1-D array"):
        FixedQProblem(np.ones((2, 2)), SIGMA, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma"):
        FixedQProblem.posterior_at(np.ones(3), 0.0, 1.0)
    with pytest.raises(ValueError, match="theta_max"):
        bias_maximizer(problem(), 0.0)


def test_demo_marks_the_three_maximizers(tmp_path):
    fixed_q_bias = demo("fixed_q_bias")
    result = fixed_q_bias.main(fixed_q_bias.parse_args(["--out", str(tmp_path), "--n", "30",
                                                        "--quiet"]))
    assert result["theta_B"] == pytest.approx(result["theta0"], abs=1e-6)
    assert min(result["theta0"], result["theta_mle"]) < result["theta_elbo"] \
        < max(result["theta0"], result["theta_mle"])
    assert (tmp_path / "fixed_q_bias.png").stat().st_size > 1000

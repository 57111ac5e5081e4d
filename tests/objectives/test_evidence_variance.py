"""The closed-form spread of Monte Carlo estimates of p(x), against quadrature, enumeration and
simulation: χ² of two Gaussians by scipy.integrate.quad, the hit probability by counting, and
the replicate spread of the library's estimators against √(χ²/n)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from minivae.distributions import Independent, Normal
from minivae.models import LinearGaussian
from minivae.objectives.evidence_variance import (
    gaussian_relative_second_moment,
    hit_probability,
)
from minivae.objectives.likelihood import (
    importance_sampling_log_likelihood,
    prior_sampling_log_likelihood,
)


@settings(max_examples=20)
@given(a=st.floats(-3, 3), A=st.floats(0.2, 2), m=st.floats(-3, 3), widen=st.floats(0.8, 3))
def test_gaussian_second_moment_matches_quadrature(a, A, m, widen):
    """quad of N(z; a, A)²/N(z; m, S), written with scipy's log-densities (no 0/0 in the
    tails), over ±30 widths of the integrand's own bell (its precision is 2/A − 1/S > 0)."""
    S = widen * A
    integrand = lambda z: math.exp(2 * stats.norm.logpdf(z, a, math.sqrt(A))
                                   - stats.norm.logpdf(z, m, math.sqrt(S)))
    precision = 2 / A - 1 / S
    centre, width = (2 * a / A - m / S) / precision, 1 / math.sqrt(precision)
    expected = integrate.quad(integrand, centre - 30 * width, centre + 30 * width,
                              points=[centre], limit=200, epsabs=0, epsrel=1e-11)[0]
    np.testing.assert_allclose(gaussian_relative_second_moment(a, math.sqrt(A), m, math.sqrt(S)),
                               expected, rtol=1e-8)


def test_second_moment_is_one_at_the_posterior_and_infinite_when_too_narrow():
    assert gaussian_relative_second_moment(1.3, 0.4, 1.3, 0.4) == pytest.approx(1.0, rel=1e-15)
    narrow = gaussian_relative_second_moment(0.0, 1.0, 0.0, 0.6)  # 2S = 0.72 < A = 1
    assert narrow == np.inf


@pytest.mark.parametrize("size, draws", [(2, 1), (3, 4), (5, 3), (6, 2)])
def test_hit_probability_matches_enumeration(size, draws):
    hits = sum(0 in sequence for sequence in itertools.product(range(size), repeat=draws))
    assert hit_probability(size, draws) == pytest.approx(hits / size**draws, rel=1e-14)


def test_hit_probability_keeps_its_digits_for_huge_sets():
    assert hit_probability(10**15, 10) == pytest.approx(1e-14, rel=1e-9)  # 1 − (1 − ε)¹⁰ ≈ 10ε
    assert hit_probability(1000, 10) == pytest.approx(1 - 0.999**10, rel=1e-14)


def toy(x, noise_sd, proposal=None):
    """z ~ N(0, 1), x | z ~ N(z, σ²): the one-dimensional linear-Gaussian model."""
    return LinearGaussian(np.ones((1, 1)), np.zeros(1), noise_sd, encoder=proposal)


def test_toy_evidence_matches_quadrature():
    x, sd = 2.5, 0.2
    expected = integrate.quad(lambda z: stats.norm.pdf(z) * stats.norm.pdf(x, z, sd), -12, 12,
                              points=[x / (1 + sd**2)], epsabs=0, epsrel=1e-12)[0]
    np.testing.assert_allclose(np.exp(toy(x, sd).log_marginal(np.array([[x]])).data), expected,
                               rtol=1e-10)


@pytest.mark.parametrize("method", ["prior", "importance"])
def test_importance_sampling_spread_follows_the_closed_form(method):
    """Over 400 replicates of p̂_n (n = 200), the mean is p(x) within 4 standard errors, and
    the spread sd(p̂_n)/p(x) is √(χ²/n) within the sampling error of a standard deviation."""
    x, sd, n, replicates = 2.5, 0.2, 200, 400
    a, A = x / (1 + sd**2), sd**2 / (1 + sd**2)  # the posterior N(a, A)
    loc, scale = (0.0, 1.0) if method == "prior" else (a + 0.05, 1.5 * math.sqrt(A))
    proposal = lambda batch: Independent(Normal(np.full((len(batch.data), 1), loc),
                                                np.full((len(batch.data), 1), scale)), 1)
    model = toy(x, sd, proposal)
    xs = np.full((replicates, 1), x)
    rng = np.random.default_rng(11)
    estimate = (prior_sampling_log_likelihood(model, xs, n, rng) if method == "prior"
                else importance_sampling_log_likelihood(model, xs, n, rng))[0]
    exact = stats.norm.pdf(x, 0, math.sqrt(1 + sd**2))
    relative = np.exp(estimate) / exact
    chi2 = gaussian_relative_second_moment(a, math.sqrt(A), loc, scale) - 1
    predicted = math.sqrt(chi2 / n)
    assert abs(relative.mean() - 1) < 4 * predicted / math.sqrt(replicates)
    # sd of a sample sd ≈ σ √((κ − 1)/(4R)); the weights' excess kurtosis is modest at n = 200
    assert relative.std(ddof=1) == pytest.approx(predicted, rel=0.25)

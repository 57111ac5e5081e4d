"""Gamma's implicit reparameterization: the CDF P(α, x) and its α-derivative against scipy, the
draw's slope against the inverse CDF, and the rsample gradient's expectation.

The implicit gradient holds u = P(α, z) fixed, so it must equal d/dα of z = P⁻¹(α, u) with u
fixed, which scipy.special.gammaincinv gives independently.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import special

from minivae import Tensor, gradcheck
from minivae.distributions.gamma import Gamma
from minivae.distributions.incomplete_gamma import incomplete_gamma_pieces
from tests.distributions.helpers import assert_finite, leaf

alphas = st.floats(np.log(0.01), np.log(1e3)).map(np.exp)


quantiles = st.lists(st.floats(1e-6, 1 - 1e-6), min_size=1, max_size=6).map(np.array)


@given(alpha=alphas, u=quantiles)
def test_cdf_and_its_alpha_derivative_match_scipy(alpha, u):
    x = special.gammaincinv(alpha, u)
    x = x[x > 1e-300]  # the quantile of u may underflow for tiny α
    cdf, d_cdf, _ = incomplete_gamma_pieces(np.full(x.shape, alpha), np.log(x))
    np.testing.assert_allclose(cdf, special.gammainc(alpha, x), rtol=1e-10, atol=1e-300)
    step = 1e-6 * alpha
    central = (special.gammainc(alpha + step, x) - special.gammainc(alpha - step, x)) / (2 * step)
    np.testing.assert_allclose(d_cdf, central, rtol=1e-5, atol=1e-12)


@given(alpha=st.floats(np.log(0.05), np.log(1e3)).map(np.exp), u=quantiles)
def test_implicit_derivative_follows_the_inverse_cdf(alpha, u):
    z = special.gammaincinv(alpha, u)
    _, _, slope = incomplete_gamma_pieces(np.full(z.shape, alpha), np.log(z))
    step = 1e-6 * alpha
    central = (np.log(special.gammaincinv(alpha + step, u))
               - np.log(special.gammaincinv(alpha - step, u))) / (2 * step)
    np.testing.assert_allclose(slope, central, rtol=1e-5, atol=1e-9)


def test_cdf_edges():
    cdf = Gamma(np.array([0.5, 2.0, 2.0]), 1.0).cdf(np.array([-1.0, 0.0, np.inf]))
    np.testing.assert_array_equal(cdf.data, [0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="x must be free of NaN"):
        Gamma(1.0, 1.0).cdf(np.nan)


@settings(max_examples=20)
@given(alpha=st.floats(0.3, 30), rate=st.floats(0.2, 5), u=st.floats(0.2, 0.98))
def test_cdf_gradcheck(alpha, rate, u):
    # quantiles on both sides of α + 1 use both the series and the continued fraction; lower
    # ones would put x where the density changes too fast for a central difference
    x = special.gammaincinv(alpha, np.array([u, 0.5, 0.999])) / rate
    assert gradcheck(lambda a, b, v: Gamma(a, b).cdf(v), np.full(3, alpha), np.full(3, rate), x)


@pytest.mark.parametrize("alpha, rate", [(0.1, 1.0), (1.0, 2.0), (3.5, 0.5), (50.0, 4.0)])
def test_rsample_gradient_is_unbiased(alpha, rate):
    """E[dz/dα] = d/dα E[z] = 1/β and E[dz/dβ] = d/dβ (α/β) = −α/β² (Monte Carlo, 5 SE)."""
    n = 20_000
    a = Tensor(np.full(n, alpha), requires_grad=True)
    b = Tensor(np.full(n, rate), requires_grad=True)
    Gamma(a, b).rsample(np.random.default_rng(5)).sum().backward()
    for per_draw, expected in ((a.grad, 1 / rate), (b.grad, -alpha / rate**2)):
        assert abs(per_draw.mean() - expected) <= 5 * per_draw.std() / np.sqrt(n)


def test_rsample_gradcheck_in_rate():
    """z/β is an exact reparameterization in β: with the noise fixed, central differences hold."""
    alpha = np.array([0.3, 2.0, 9.0])

    def draw(rate):
        return Gamma(alpha, rate).rsample(np.random.default_rng(8), 4)

    assert gradcheck(draw, np.array([0.5, 1.0, 3.0]))


def test_rsample_handles_tiny_concentration():
    """For α = 0.002 most Gamma(α, 1) draws round to 0; the draw and its gradient stay finite."""
    a = Tensor(np.full(1000, 0.002), requires_grad=True)
    z = Gamma(a, 1.0).rsample(np.random.default_rng(2))
    z.sum().backward()
    assert np.all(np.isfinite(z.data)) and np.all(np.isfinite(a.grad))


def test_reparameterized_gamma_family_refuses_concentrations_beyond_its_gradient():
    """Above 1e8 the implicit gradient's series would not converge: a clear error up front,
    while ``sample`` (no gradient) still draws."""
    from minivae.distributions import Beta, Dirichlet, Gamma

    huge = leaf([1e30], np.float64)
    for d in (Gamma(huge, 1.0), Beta(huge, 1.0), Dirichlet(huge)):
        with pytest.raises(ValueError, match="at most 1e\\+08 for a reparameterized draw"):
            d.rsample(np.random.default_rng(0))
        assert np.all(np.isfinite(d.sample(np.random.default_rng(0)).data))
    big = leaf([1e6, 2.0], np.float64)  # within the limit: finite draw and gradient
    Gamma(big, 1.0).rsample(np.random.default_rng(0)).sum().backward()
    assert_finite(big.grad)

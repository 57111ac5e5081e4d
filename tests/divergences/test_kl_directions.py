"""Reverse KL seeks a mode, forward KL covers them, and what access to p each direction needs."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from minivae import Tensor
from minivae.distributions import GaussianMixture
from minivae.divergences.kl_directions import (
    cross_entropy_from_samples,
    fit_forward_kl,
    fit_reverse_kl,
    forward_kl_1d,
    local_minima,
    reverse_kl_1d,
    reverse_kl_estimate,
)
from minivae.divergences.quadrature import trapezoid, uniform_grid
from tests.helpers import demo


def two_modes(m, s, dtype=np.float64):
    """p = ½ N(−m, s²) + ½ N(m, s²) over 1-vectors."""
    return GaussianMixture(np.zeros(2, dtype), np.array([[-m], [m]], dtype),
                           np.array([[s], [s]], dtype))


def log_p_on(grid, m, s):
    return two_modes(m, s).log_prob(grid[:, None]).data


def exact_reverse_optimum(m, s, side):
    """The reverse-KL minimum near the mode at side·m, by a deterministic optimizer."""
    grid = uniform_grid(-m - 20 * s, m + 20 * s, 6001)
    log_p = log_p_on(grid, m, s)
    result = optimize.minimize(lambda t: reverse_kl_1d(log_p, t[0], np.exp(t[1]), grid),
                               [side * m, np.log(s)], method="Nelder-Mead",
                               options=dict(xatol=1e-7, fatol=1e-12))
    return result.x[0], np.exp(result.x[1])


def gaussian_kl(mu1, s1, mu2, s2):
    """KL(N(μ₁, s₁²) ‖ N(μ₂, s₂²)), closed form."""
    return np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5


@given(log_normalizer=st.floats(-20, 20), loc=st.floats(-4, 4), scale=st.floats(0.2, 4))
@settings(max_examples=20)
def test_reverse_kl_objective_shifts_by_log_normalizer(log_normalizer, loc, scale):
    """With p̃ = Z p the objective is the one with p minus log Z, for every q, and its
    gradient is the same: the argmin over q does not depend on Z."""
    target = two_modes(3.0, 1.0)
    noise = np.random.default_rng(1).standard_normal((64, 1))
    results = []
    for shift in (0.0, log_normalizer):
        mean = Tensor(np.array([loc]), requires_grad=True)
        log_scale = Tensor(np.array([np.log(scale)]), requires_grad=True)
        value = reverse_kl_estimate(lambda z, c=shift: target.log_prob(z) + c, mean, log_scale,
                                    noise)
        value.backward()
        results.append((float(value.data), mean.grad.copy(), log_scale.grad.copy()))
    (with_p, grad_loc, grad_scale), (with_tilde, grad_loc_z, grad_scale_z) = results
    assert with_tilde == pytest.approx(with_p - log_normalizer, abs=1e-9)
    np.testing.assert_allclose(grad_loc_z, grad_loc, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_scale_z, grad_scale, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loc, scale", [(3.0, 1.0), (0.0, 2.5), (-1.0, 0.5)])
def test_reverse_kl_estimate_matches_quadrature(loc, scale):
    """The Monte Carlo objective is unbiased for KL(q‖p) (p normalized): within 5 SE."""
    m, s, n = 3.0, 1.0, 20_000
    target = two_modes(m, s)
    noise = np.random.default_rng(2).standard_normal((n, 1))
    estimate = reverse_kl_estimate(target.log_prob, Tensor(np.array([loc])),
                                   Tensor(np.array([np.log(scale)])), noise).data
    terms = -stats.norm.logpdf(loc + scale * noise[:, 0], -m, s) + np.log(2) - np.logaddexp(
        0, stats.norm.logpdf(loc + scale * noise[:, 0], m, s)
        - stats.norm.logpdf(loc + scale * noise[:, 0], -m, s))
    standard_error = terms.std() / np.sqrt(n)  # −log p(z) is the only noisy part
    grid = uniform_grid(-40, 40, 8001)
    exact = reverse_kl_1d(log_p_on(grid, m, s), loc, scale, grid)
    assert abs(estimate - exact) <= 5 * standard_error


def test_forward_kl_from_samples_is_quadrature_plus_entropy():
    """From samples of p alone, −(1/n) Σ log q(xᵢ) equals KL(p‖q) + H(p): the same
    q-independent constant H(p) for every q (within 5 SE each)."""
    m, s, n = 3.0, 1.0, 20_000
    draws = two_modes(m, s).sample(np.random.default_rng(3), (n,)).data[:, 0]
    grid = uniform_grid(-40, 40, 8001)
    log_p = log_p_on(grid, m, s)
    entropy = -trapezoid(np.exp(log_p) * log_p, grid)
    for loc, scale in [(0.0, 3.0), (2.0, 1.0), (-1.0, 5.0), (3.0, 0.7)]:
        estimate = cross_entropy_from_samples(draws, loc, scale)
        standard_error = stats.norm.logpdf(draws, loc, scale).std() / np.sqrt(n)
        assert abs(estimate - forward_kl_1d(log_p, loc, scale, grid) - entropy) \
            <= 5 * standard_error


def test_importance_weights_give_forward_cross_entropy_from_the_density():
    """The table's second row: with p(x) but no samples, E_q[(p/q)(−log q)] is E_p[−log q]."""
    m, s, n, loc, scale = 3.0, 1.0, 200_000, 0.0, 4.0
    z = np.random.default_rng(4).normal(loc, scale, n)
    log_q = stats.norm.logpdf(z, loc, scale)
    log_p = np.logaddexp(stats.norm.logpdf(z, -m, s), stats.norm.logpdf(z, m, s)) - np.log(2)
    terms = np.exp(log_p - log_q) * -log_q
    grid = uniform_grid(-40, 40, 8001)
    p = np.exp(log_p_on(grid, m, s))
    exact = trapezoid(-p * stats.norm.logpdf(grid, loc, scale), grid)
    assert abs(terms.mean() - exact) <= 5 * terms.std() / np.sqrt(n)


@given(a=st.floats(-3, 3), b=st.floats(0.3, 3), loc=st.floats(-3, 3), scale=st.floats(0.3, 3))
@settings(max_examples=25)
def test_exact_kl_1d_matches_closed_form_between_gaussians(a, b, loc, scale):
    grid = uniform_grid(-40, 40, 8001)
    log_p = stats.norm.logpdf(grid, a, b)
    locs, scales = np.array([[loc, a]]), np.array([[scale, b]])
    np.testing.assert_allclose(forward_kl_1d(log_p, locs, scales, grid),
                               gaussian_kl(a, b, locs, scales), atol=1e-8)
    np.testing.assert_allclose(reverse_kl_1d(log_p, locs, scales, grid),
                               gaussian_kl(locs, scales, a, b), atol=1e-8)


def test_exact_kl_1d_counts_zero_density_terms_as_zero():
    grid = uniform_grid(-10, 10, 4001)
    log_p = np.where(np.abs(grid) <= 1, -np.log(2.0), -np.inf)  # Uniform(−1, 1)
    log_p[np.abs(grid) == 1] = np.log(0.25)  # half the jump: the trapezoid rule is exact
    assert np.isfinite(forward_kl_1d(log_p, 0.0, 1.0, grid))
    assert reverse_kl_1d(log_p, 0.0, 1.0, grid) == np.inf  # q has mass where p has none


@given(ratio=st.floats(3.0, 5.0), s=st.floats(0.5, 2.0))
@settings(max_examples=3)
def test_reverse_kl_landscape_has_two_mirror_global_minima(ratio, s):
    """KL(q‖p) over (μ, log σ) has two global minima, mirror images near ±m, and a third,
    higher local minimum at μ = 0 with a wide σ: μ = 0 is never the global minimum."""
    m = ratio * s
    mus = np.linspace(-1.5 * m, 1.5 * m, 61)  # symmetric, with μ = 0 at index 30
    log_sigmas = np.log(s) + np.linspace(-1.0, 1.0 + np.log(ratio), 41)
    reach = 1.5 * m + 13 * np.exp(log_sigmas[-1])
    grid = uniform_grid(-reach, reach, 6001)
    log_p = log_p_on(grid, m, s)
    landscape = reverse_kl_1d(log_p, mus[:, None], np.exp(log_sigmas)[None, :], grid)
    np.testing.assert_allclose(landscape, landscape[::-1], rtol=1e-9, atol=1e-12)
    minima = sorted(local_minima(landscape))
    assert len(minima) == 3
    (i_left, j_left), (i_mid, j_mid), (i_right, j_right) = minima
    assert i_left + i_right == len(mus) - 1 and j_left == j_right
    assert mus[i_right] == pytest.approx(m, abs=2 * (mus[1] - mus[0]))
    assert i_mid == 30 and np.exp(log_sigmas[j_mid]) > 2 * s
    assert landscape[i_mid, j_mid] > landscape[i_right, j_right] + 0.1
    assert landscape.min() == pytest.approx(landscape[i_right, j_right], rel=1e-12)


def run_fit(m, s, start, seed, steps=700):
    return fit_reverse_kl(two_modes(m, s).log_prob, start * m / 3, 0.5 * s, steps=steps,
                          samples=128, lr=0.04 * s, rng=np.random.default_rng(seed))


def endpoint_tolerance(fit):
    """5 × the spread of the last iterates: the final iterate is one draw from the
    stationary jitter of stochastic Adam around the minimum (plus a small bias allowance)."""
    return 5 * fit.locs[-300:].std(axis=0) + 0.01, 5 * fit.scales[-300:].std(axis=0) + 0.01


@given(ratio=st.floats(3.0, 5.0), s=st.floats(0.5, 2.0))
@settings(max_examples=2)
def test_reverse_kl_fit_goes_to_the_mode_on_its_side(ratio, s):
    m = ratio * s
    for side in (-1, 1):
        fit = run_fit(m, s, side * 1.0, seed=5)
        exact_loc, exact_scale = exact_reverse_optimum(m, s, side)
        loc_tolerance, scale_tolerance = endpoint_tolerance(fit)
        assert np.sign(fit.loc[0]) == side
        assert abs(fit.loc[0] - exact_loc) <= loc_tolerance[0]
        assert abs(fit.scale[0] - exact_scale) <= scale_tolerance[0]


def test_reverse_kl_fits_from_both_sides_are_mirror_images():
    """Two symmetric local minima: μ₊ ≈ −μ₋ and σ₊ ≈ σ₋, and the loss decreased."""
    left, right = run_fit(3.0, 1.0, -1.0, seed=6), run_fit(3.0, 1.0, 1.0, seed=7)
    (loc_l, scale_l), (loc_r, scale_r) = endpoint_tolerance(left), endpoint_tolerance(right)
    assert abs(left.loc[0] + right.loc[0]) <= np.hypot(loc_l[0], loc_r[0])
    assert abs(left.scale[0] - right.scale[0]) <= np.hypot(scale_l[0], scale_r[0])
    for fit in (left, right):
        assert fit.losses[-100:].mean() < fit.losses[:10].mean()
        assert fit.locs.shape == fit.scales.shape == (701, 1) and fit.losses.shape == (700,)


def test_reverse_kl_fit_in_two_dimensions_keeps_float32():
    """d = 2, modes at ±(m, m): a diagonal q started near (1, 1) settles on (m, m)."""
    m = np.float32(3.0)
    target = GaussianMixture(np.zeros(2, np.float32), np.array([[-m, -m], [m, m]]),
                             np.ones((2, 2), np.float32))
    fit = fit_reverse_kl(target.log_prob, np.float32([1.0, 1.0]), np.float32([0.5, 0.5]),
                         steps=600, samples=128, lr=0.04, rng=np.random.default_rng(8))
    assert fit.loc.dtype == fit.scale.dtype == np.float32
    loc_tolerance, scale_tolerance = endpoint_tolerance(fit)
    # far-apart modes: the optimum is the mode's own Gaussian N((m, m), I) to within e^(−m²)
    assert np.all(np.abs(fit.loc - m) <= loc_tolerance)
    assert np.all(np.abs(fit.scale - 1.0) <= scale_tolerance)


@given(ratio=st.floats(1.0, 5.0), s=st.floats(0.5, 2.0))
@settings(max_examples=10)
def test_forward_kl_fit_matches_the_mixture_moments(ratio, s):
    """Mean 0 and variance s² + m² (law of total variance), each within 5 SE."""
    m, n = ratio * s, 20_000
    draws = two_modes(m, s).sample(np.random.default_rng(9), (n,)).data[:, 0]
    fit = fit_forward_kl(draws)
    variance = s**2 + m**2
    fourth_moment = np.mean((draws - draws.mean()) ** 4)
    assert abs(fit.loc[0]) <= 5 * np.sqrt(variance / n)
    assert abs(fit.scale[0] ** 2 - variance) <= 5 * np.sqrt((fourth_moment - variance**2) / n)


@given(draws=st.lists(st.floats(-100, 100), min_size=2, max_size=30).filter(
           lambda x: np.ptp(x) > 1e-3),
       shift=st.floats(-1, 1), stretch=st.floats(-1, 1))
@settings(max_examples=50)
def test_forward_kl_fit_maximizes_the_likelihood(draws, shift, stretch):
    """The moment-matched q has the least cross-entropy −(1/n) Σ log q(xᵢ) of any Gaussian,
    and its value is ½ log(2π σ̂²) + ½."""
    fit = fit_forward_kl(np.array(draws))
    best = cross_entropy_from_samples(draws, fit.loc, fit.scale)
    assert best == pytest.approx(0.5 * np.log(2 * np.pi * fit.scale[0] ** 2) + 0.5, abs=1e-9)
    other = cross_entropy_from_samples(draws, fit.loc + shift * fit.scale,
                                       fit.scale * np.exp(stretch))
    assert best <= other + 1e-12


def test_forward_kl_landscape_has_one_minimum_at_the_moments():
    m, s = 3.0, 1.0
    sigma = np.sqrt(s**2 + m**2)
    grid = uniform_grid(-80, 80, 8001)
    log_p = log_p_on(grid, m, s)
    mus = np.linspace(-2 * m, 2 * m, 41)  # μ = 0 at index 20
    log_sigmas = np.log(sigma) + np.linspace(-1.5, 0.75, 31)  # log σ at index 20
    landscape = forward_kl_1d(log_p, mus[:, None], np.exp(log_sigmas)[None, :], grid)
    assert local_minima(landscape) == [(20, 20)]
    assert np.unravel_index(np.argmin(landscape), landscape.shape) == (20, 20)
    # KL(p‖q) − KL(p‖q*) = log(σ/σ*) + (σ*² + μ²)/(2σ²) − ½, closed form (H(p) cancels)
    np.testing.assert_allclose(landscape - landscape[20, 20],
                               gaussian_kl(0.0, sigma, mus[:, None], np.exp(log_sigmas)),
                               atol=1e-8)


def test_bad_inputs_are_rejected():
    target, rng = two_modes(3.0, 1.0), np.random.default_rng(0)
    with pytest.raises(TypeError, match="log_target"):
        fit_reverse_kl("p", 0.0, 1.0, rng=rng)
    with pytest.raises(TypeError, match="rng"):
        fit_reverse_kl(target.log_prob, 0.0, 1.0, rng=0)
    with pytest.raises(ValueError, match="scale"):
        fit_reverse_kl(target.log_prob, 0.0, -1.0, rng=rng)
    with pytest.raises(ValueError, match="steps"):
        fit_reverse_kl(target.log_prob, 0.0, 1.0, steps=0, rng=rng)
    with pytest.raises(ValueError, match="lr"):
        fit_reverse_kl(target.log_prob, 0.0, 1.0, lr=-1.0, rng=rng)
    with pytest.raises(ValueError, match="log_target"):
        fit_reverse_kl(lambda z: z, 0.0, 1.0, steps=1, rng=rng)
    with pytest.raises(ValueError, match="loc and scale"):
        fit_reverse_kl(target.log_prob, [0.0, 1.0], [1.0], rng=rng)
    with pytest.raises(ValueError, match="samples"):
        fit_forward_kl(np.ones(5))
    with pytest.raises(TypeError, match="samples"):
        fit_forward_kl(np.array(["a", "b"]))
    grid = uniform_grid(-10, 10, 2001)
    with pytest.raises(ValueError, match="normalized"):
        reverse_kl_1d(np.zeros_like(grid), 0.0, 1.0, grid)
    with pytest.raises(ValueError, match="cover"):
        reverse_kl_1d(stats.norm.logpdf(grid), 9.0, 1.0, grid)
    with pytest.raises(ValueError, match="scale"):
        forward_kl_1d(stats.norm.logpdf(grid), 0.0, 0.0, grid)


def test_demo_writes_clear_pictures(tmp_path):
    from matplotlib.image import imread

    kl_directions = demo("kl_directions")
    main, parse_args = kl_directions.main, kl_directions.parse_args

    args: argparse.Namespace = parse_args(["--out", str(tmp_path), "--steps", "60",
                                           "--samples", "32", "--draws", "500",
                                           "--resolution", "15", "--quiet"])
    paths = main(args)
    assert [p.name for p in paths] == ["kl_fits.png", "kl_landscape.png", "kl_access.png"]
    for path in paths:
        assert imread(path).std() > 0.05
    assert not list(tmp_path.glob("*.tmp*"))

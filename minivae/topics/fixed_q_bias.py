"""Fitting θ with q held fixed maximizes log p_θ(x) + B(θ), not log p_θ(x): the bias B.

For any q(z|x) that does not depend on θ, the ELBO splits as

    ELBO(θ) = E_q[log p_θ(x|z)] − KL(q ‖ p(z)) = log p_θ(x) + B(θ),
    B(θ)    = −KL(q(z|x) ‖ p_θ(z|x)) ≤ 0,

(expand log p_θ(x|z) = log p_θ(z|x) + log p_θ(x) − log p(z) under q; the prior has no θ).
So maximizing the expected complete-data log-likelihood over θ (the M-step of EM, or the
θ-step of SVI) is biased towards models whose posterior resembles q.  All three curves are
closed forms on the scalar linear-Gaussian model (``LinearGaussian`` with W = [[θ]], b = 0):

    p(z) = N(0, 1),  p_θ(x|z) = N(θ z, σ²),  data x_1..x_N,  q_i = N(μ_i, τ_i²),  c = θ² + σ²,

    log p(x; θ) = −(N/2) log 2πc − S/(2c),                       S = Σ x_i²,
    p_θ(z|x_i)  = N(m_i, s²),  m_i = θ x_i / c,  s² = σ²/c,
    ELBO(θ)     = Σ_i −½ log 2πσ² − [(x_i − θ μ_i)² + θ² τ_i²]/(2σ²)
                      − ½(μ_i² + τ_i² − 1 − log τ_i²),
    B(θ)        = −Σ_i [log(s/τ_i) + (τ_i² + (μ_i − m_i)²)/(2s²) − ½].

Maximizers (θ ≥ 0: x ~ N(0, θ² + σ²) cannot tell θ from −θ):

    θ_MLE  = √max(S/N − σ², 0)                       (set c = S/N),
    θ_ELBO = Σ x_i μ_i / Σ (μ_i² + τ_i²)            (the ELBO is a concave parabola in θ),
    θ_B    = a 1-D search (grid, then golden section); when q_i = p_θ₀(z|x_i) it is θ₀ exactly
             (B ≤ 0 with B(θ₀) = 0, and s² = σ²/c is one-to-one in θ ≥ 0).

With q_i = p_θ₀(z|x_i) (one E-step at θ₀), θ_ELBO is one EM step from θ₀: with v = S/N and
c₀ = θ₀² + σ², θ_ELBO = θ₀ v c₀ / (θ₀² v + σ² c₀), equal to θ₀ only where θ₀ = θ_MLE.

Verified by: tests/topics/test_fixed_q_bias.py
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from minivae import checks

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclasses.dataclass(frozen=True)
class FixedQProblem:
    """Data x (N,), known noise σ and the fixed q_i = N(loc_i, scale_i²), all float64."""

    x: np.ndarray
    sigma: float
    loc: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        x = np.asarray(self.x, dtype=np.float64)
        if x.ndim != 1 or len(x) < 1:
            raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
        checks.finite(x, "x")
        loc = np.broadcast_to(np.asarray(self.loc, dtype=np.float64), x.shape)
        checks.finite(loc, "loc")
        scale = np.broadcast_to(checks.positive(np.asarray(self.scale, np.float64), "scale"),
                                x.shape)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "sigma", checks.positive(self.sigma, "sigma", number=True))
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)

    @classmethod
    def posterior_at(cls, x, sigma: float, theta0: float) -> FixedQProblem:
        """q_i = p_θ₀(z|x_i) = N(θ₀ x_i/c₀, σ²/c₀), c₀ = θ₀² + σ²: the E-step of EM at θ₀."""
        theta0 = checks.real(theta0, "theta0", 0.0)
        sigma = checks.positive(sigma, "sigma", number=True)
        c0 = theta0**2 + sigma**2
        x = np.asarray(x, dtype=np.float64)
        return cls(x, sigma, theta0 * x / c0, np.full(x.shape, sigma / math.sqrt(c0)))


def log_marginal(problem: FixedQProblem, theta) -> np.ndarray:
    """log p(x; θ) = −(N/2) log 2π(θ² + σ²) − Σ x_i²/(2(θ² + σ²)), for each θ given.

    Verified by: tests/topics/test_fixed_q_bias.py::test_log_marginal_matches_scipy
    """
    c = np.asarray(theta, dtype=np.float64) ** 2 + problem.sigma**2
    n, total = len(problem.x), np.sum(problem.x**2)
    return -0.5 * n * np.log(2.0 * math.pi * c) - total / (2.0 * c)


def elbo(problem: FixedQProblem, theta) -> np.ndarray:
    """Σ_i E_{q_i}[log p_θ(x_i|z)] − KL(q_i ‖ N(0, 1)), for each θ given (q held fixed):

        −½ log 2πσ² − [(x_i − θμ_i)² + θ²τ_i²]/(2σ²) − ½(μ_i² + τ_i² − 1 − log τ_i²) summed.

    Verified by: tests/topics/test_fixed_q_bias.py::test_elbo_matches_quadrature_and_monte_carlo
    """
    theta = np.asarray(theta, dtype=np.float64)[..., None]
    x, mu, tau2, s2 = problem.x, problem.loc, problem.scale**2, problem.sigma**2
    expected_log_lik = -0.5 * np.log(2.0 * math.pi * s2) - ((x - theta * mu) ** 2
                                                            + theta**2 * tau2) / (2.0 * s2)
    kl_to_prior = 0.5 * (mu**2 + tau2 - 1.0 - np.log(tau2))
    return np.sum(expected_log_lik - kl_to_prior, axis=-1)


def bias(problem: FixedQProblem, theta) -> np.ndarray:
    """B(θ) = −Σ_i KL(q_i ‖ p_θ(z|x_i)) with p_θ(z|x_i) = N(θx_i/c, σ²/c), c = θ² + σ²:

        −Σ_i [log(s/τ_i) + (τ_i² + (μ_i − m_i)²)/(2s²) − ½],   ≤ 0, and ELBO = log p + B.

    Verified by: tests/topics/test_fixed_q_bias.py::test_bias_matches_quadrature,
    ::test_elbo_is_log_marginal_plus_bias
    """
    theta = np.asarray(theta, dtype=np.float64)[..., None]
    c = theta**2 + problem.sigma**2
    m, s2 = theta * problem.x / c, problem.sigma**2 / c
    tau2 = problem.scale**2
    kl = 0.5 * np.log(s2 / tau2) + (tau2 + (problem.loc - m) ** 2) / (2.0 * s2) - 0.5
    return -np.sum(kl, axis=-1)


def mle(problem: FixedQProblem) -> float:
    """θ_MLE = √max(S/N − σ², 0), S = Σ x_i²: where c = θ² + σ² equals the data's E[x²].

    Verified by: tests/topics/test_fixed_q_bias.py::test_maximizers_match_a_numerical_search
    """
    return math.sqrt(max(float(np.mean(problem.x**2)) - problem.sigma**2, 0.0))


def elbo_maximizer(problem: FixedQProblem) -> float:
    """θ_ELBO = Σ x_i μ_i / Σ (μ_i² + τ_i²): the vertex of the ELBO's parabola in θ (the EM
    M-step for the fixed q).

    Verified by: tests/topics/test_fixed_q_bias.py::test_maximizers_match_a_numerical_search,
    ::test_one_em_step_from_a_stale_posterior_is_the_derived_value
    """
    return float(np.sum(problem.x * problem.loc)
                 / np.sum(problem.loc**2 + problem.scale**2))


def bias_maximizer(problem: FixedQProblem, theta_max: float, points: int = 2001,
                   tolerance: float = 1e-10) -> float:
    """argmax of B over [0, theta_max]: the best point of a grid, then golden-section search
    in the two grid cells around it (B has no closed-form maximizer for a general q).

    Verified by: tests/topics/test_fixed_q_bias.py::test_bias_is_maximal_where_q_is_the_posterior
    """
    theta_max = checks.positive(theta_max, "theta_max", number=True)
    points = checks.int_at_least(points, "points", 3)
    grid = np.linspace(0.0, theta_max, points)
    best = int(np.argmax(bias(problem, grid)))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, points - 1)]
    return golden_section_maximum(lambda t: float(bias(problem, t)), low, high, tolerance)


def golden_section_maximum(f, low: float, high: float, tolerance: float) -> float:
    """The maximizer of a unimodal f on [low, high]: shrink the bracket by the golden ratio,
    keeping the side of the better of two interior points, until it is narrower than
    ``tolerance``."""
    a, b = float(low), float(high)
    left, right = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    f_left, f_right = f(left), f(right)
    while b - a > tolerance:
        if f_left >= f_right:  # the maximum is in [a, right]
            b, right, f_right = right, left, f_left
            left = b - GOLDEN * (b - a)
            f_left = f(left)
        else:  # the maximum is in [left, b]
            a, left, f_left = left, right, f_right
            right = a + GOLDEN * (b - a)
            f_right = f(right)
    return 0.5 * (a + b)

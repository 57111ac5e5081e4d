"""The score term as a control variate, path − c · score, on a Gaussian toy where everything
is known in closed form.

Target p(z | x) = N(m, diag s²) (log p(x, z) = log N(z; m, s²), log p(x) = 0) and
q = N(μ, diag σ²) with parameters (μ, ρ = log σ²); z = μ + σε.  Per coordinate, with
r = σ²/s² and a = −(μ − m)σ/(2s²):

    path_μ = −(μ − m)/s² + ε(1 − r)/σ,   score_μ = ε/σ,
    path_ρ = aε + ε²(1 − r)/2,            score_ρ = (ε² − 1)/2,

so the estimator g_c = path − c · score has mean ∇ELBO = (−(μ − m)/s², (1 − r)/2) for every c
and variances Var_μ(c) = (1 − c − r)²/σ², Var_ρ(c) = a² + (1 − c − r)²/2 (Var ε² = 2).
c = 1 is the pathwise estimator, c = 0 STL; each coordinate's best weight is 1 − r.
"""
from __future__ import annotations

import numpy as np
import pytest

from minivae import Tensor
from minivae.distributions import DiagonalNormal, Normal
from minivae.objectives.gradients import elbo_surrogate, optimal_score_weight

M, S2 = np.array([0.5, -1.0]), np.array([1.0, 2.5])  # the posterior's mean and variance
MU, SIGMA2 = np.array([2.0, 0.0]), np.array([0.3, 1.5])  # q: r = σ²/s² = (0.3, 0.6)
R = 4000  # independent estimates (rows), each of one sample


class GaussianToy:
    """q = N(μ, σ²) tiled over R rows (each row one independent estimate), target N(m, s²)."""

    def __init__(self, rows: int = R):
        self.loc = Tensor(np.tile(MU, (rows, 1)), requires_grad=True)
        self.log_var = Tensor(np.tile(np.log(SIGMA2), (rows, 1)), requires_grad=True)

    def encode(self, x) -> DiagonalNormal:
        return DiagonalNormal(self.loc, self.log_var)

    def log_joint(self, x, z) -> Tensor:
        return Normal(Tensor(M), Tensor(np.sqrt(S2))).log_prob(z).sum(axis=-1)


def gradients(estimator: str, seed: int, score_weight=None, rows: int = R) -> np.ndarray:
    """(rows, 4) estimates of ∂ELBO/∂(μ₁, μ₂, ρ₁, ρ₂)."""
    toy = GaussianToy(rows)
    elbo_surrogate(toy, None, np.random.default_rng(seed), estimator,
                   score_weight=score_weight).sum().backward()
    return np.concatenate([toy.loc.grad, toy.log_var.grad], axis=1)


def path_and_score(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired draws of the two terms: STL's gradient is the path term, and the pathwise
    gradient with the same ε is path − score."""
    path = gradients("stl", seed)
    return path, path - gradients("pathwise", seed)


R_RATIO = SIGMA2 / S2
SIGMA = np.sqrt(SIGMA2)
EXACT_GRADIENT = np.concatenate([-(MU - M) / S2, (1 - R_RATIO) / 2])
# Cov(path_j, score_j) and Var(score_j) per coordinate, from the forms in the docstring
COVARIANCE = np.concatenate([(1 - R_RATIO) / SIGMA2, (1 - R_RATIO) / 2])
SCORE_VARIANCE = np.concatenate([1 / SIGMA2, [0.5, 0.5]])
BEST_WEIGHT = COVARIANCE.sum() / SCORE_VARIANCE.sum()


def exact_variances(c: float) -> np.ndarray:
    a = -(MU - M) * SIGMA / (2 * S2)
    return np.concatenate([(1 - c - R_RATIO) ** 2 / SIGMA2, a ** 2 + (1 - c - R_RATIO) ** 2 / 2])


def test_closed_form_of_the_toy_is_consistent():
    """The variance formula is the parabola Var(path) − 2c Cov + c² Var(score) (a check on
    the derivation: the two forms were derived apart), and c* lies strictly inside (0, 1)."""
    for c in (-0.7, 0.0, 0.4, 1.0, 2.0):
        parabola = exact_variances(0.0) - 2 * c * COVARIANCE + c ** 2 * SCORE_VARIANCE
        np.testing.assert_allclose(exact_variances(c), parabola, rtol=1e-12, atol=1e-15)
    assert 0.2 < BEST_WEIGHT < 0.8


@pytest.mark.parametrize("weight", [BEST_WEIGHT, -0.5, 1.7], ids=["best", "negative", "above_one"])
def test_control_variate_is_unbiased(weight):
    estimates = gradients("control_variate", 1, weight)
    pathwise = gradients("pathwise", 2)
    se = estimates.std(axis=0, ddof=1) / np.sqrt(R)
    pathwise_se = pathwise.std(axis=0, ddof=1) / np.sqrt(R)
    np.testing.assert_array_less(np.abs(estimates.mean(axis=0) - EXACT_GRADIENT), 4 * se)
    np.testing.assert_array_less(np.abs(estimates.mean(axis=0) - pathwise.mean(axis=0)),
                                 4 * np.hypot(se, pathwise_se))
    assert se.max() < 0.1 * np.abs(EXACT_GRADIENT).max()  # the check has power


def test_weights_one_and_zero_are_pathwise_and_stl():
    np.testing.assert_allclose(gradients("control_variate", 3, 1.0), gradients("pathwise", 3),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gradients("control_variate", 3, 0.0), gradients("stl", 3),
                               rtol=1e-12, atol=1e-12)


def test_fitted_weight_matches_theory():
    path, score = path_and_score(4)
    fitted = optimal_score_weight(path, score)
    # delta method: ĉ − c* ≈ Σ_j mean((path_j − c* score_j)(score_j − E score_j)) / Σ_j Var score_j
    residual = ((path - BEST_WEIGHT * score) * (score - score.mean(axis=0))).sum(axis=1)
    se = residual.std(ddof=1) / np.sqrt(R) / SCORE_VARIANCE.sum()
    assert abs(fitted - BEST_WEIGHT) < 4 * se, (fitted, BEST_WEIGHT, se)
    np.testing.assert_allclose(score.mean(axis=0), 0.0,
                               atol=4 * score.std(axis=0).max() / np.sqrt(R))


def test_variance_at_the_fitted_weight_is_the_least():
    """Fitted on one set of draws, used on another: the per-coordinate variances of pathwise,
    STL and the control variate match their closed forms, and the total at c* is below both
    others (exactly: 0.309 against 0.994 and 2.294)."""
    fitted = optimal_score_weight(*path_and_score(5))
    totals = {}
    for name, (estimator, c) in {"pathwise": ("pathwise", 1.0), "stl": ("stl", 0.0),
                                 "control variate": ("control_variate", fitted)}.items():
        estimates = gradients(estimator, 6, None if estimator != "control_variate" else c)
        squares = (estimates - estimates.mean(axis=0)) ** 2
        se = squares.std(axis=0, ddof=1) / np.sqrt(R)
        np.testing.assert_array_less(np.abs(squares.mean(axis=0) - exact_variances(c)),
                                     4 * se + 1e-12)
        totals[name] = exact_variances(c).sum()
    assert totals["control variate"] < 0.8 * min(totals["pathwise"], totals["stl"]), totals


def test_bad_weights_are_reported():
    toy, rng = GaussianToy(3), np.random.default_rng(0)
    with pytest.raises(ValueError, match="score_weight is needed by"):
        elbo_surrogate(toy, None, rng, "control_variate")
    with pytest.raises(ValueError, match="score_weight is needed by"):
        elbo_surrogate(toy, None, rng, "stl", score_weight=0.5)
    with pytest.raises(ValueError, match="score_weight must broadcast"):
        elbo_surrogate(toy, None, rng, "control_variate", score_weight=np.zeros(4))
    with pytest.raises(ValueError, match="score must vary"):
        optimal_score_weight(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="path and score must be"):
        optimal_score_weight(np.ones((3, 2)), np.ones((3, 3)))

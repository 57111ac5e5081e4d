"""Maximum likelihood for one full-covariance Gaussian and for a mixture of them (EM).

One Gaussian: the log-likelihood Σ_i log N(x_i; μ, Σ) is maximized by

    μ̂ = (1/N) Σ_i x_i,    Σ̂ = (1/N) Σ_i (x_i − μ̂)(x_i − μ̂)ᵀ        (1/N, not 1/(N − 1):
                                                                     the MLE is biased)

A mixture p(x) = Σ_c π_c N(x; μ_c, Σ_c) (the lecture's GMM: c ~ Cat(π), x | c ~ N(μ_c, Σ_c))
has no closed form; EM alternates the posterior responsibilities r_ic = p(c | x_i) (E step,
minivae.objectives.discrete_latent) and the weighted versions of the formulas above (M step):

    N_c = Σ_i r_ic,  π_c = N_c/N,  μ_c = Σ_i r_ic x_i / N_c,
    Σ_c = Σ_i r_ic (x_i − μ_c)(x_i − μ_c)ᵀ / N_c + ε I,

and never lowers the log-likelihood (ε I, a small ridge, keeps every Σ_c invertible: a
component on a single point would otherwise drive the likelihood to +∞).  Sampling is
ancestral: c ~ Cat(π), then x ~ N(μ_c, Σ_c).  Model choice: with p free parameters,
AIC = 2p − 2 log L and BIC = p log N − 2 log L (lower is better); a K-component model in d
dimensions has p = K (d + d(d + 1)/2) + K − 1.

Verified by: tests/topics/test_gaussian_fits.py
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from minivae import checks
from minivae.objectives.discrete_latent import gaussian_mixture_log_joint, log_evidence
from minivae.topics.clustering import _check_points, kmeans_plus_plus


def fit_gaussian(points) -> tuple[np.ndarray, np.ndarray]:
    """(μ̂, Σ̂): the sample mean and the maximum-likelihood covariance (divided by N).

    Verified by: tests/topics/test_gaussian_fits.py::test_single_gaussian_is_the_mle
    """
    points = _check_points(points)
    centred = points - points.mean(axis=0)
    return points.mean(axis=0), centred.T @ centred / len(points)


def gaussian_log_likelihood(points, mean, covariance) -> np.ndarray:
    """log N(x_i; μ, Σ) for every row x_i (a one-component mixture).

    Verified by: tests/topics/test_gaussian_fits.py::test_log_likelihoods_match_scipy
    """
    mean = np.asarray(mean, dtype=np.float64)
    return gaussian_mixture_log_joint(_check_points(points), np.ones(1), mean[None],
                                      np.asarray(covariance, dtype=np.float64)[None])[:, 0]


def parameter_count(dimension: int, components: int = 1) -> int:
    """p = K (d + d(d + 1)/2) + K − 1: means, symmetric covariances, free weights.

    Verified by: tests/topics/test_gaussian_fits.py::test_information_criteria
    """
    d, K = checks.int_at_least(dimension, "dimension"), checks.int_at_least(components,
                                                                           "components")
    return K * (d + d * (d + 1) // 2) + K - 1


def information_criteria(total_log_likelihood: float, parameters: int, points: int
                         ) -> tuple[float, float]:
    """(AIC, BIC) = (2p − 2 log L, p log N − 2 log L).

    Verified by: tests/topics/test_gaussian_fits.py::test_information_criteria
    """
    log_l = checks.real(total_log_likelihood, "total_log_likelihood")
    p, n = checks.int_at_least(parameters, "parameters"), checks.int_at_least(points, "points")
    return 2 * p - 2 * log_l, p * math.log(n) - 2 * log_l


@dataclass
class GaussianMixtureFit:
    """π (K,), μ (K, d), Σ (K, d, d); ``log_likelihoods``: mean log p(x_i) after each EM step."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    log_likelihoods: list = field(default_factory=list)

    def log_joint(self, points) -> np.ndarray:
        """log π_c + log N(x_i; μ_c, Σ_c): shape (N, K)."""
        return gaussian_mixture_log_joint(_check_points(points), self.weights, self.means,
                                          self.covariances)

    def log_likelihood(self, points) -> np.ndarray:
        """log p(x_i) = log Σ_c π_c N(x_i; μ_c, Σ_c), per row.

        Verified by: tests/topics/test_gaussian_fits.py::test_log_likelihoods_match_scipy
        """
        return log_evidence(self.log_joint(points))

    def responsibilities(self, points) -> np.ndarray:
        """r_ic = p(c | x_i) (Bayes' rule), shape (N, K).

        Verified by: tests/topics/test_gaussian_fits.py::test_em_matches_scikit_learn
        """
        joint = self.log_joint(points)
        return np.exp(joint - log_evidence(joint)[:, None])

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Ancestral sampling: (x, c) with c ~ Cat(π), x = μ_c + L_c ε (Σ_c = L_c L_cᵀ).

        Verified by: tests/topics/test_gaussian_fits.py::test_ancestral_samples_have_the_moments
        """
        n, rng = checks.positive_int(n, "n"), checks.generator(rng)
        c = rng.choice(len(self.weights), size=n, p=self.weights)
        noise = rng.standard_normal((n, self.means.shape[1]))
        factors = np.linalg.cholesky(self.covariances)[c]
        return self.means[c] + np.einsum("nij,nj->ni", factors, noise), c


def maximization_step(points, responsibilities, ridge: float) -> GaussianMixtureFit:
    """π, μ, Σ from the responsibilities (the M step of the module docstring)."""
    counts = responsibilities.sum(axis=0) + np.finfo(np.float64).tiny  # N_c
    means = responsibilities.T @ points / counts[:, None]
    centred = points[:, None, :] - means  # (N, K, d)
    covariances = (np.einsum("nk,nki,nkj->kij", responsibilities, centred, centred)
                   / counts[:, None, None] + ridge * np.eye(points.shape[1]))
    return GaussianMixtureFit(counts / counts.sum(), means, covariances)


def fit_gaussian_mixture(points, components: int, rng: np.random.Generator,
                         iterations: int = 300, tolerance: float = 1e-10, ridge: float = 1e-6,
                         n_init: int = 5) -> GaussianMixtureFit:
    """EM from ``n_init`` k-means++ hard assignments; the run of highest likelihood is kept.

    Each run stops when the mean log-likelihood gains less than ``tolerance``.
    Verified by: tests/topics/test_gaussian_fits.py::test_em_never_lowers_the_likelihood,
    ::test_em_matches_scikit_learn
    """
    points, rng = _check_points(points), checks.generator(rng)
    K = checks.int_at_least(components, "components")
    checks.require(K <= len(points), "components", f"at most the number of points "
                   f"({len(points)})", K)
    iterations, n_init = (checks.int_at_least(v, name) for v, name in
                          ((iterations, "iterations"), (n_init, "n_init")))
    tolerance, ridge = checks.real(tolerance, "tolerance", 0.0), checks.positive(ridge, "ridge",
                                                                                number=True)
    fits = []
    for _ in range(n_init):
        seeds = points[kmeans_plus_plus(points, K, rng)]
        nearest = ((points[:, None, :] - seeds) ** 2).sum(axis=-1).argmin(axis=1)
        fits.append(run_em(points, maximization_step(points, np.eye(K)[nearest], ridge),
                           iterations, tolerance, ridge))
    return max(fits, key=lambda fit: fit.log_likelihoods[-1])


def run_em(points, fit: GaussianMixtureFit, iterations: int, tolerance: float, ridge: float
           ) -> GaussianMixtureFit:
    """EM steps (E then M) from ``fit``; the log-likelihoods of the fits it passes are kept."""
    history = []
    for _ in range(iterations):
        joint = fit.log_joint(points)
        log_px = log_evidence(joint)
        history.append(float(log_px.mean()))
        if len(history) > 1 and history[-1] - history[-2] < tolerance:
            break
        fit = maximization_step(points, np.exp(joint - log_px[:, None]), ridge)
    else:  # the last M step's fit, scored too
        history.append(float(fit.log_likelihood(points).mean()))
    fit.log_likelihoods = history
    return fit

"""Wishart constants (log normalizer, E[log |Λ|], entropy) from the Cholesky factor of W⁻¹.

W(Λ | W, ν) = B(W, ν) |Λ|^((ν − D − 1)/2) exp(−½ Tr(W⁻¹ Λ)),  Λ, W (D × D) positive definite,
ν > D − 1 (Bishop, PRML, Appendix B, B.78–B.82).

The mixture's updates produce W⁻¹ = W₀⁻¹ + (a sum of outer products), so W⁻¹ is what is formed
and factored: every function here takes L with L Lᵀ = W⁻¹ (lower triangular, positive
diagonal) and never forms W.  Then

    log |W| = −log |W⁻¹| = −2 Σᵢ log Lᵢᵢ,
    Tr(A W) = Tr(L⁻¹ A L⁻ᵀ) = ‖L⁻¹ F‖²_F  for A = F Fᵀ,
    yᵀ W y  = ‖L⁻¹ y‖²,

each by a triangular solve.  Arguments broadcast over leading (batch) axes: L is (..., D, D)
and ν is (...), one Wishart per batch entry.

Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_log_normalizer_matches_scipy_density,
::test_wishart_entropy_matches_scipy,
::test_wishart_expected_log_det_matches_monte_carlo
"""
from __future__ import annotations

import math

import numpy as np

from minivae.engine.ops.linalg import solve_triangular
from minivae.engine.ops.special import digamma_array, log_gamma_array

LOG_2 = math.log(2.0)
LOG_PI = math.log(math.pi)


def solve_lower(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """L⁻¹ B for lower-triangular L (..., D, D) and B (..., D, k), by forward substitution.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_log_normalizer_matches_scipy_density
    """
    return solve_triangular(L, B, vector=False).data


def log_det_from_cholesky(L: np.ndarray) -> np.ndarray:
    """log |L Lᵀ| = 2 Σᵢ log Lᵢᵢ for lower-triangular L with positive diagonal, shape (...).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_log_normalizer_matches_scipy_density
    """
    return 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)


def multivariate_log_gamma(a, D: int) -> np.ndarray:
    """log Γ_D(a) = D(D − 1)/4 · log π + Σᵢ₌₁ᴰ log Γ(a + (1 − i)/2), for a > (D − 1)/2.

    Γ_D(a) = ∫ over positive-definite S of |S|^(a − (D+1)/2) e^(−Tr S) dS; Γ₁ = Γ.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_multivariate_log_gamma_matches_scipy
    """
    a = np.asarray(a, dtype=np.float64)
    halves = (1.0 - np.arange(1, D + 1)) / 2.0
    return D * (D - 1) / 4.0 * LOG_PI + log_gamma_array(a[..., None] + halves).sum(axis=-1)


def wishart_log_normalizer(W_inv_cholesky: np.ndarray, nu) -> np.ndarray:
    """log B(W, ν) = −(ν/2) log |W| − (νD/2) log 2 − log Γ_D(ν/2)   (Bishop B.79),

    the log of the constant that makes W(Λ | W, ν) integrate to one; with log |W| = −2 Σ log Lᵢᵢ.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_log_normalizer_matches_scipy_density
    """
    nu = np.asarray(nu, dtype=np.float64)
    D = W_inv_cholesky.shape[-1]
    log_det_W = -log_det_from_cholesky(W_inv_cholesky)
    return -0.5 * nu * log_det_W - 0.5 * nu * D * LOG_2 - multivariate_log_gamma(nu / 2.0, D)


def wishart_expected_log_det(W_inv_cholesky: np.ndarray, nu) -> np.ndarray:
    """E[log |Λ|] = Σᵢ₌₁ᴰ ψ((ν + 1 − i)/2) + D log 2 + log |W|   (Bishop B.81, 10.65).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_expected_log_det_matches_monte_carlo
    """
    nu = np.asarray(nu, dtype=np.float64)
    D = W_inv_cholesky.shape[-1]
    digammas = digamma_array((nu[..., None] + 1.0 - np.arange(1, D + 1)) / 2.0).sum(axis=-1)
    return digammas + D * LOG_2 - log_det_from_cholesky(W_inv_cholesky)


def wishart_entropy(W_inv_cholesky: np.ndarray, nu) -> np.ndarray:
    """H[Λ] = −log B(W, ν) − ((ν − D − 1)/2) E[log |Λ|] + νD/2   (Bishop B.82).

    From −E[log W(Λ)] with E[Tr(W⁻¹Λ)] = Tr(W⁻¹ νW) = νD.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_wishart_entropy_matches_scipy
    """
    nu = np.asarray(nu, dtype=np.float64)
    D = W_inv_cholesky.shape[-1]
    return (-wishart_log_normalizer(W_inv_cholesky, nu)
            - 0.5 * (nu - D - 1.0) * wishart_expected_log_det(W_inv_cholesky, nu)
            + 0.5 * nu * D)

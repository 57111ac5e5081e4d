"""The Bayesian Gaussian mixture's prior, its variational factors and its exact ELBO.

Model (Bishop, PRML §10.2), for data x₁ … x_N in ℝᴰ and K components:

    π ~ Dir(α₀ 1_K),   Λ_k ~ W(W₀, ν₀),   μ_k | Λ_k ~ N(m₀, (β₀Λ_k)⁻¹),
    z_n | π ~ Cat(π),  x_n | z_n = k ~ N(μ_k, Λ_k⁻¹).

Mean field:

    q(Z, π, μ, Λ) = Πₙ Cat(z_n | r_n) · Dir(π | α) · Πₖ N(μ_k | m_k, (β_kΛ_k)⁻¹) W(Λ_k | W_k, ν_k).

Scale matrices are held by the Cholesky factor L of their inverse, L Lᵀ = W⁻¹ (see wishart.py).

Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint,
::test_elbo_is_below_the_exact_log_evidence
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minivae.cavi.wishart import (
    solve_lower,
    wishart_entropy,
    wishart_expected_log_det,
    wishart_log_normalizer,
)
from minivae.engine.ops.special import digamma_array, log_gamma_array

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class MixturePrior:
    """The fixed hyperparameters, named as in Bishop (scikit-learn's names in brackets):

    alpha0 [weight_concentration_prior], m0 (D,) [mean_prior], beta0 [mean_precision_prior],
    nu0 [degrees_of_freedom_prior] and W0_inv_cholesky (D, D), the Cholesky factor L₀ of
    W₀⁻¹ = covariance_prior: the prior guess of a covariance is E[Λ]⁻¹ = W₀⁻¹/ν₀.
    """

    alpha0: float
    m0: np.ndarray
    beta0: float
    nu0: float
    W0_inv_cholesky: np.ndarray


@dataclass(frozen=True)
class MixtureFactors:
    """Parameters of q(π) = Dir(α) and q(μ_k, Λ_k) = N(m_k, (β_kΛ_k)⁻¹) W(W_k, ν_k):
    alpha, beta, nu (K,), m (K, D) and W_inv_cholesky (K, D, D) with L_k L_kᵀ = W_k⁻¹."""

    alpha: np.ndarray
    beta: np.ndarray
    m: np.ndarray
    W_inv_cholesky: np.ndarray
    nu: np.ndarray

    @property
    def W(self) -> np.ndarray:
        """W_k = L_k⁻ᵀ L_k⁻¹ (K, D, D), formed only for display; computations use L_k.

        Verified by: tests/cavi/test_bayesian_gmm.py::test_factor_summaries_are_consistent
        """
        L = self.W_inv_cholesky
        L_inv = solve_lower(L, np.broadcast_to(np.eye(L.shape[-1]), L.shape))
        return np.swapaxes(L_inv, -1, -2) @ L_inv

    @property
    def weights(self) -> np.ndarray:
        """E[π_k] = α_k / Σⱼ αⱼ (K,).

        Verified by: tests/cavi/test_bayesian_gmm.py::test_factor_summaries_are_consistent
        """
        return self.alpha / self.alpha.sum()

    @property
    def covariances(self) -> np.ndarray:
        """E[Λ_k]⁻¹ = (ν_k W_k)⁻¹ = L_k L_kᵀ / ν_k (K, D, D), scikit-learn's ``covariances_``.

        Verified by: tests/cavi/test_bayesian_gmm.py::test_factor_summaries_are_consistent
        """
        L = self.W_inv_cholesky
        return L @ np.swapaxes(L, -1, -2) / self.nu[:, None, None]


def log_dirichlet_normalizer(alpha: np.ndarray) -> float:
    """log C(α) = log Γ(Σₖ αₖ) − Σₖ log Γ(αₖ), so that Dir(π | α) = C(α) Πₖ πₖ^(αₖ − 1) (B.16).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint
    """
    return float(log_gamma_array(np.sum(alpha)) - log_gamma_array(alpha).sum())


def expected_log_weights(alpha: np.ndarray) -> np.ndarray:
    """E[log π_k] = ψ(α_k) − ψ(Σⱼ αⱼ) under Dir(π | α)   (10.66).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint
    """
    return digamma_array(alpha) - digamma_array(np.sum(alpha))


def mahalanobis_squared(X: np.ndarray, m: np.ndarray, W_inv_cholesky: np.ndarray) -> np.ndarray:
    """(x_n − m_k)ᵀ W_k (x_n − m_k) = ‖L_k⁻¹ (x_n − m_k)‖² for all n, k: shape (N, K).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_predict_proba_matches_scikit_learn
    """
    differences = np.swapaxes(X[None, :, :] - m[:, None, :], 1, 2)  # (K, D, N)
    whitened = solve_lower(W_inv_cholesky, differences)
    return np.sum(whitened * whitened, axis=1).T


def expected_log_likelihood(X: np.ndarray, factors: MixtureFactors) -> np.ndarray:
    """E_q[log N(x_n | μ_k, Λ_k⁻¹)] for all n, k, shape (N, K)   (from 10.46, 10.64, 10.65):

        ½ E[log |Λ_k|] − (D/2) log 2π − ½ (D/β_k + ν_k (x_n − m_k)ᵀ W_k (x_n − m_k)),

    because E[(x − μ)ᵀΛ(x − μ)] = E_Λ[Tr(Λ Cov[μ|Λ])] + (x − m)ᵀ E[Λ] (x − m)
                               = D/β + ν (x − m)ᵀW(x − m).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint
    """
    D = X.shape[1]
    log_det = wishart_expected_log_det(factors.W_inv_cholesky, factors.nu)
    distances = mahalanobis_squared(X, factors.m, factors.W_inv_cholesky)
    quadratic = D / factors.beta + factors.nu * distances
    return 0.5 * log_det - 0.5 * D * LOG_2PI - 0.5 * quadratic


def elbo_terms(X: np.ndarray, prior: MixturePrior, r: np.ndarray, factors: MixtureFactors
               ) -> dict[str, float]:
    """The seven terms of the ELBO (Bishop 10.70–10.77), every constant included.

    With E[log π_k] (10.66), E[log |Λ_k|] (10.65) and E_q[log N(x_n | μ_k, Λ_k⁻¹)] as in
    ``expected_log_likelihood``:

    - E[log p(X | Z, μ, Λ)] = Σₙₖ r_nk E[log N(x_n | μ_k, Λ_k⁻¹)]          (10.71, summed over n)
    - E[log p(Z | π)]       = Σₙₖ r_nk E[log π_k]                              (10.72)
    - E[log p(π)]           = log C(α₀1_K) + (α₀ − 1) Σₖ E[log π_k]            (10.73)
    - E[log p(μ, Λ)]        = ½ Σₖ {D log(β₀/2π) + E[log |Λ_k|] − Dβ₀/β_k
                                    − β₀ν_k (m_k − m₀)ᵀW_k(m_k − m₀)}
                              + K log B(W₀, ν₀) + ((ν₀ − D − 1)/2) Σₖ E[log |Λ_k|]
                              − ½ Σₖ ν_k Tr(W₀⁻¹ W_k)                          (10.74)
    - −E[log q(Z)]          = −Σₙₖ r_nk log r_nk   (0 log 0 = 0)               (10.75)
    - −E[log q(π)]          = −Σₖ (α_k − 1) E[log π_k] − log C(α)              (10.76)
    - −E[log q(μ, Λ)]       = −Σₖ {½ E[log |Λ_k|] + (D/2) log(β_k/2π) − D/2 − H[q(Λ_k)]}  (10.77)

    Tr(W₀⁻¹ W_k) = ‖L_k⁻¹ L₀‖²_F with L₀ L₀ᵀ = W₀⁻¹,
    and (m_k − m₀)ᵀW_k(m_k − m₀) = ‖L_k⁻¹(m_k − m₀)‖².

    Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint,
    ::test_elbo_is_below_the_exact_log_evidence
    """
    K, D = factors.m.shape
    alpha, beta, nu, L = factors.alpha, factors.beta, factors.nu, factors.W_inv_cholesky
    log_pi = expected_log_weights(alpha)
    log_det = wishart_expected_log_det(L, nu)
    offsets = mahalanobis_squared(prior.m0[None, :], factors.m, L)[0]  # (K,)
    whitened_prior_scale = solve_lower(L, np.broadcast_to(prior.W0_inv_cholesky, L.shape))
    traces = np.sum(whitened_prior_scale ** 2, axis=(1, 2))  # Tr(W₀⁻¹ W_k)
    r_log_r = np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)
    component_prior = (
        0.5 * np.sum(D * math.log(prior.beta0) - D * LOG_2PI + log_det - D * prior.beta0 / beta
                     - prior.beta0 * nu * offsets)
        + K * float(wishart_log_normalizer(prior.W0_inv_cholesky, prior.nu0))
        + 0.5 * (prior.nu0 - D - 1.0) * np.sum(log_det)
        - 0.5 * np.sum(nu * traces))
    component_posterior = np.sum(0.5 * log_det + 0.5 * D * (np.log(beta) - LOG_2PI) - 0.5 * D
                                 - wishart_entropy(L, nu))
    return {
        "log p(X|Z,mu,Lambda)": float(np.sum(r * expected_log_likelihood(X, factors))),
        "log p(Z|pi)": float(np.sum(r.sum(axis=0) * log_pi)),
        "log p(pi)": log_dirichlet_normalizer(np.full(K, prior.alpha0))
                     + (prior.alpha0 - 1.0) * float(np.sum(log_pi)),
        "log p(mu,Lambda)": float(component_prior),
        "-log q(Z)": -float(np.sum(r_log_r)),
        "-log q(pi)": -float(np.sum((alpha - 1.0) * log_pi)) - log_dirichlet_normalizer(alpha),
        "-log q(mu,Lambda)": -float(component_posterior),
    }


def elbo(X: np.ndarray, prior: MixturePrior, r: np.ndarray, factors: MixtureFactors) -> float:
    """ELBO = E_q[log p(X, Z, π, μ, Λ)] − E_q[log q(Z, π, μ, Λ)], the sum of ``elbo_terms``.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_one_hot_elbo_is_the_log_joint
    """
    return float(sum(elbo_terms(X, prior, r, factors).values()))

"""The Poisson–Gaussian mixture's evidence lower bound, every constant kept, and the exact log
evidence it bounds (for data sets small enough to sum over every assignment).

Model (see ``minivae/cavi/poisson_gaussian.py``): Z_n ~ Cat(π), X_n | Z_n = k ~ N(μ_k, τ⁻¹ I₂),
S_n | Z_n = k ~ Poisson(λ_k), μ_k ~ N(ν, ρ⁻¹ I₂), λ_k ~ Gamma(α, β) (shape, rate).
Mean field q = Πₙ Cat(Z_n; r_n) Πₖ N(μ_k; m_k, s_k⁻¹ I₂) Gamma(λ_k; a_k, b_k).

    ELBO(q) = E_q[log p(X, S, Z, μ, λ)] − E_q[log q(Z, μ, λ)] = log p(X, S) − KL(q ‖ p(· | X, S))

The two functions below share no code on purpose: ``log_evidence_exact`` integrates μ and λ out
in closed form, so a test can hold the bound against the quantity it bounds.
"""
from __future__ import annotations

import itertools

import numpy as np

from minivae.engine.ops.special import digamma_array, log_gamma_array

LOG_TWO_PI = float(np.log(2 * np.pi))
DIMENSION = 2  # event locations live in the plane
MAX_ASSIGNMENTS = 200_000  # K^N above this makes the exact sum too slow and too large to hold


def expected_squared_distances(X: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(N, K) array of E_q‖X_n − μ_k‖² = ‖X_n − m_k‖² + 2/s_k under q(μ_k) = N(m_k, s_k⁻¹ I₂).

    Why: write μ = m + ε with E ε = 0, E εεᵀ = s⁻¹ I₂; then ‖X − μ‖² = ‖X − m‖² − 2(X − m)ᵀε
    + ‖ε‖² and E‖ε‖² = tr(s⁻¹ I₂) = 2/s.  The difference X − m is formed explicitly rather
    than through ‖X‖² − 2Xᵀm + ‖m‖², which cancels badly far from the origin.

    Verified by: tests/cavi/test_poisson_gaussian.py::test_expected_squared_distance_by_monte_carlo
    """
    difference = X[:, None, :] - m[None, :, :]
    return np.sum(difference * difference, axis=-1) + DIMENSION / s[None, :]


def elbo_terms(prior, X: np.ndarray, S: np.ndarray, r: np.ndarray, m: np.ndarray,
               s: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The ELBO as a sum of eight named expectations (nats); ``prior`` holds log π, τ, ν, ρ, α, β.

    With E log λ_k = ψ(a_k) − log b_k, E λ_k = a_k/b_k and E‖X_n − μ_k‖² = ‖X_n − m_k‖² + 2/s_k:

    E log p(Z)          = Σₙₖ r_nk log π_k
    E log p(X | Z, μ)   = Σₙₖ r_nk [−log 2π + log τ − (τ/2)(‖X_n − m_k‖² + 2/s_k)]
    E log p(S | Z, λ)   = Σₙₖ r_nk [S_n (ψ(a_k) − log b_k) − a_k/b_k − log S_n!]
    E log p(μ)          = Σₖ [−log 2π + log ρ − (ρ/2)(‖m_k − ν‖² + 2/s_k)]
    E log p(λ)          = Σₖ [α log β − log Γ(α) + (α − 1)(ψ(a_k) − log b_k) − β a_k/b_k]
    H[q(Z)]             = −Σₙₖ r_nk log r_nk                      (0 log 0 = 0)
    H[q(μ)]             = Σₖ [1 + log 2π − log s_k]       ((D/2)(1 + log 2π − log s_k), D = 2)
    H[q(λ)]             = Σₖ [a_k − log b_k + log Γ(a_k) + (1 − a_k) ψ(a_k)]

    The Gaussian log densities in 2-D are −log 2π + log(precision) − (precision/2)‖·‖².

    Verified by: tests/cavi/test_poisson_gaussian.py::test_elbo_terms_match_scipy_monte_carlo,
    ::test_k1_elbo_equals_exact_log_evidence
    """
    expected_log_rate = digamma_array(a) - np.log(b)
    expected_rate = a / b
    log_factorial = log_gamma_array(S + 1.0)
    squared = expected_squared_distances(X, m, s)
    prior_distance = np.sum((m - prior.nu) ** 2, axis=1) + DIMENSION / s
    log_r = np.log(np.where(r > 0, r, 1.0))  # r_nk = 0 contributes 0 to the entropy
    return {
        "E log p(Z)": float(np.sum(r * prior.log_pi)),
        "E log p(X | Z, μ)": float(np.sum(
            r * (-LOG_TWO_PI + np.log(prior.tau) - 0.5 * prior.tau * squared))),
        "E log p(S | Z, λ)": float(np.sum(
            r * (S[:, None] * expected_log_rate - expected_rate - log_factorial[:, None]))),
        "E log p(μ)": float(np.sum(
            -LOG_TWO_PI + np.log(prior.rho) - 0.5 * prior.rho * prior_distance)),
        "E log p(λ)": float(np.sum(
            prior.alpha * np.log(prior.beta) - log_gamma_array(np.float64(prior.alpha))
            + (prior.alpha - 1.0) * expected_log_rate - prior.beta * expected_rate)),
        "H[q(Z)]": float(-np.sum(r * log_r)),
        "H[q(μ)]": float(np.sum(1.0 + LOG_TWO_PI - np.log(s))),
        "H[q(λ)]": float(np.sum(a - np.log(b) + log_gamma_array(a)
                                + (1.0 - a) * digamma_array(a))),
    }


def elbo(prior, X, S, r, m, s, a, b) -> float:
    """ELBO(q) = Σ of the eight terms of ``elbo_terms`` = E_q[log p(X, S, Z, μ, λ)] − E_q[log q].

    Verified by: tests/cavi/test_poisson_gaussian.py::test_k1_elbo_equals_exact_log_evidence,
    ::test_exact_log_evidence_bounds_the_converged_elbo
    """
    return float(sum(elbo_terms(prior, X, S, r, m, s, a, b).values()))


def log_evidence_exact(prior, X, S, max_assignments: int = MAX_ASSIGNMENTS) -> float:
    """log p(X, S) = log Σ_z Πₙ π_{z_n} Πₖ p(X_{z=k}) p(S_{z=k}), over all K^N assignments z.

    Given z, the events assigned to k (say M of them, offsets d_i = X_i − ν) are independent of
    the other components, with μ_k and λ_k integrated out by conjugacy:

    Locations.  Per coordinate, the M values are jointly N(ν 1, C) with C = τ⁻¹ I + ρ⁻¹ 11ᵀ
    (the shared μ adds ρ⁻¹ to every covariance).  Matrix determinant lemma and Sherman–Morrison:
    log det C = −M log τ + log(1 + Mτ/ρ),  C⁻¹ = τ I − τ²/(ρ + Mτ) 11ᵀ.  Both coordinates:

        log p(X_{z=k}) = −M log 2π + M log τ − log(1 + Mτ/ρ)
                         − ½ [τ Σᵢ‖d_i‖² − τ² ‖Σᵢ d_i‖² / (ρ + Mτ)]

    Strengths.  ∫ Πᵢ Poisson(S_i; λ) Gamma(λ; α, β) dλ
              = β^α / Γ(α) · Γ(α + ΣS_i) / (β + M)^(α + ΣS_i) / Πᵢ S_i!
    (the integrand is an unnormalized Gamma(α + ΣS, β + M) density).

    An empty component (M = 0) contributes 0 to both.  The sum over z runs as a log-sum-exp.
    Raises ValueError when K^N > ``max_assignments``.

    Verified by: tests/cavi/test_poisson_gaussian.py::test_exact_log_evidence_matches_scipy_oracle
    """
    X = np.asarray(X, dtype=np.float64)
    S = np.asarray(S, dtype=np.float64)
    n_events, n_components = len(X), len(prior.log_pi)
    if n_components ** n_events > max_assignments:
        raise ValueError(f"log_evidence_exact sums over K^N = {n_components}^{n_events} "
                         f"assignments, more than max_assignments = {max_assignments}")
    tau, rho, alpha, beta = prior.tau, prior.rho, prior.alpha, prior.beta
    assignments = np.array(list(itertools.product(range(n_components), repeat=n_events)),
                           dtype=np.int64).reshape(-1, n_events)
    member = (assignments[:, :, None] == np.arange(n_components)).astype(np.float64)  # (A,N,K)
    offsets = X - prior.nu
    count = member.sum(axis=1)  # (A, K)
    offset_sum = np.einsum("ank,nj->akj", member, offsets)
    offset_square_sum = np.einsum("ank,n->ak", member, np.sum(offsets ** 2, axis=1))
    strength_sum = np.einsum("ank,n->ak", member, S)

    log_locations = (-count * LOG_TWO_PI + count * np.log(tau) - np.log1p(count * tau / rho)
                     - 0.5 * (tau * offset_square_sum
                              - tau ** 2 * np.sum(offset_sum ** 2, axis=-1) / (rho + count * tau)))
    log_strengths = (alpha * np.log(beta) - log_gamma_array(np.float64(alpha))
                     + log_gamma_array(alpha + strength_sum)
                     - (alpha + strength_sum) * np.log(beta + count))
    log_assignment = prior.log_pi[assignments].sum(axis=1)
    log_joint = log_assignment + np.sum(log_locations + log_strengths, axis=1)
    largest = np.max(log_joint)
    # each event sits in exactly one component, so Πₙ 1/S_n! factors out of the sum
    return float(largest + np.log(np.sum(np.exp(log_joint - largest)))
                 - np.sum(log_gamma_array(S + 1.0)))

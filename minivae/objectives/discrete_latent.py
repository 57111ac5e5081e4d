"""Exact variational inference over a discrete latent: every expectation is a finite sum.

For a latent c ∈ {0, …, K−1}, an observed x, and the joint log p(x, c) (one number per c):

    log p(x)          = log Σ_c p(x, c)                       (marginalization, by logsumexp)
    p(c | x)          = p(x, c) / p(x)                        (Bayes' rule)
    ELBO(q)           = Σ_c q_c [log p(x, c) − log q_c]       (0 · log 0 = 0)
    KL(q ‖ p(·|x))    = Σ_c q_c [log q_c − log p(c | x)]
                      = log p(x) − ELBO(q)                    (log p(c|x) = log p(x,c) − log p(x))

so maximizing the ELBO over q is minimizing the KL, and the maximum, log p(x), is reached at
q = p(·|x) exactly.  With two components and q = Ber(λ) (λ = q(c = 1)):

    ELBO(λ)     = λ log(p(x,1)/λ) + (1 − λ) log(p(x,0)/(1 − λ)),
    dELBO/dλ    = log p(x,1) − log p(x,0) − log(λ/(1 − λ))  = 0
                  ⇔  λ* = σ(log p(x,1) − log p(x,0)) = p(c = 1 | x),
    d²ELBO/dλ²  = −1/(λ(1 − λ)) < 0,  so λ* is the one maximum.

Estimating p(x) by sampling c (the Monte Carlo view of the same sum): with c_i ~ q,
w_i = p(x, c_i)/q(c_i) has E_q[w] = p(x) and E_q[w²]/p(x)² = Σ_c p(c|x)²/q_c = 1 + χ²(p(·|x) ‖ q),
so the relative variance of one weight is the χ² divergence: zero for q = p(·|x) (every weight
equals p(x)), and for prior sampling (q = π, w = p(x | c)) as large as the posterior is peaked.

Verified by: tests/objectives/test_discrete_latent.py
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.multivariate_normal import MultivariateNormal


def _log_joint(log_joint) -> np.ndarray:
    log_joint = checks.log_density(log_joint, "log_joint")
    checks.require(np.ndim(log_joint) >= 1 and np.shape(log_joint)[-1] >= 1, "log_joint",
                   "an array (..., K) with one entry per latent value", np.shape(log_joint))
    checks.require(np.isfinite(log_joint.max(axis=-1)), "log_joint",
                   "finite somewhere on its last axis (p(x) > 0)", log_joint.max(axis=-1))
    return log_joint


def log_evidence(log_joint) -> np.ndarray:
    """log p(x) = m + log1p(Σ_{c ≠ c*} exp(log p(x, c) − m)), m = log p(x, c*) the largest
    term, over the last axis: factoring m out keeps exp in range, and log1p keeps the digits of
    a small remainder (log(1 + e⁻⁸) to full precision, not to 3e-13).

    Verified by: tests/objectives/test_discrete_latent.py::test_evidence_and_posterior_match_scipy
    """
    log_joint = _log_joint(log_joint)
    top = log_joint.argmax(axis=-1)[..., None]
    peak = np.take_along_axis(log_joint, top, axis=-1)
    rest = np.exp(log_joint - peak)
    np.put_along_axis(rest, top, 0.0, axis=-1)
    return (peak + np.log1p(rest.sum(axis=-1, keepdims=True)))[..., 0]


def posterior(log_joint) -> np.ndarray:
    """p(c | x) = exp(log p(x, c) − log p(x)), over the last axis.

    Verified by: tests/objectives/test_discrete_latent.py::test_evidence_and_posterior_match_scipy
    """
    log_joint = _log_joint(log_joint)
    return np.exp(log_joint - log_evidence(log_joint)[..., None])


def _q(q, log_joint) -> np.ndarray:
    q = checks.values(q).astype(np.float64)
    checks.require((q >= 0) & (q <= 1), "q", "probabilities in [0, 1]", q)
    checks.require(np.abs(q.sum(axis=-1) - 1) < 1e-9, "q", "a distribution (summing to 1 over "
                   "its last axis)", q.sum(axis=-1))
    checks.shape(q.shape[-1:] == log_joint.shape[-1:], "q", f"(..., {log_joint.shape[-1]}), "
                 "one probability per latent value", q.shape)
    return q


def elbo(q, log_joint) -> np.ndarray:
    """ELBO(q) = Σ_c q_c [log p(x, c) − log q_c] (terms with q_c = 0 are 0), last axis.

    Verified by: tests/objectives/test_discrete_latent.py::test_elbo_plus_kl_is_the_evidence
    """
    log_joint = _log_joint(log_joint)
    q = _q(q, log_joint)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = q * (log_joint - np.log(q))
    return np.where(q > 0, terms, 0.0).sum(axis=-1)


def kl_to_posterior(q, log_joint) -> np.ndarray:
    """KL(q ‖ p(·|x)) = Σ_c q_c [log q_c − log p(c | x)] (terms with q_c = 0 are 0), last axis.

    Computed from its own definition (not as log p(x) − ELBO), so the identity can be tested.
    Verified by: tests/objectives/test_discrete_latent.py::test_elbo_plus_kl_is_the_evidence
    """
    log_joint = _log_joint(log_joint)
    q = _q(q, log_joint)
    log_posterior = log_joint - log_evidence(log_joint)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = q * (np.log(q) - log_posterior)
    return np.where(q > 0, terms, 0.0).sum(axis=-1)


def bernoulli_q(lam) -> np.ndarray:
    """q = Ber(λ) as the pair (q(c = 0), q(c = 1)) = (1 − λ, λ): shape λ.shape + (2,).

    Verified by:
    tests/objectives/test_discrete_latent.py::test_bernoulli_elbo_peaks_at_the_posterior
    """
    lam = checks.values(lam).astype(np.float64)
    checks.require((lam >= 0) & (lam <= 1), "lam", "a probability in [0, 1]", lam)
    return np.stack([1.0 - lam, lam], axis=-1)


def gaussian_mixture_log_joint(x, weights, means, covariances) -> np.ndarray:
    """log p(x, c) = log π_c + log N(x; μ_c, Σ_c) for every component: shape x.shape[:-1] + (K,).

    x (..., d); weights (K,) summing to 1; means (K, d); covariances (K, d, d), symmetric
    positive definite (their Cholesky factors are taken: a clear error otherwise).
    Verified by:
    tests/objectives/test_discrete_latent.py::test_gaussian_mixture_log_joint_matches_scipy
    """
    weights, means = checks.values(weights).astype(np.float64), np.asarray(means, np.float64)
    checks.require((weights > 0) & (np.abs(weights.sum() - 1) < 1e-9), "weights",
                   "positive and summing to 1", weights)
    covariances = np.asarray(covariances, dtype=np.float64)
    checks.shape(means.ndim == 2 and covariances.shape == (len(weights),) + means.shape[1:] * 2,
                 "means and covariances", f"(K, d) and (K, d, d) with K = {len(weights)}",
                 (means.shape, covariances.shape))
    checks.require(np.all(np.linalg.eigvalsh(covariances) > 0), "covariances",
                   "positive definite", np.linalg.eigvalsh(covariances))
    x = np.asarray(x, dtype=np.float64)[..., None, :]  # a component axis, for broadcasting
    components = MultivariateNormal(means, np.linalg.cholesky(covariances))
    return np.log(weights) + components.log_prob(x).data


def sample_log_weights(log_joint, log_q, n: int, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(c, log w): n draws c_i ~ q and log w_i = log p(x, c_i) − log q(c_i), for one x.

    With q = π (prior sampling) w_i = p(x | c_i); with q = p(·|x) every w_i = p(x).
    log_joint and log_q are (K,) vectors.
    Verified by:
    tests/objectives/test_discrete_latent.py::test_weights_under_the_posterior_all_equal_the_evidence
    """
    log_joint, log_q = _log_joint(log_joint), checks.log_density(log_q, "log_q")
    checks.shape(log_joint.ndim == 1 and log_q.shape == log_joint.shape, "log_q and log_joint",
                 "two (K,) vectors", (log_q.shape, log_joint.shape))
    q = np.exp(log_q)
    checks.require(abs(q.sum() - 1) < 1e-9, "log_q", "the log of a distribution", q.sum())
    c = checks.generator(rng).choice(len(q), size=checks.positive_int(n, "n"), p=q / q.sum())
    return c, log_joint[c] - log_q[c]


def relative_second_moment(log_joint, log_q) -> np.ndarray:
    """E_q[w²]/p(x)² = Σ_c p(c|x)²/q_c = 1 + χ²(p(·|x) ‖ q), w = p(x, c)/q(c), last axis.

    So Var(p̂_n)/p(x)² = (this − 1)/n for p̂_n the mean of n weights; +∞ if q misses a c
    of positive posterior mass.
    Verified by:
    tests/objectives/test_discrete_latent.py::test_relative_second_moment_matches_enumeration
    """
    log_joint, log_q = _log_joint(log_joint), checks.log_density(log_q, "log_q")
    log_posterior = log_joint - log_evidence(log_joint)[..., None]
    with np.errstate(invalid="ignore", over="ignore"):  # −∞ − (−∞): a c neither puts mass on
        log_terms = np.where(np.isneginf(log_posterior), -np.inf, 2 * log_posterior - log_q)
        return np.exp(log_terms).sum(axis=-1)  # each term ≥ 0: no cancellation to guard

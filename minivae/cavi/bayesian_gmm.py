"""Bayesian Gaussian mixture fitted by coordinate-ascent variational inference (Bishop, PRML §10.2).

The model, the mean-field family and the ELBO are in bayesian_gmm_elbo.py.  The priors take
scikit-learn's names and meanings (``sklearn.mixture.BayesianGaussianMixture`` with
``weight_concentration_prior_type="dirichlet_distribution"``, ``covariance_type="full"``):

    weight_concentration_prior = α₀     mean_prior = m₀     mean_precision_prior = β₀
    degrees_of_freedom_prior   = ν₀     covariance_prior = W₀⁻¹  (a covariance: W₀ is its inverse)

Each left as None takes scikit-learn's default: α₀ = 1/K, m₀ = mean of X, β₀ = 1, ν₀ = D and
W₀⁻¹ = the sample covariance of X (divisor N − 1).  Unlike scikit-learn, nothing is added to
the covariances' diagonal (its ``reg_covar``): the prior W₀⁻¹ already keeps every W_k⁻¹ positive
definite.

One sweep is two coordinate updates, and the ELBO is recorded after each (two values a sweep):

1. the global factors q(π) q(μ, Λ) given r (they depend on r only, not on each other, so updating
   them together is the same as one after the other);
2. the responsibilities q(Z) given the global factors.

A fit starts from responsibilities (``init``, or a k-means++ seeding), so its first update is
that of the global factors.  It stops when a sweep raises the ELBO by at most tol·|ELBO|.

Verified by: tests/cavi/test_bayesian_gmm.py::test_elbo_never_decreases,
::test_global_update_maximizes_the_elbo,
::test_responsibility_update_maximizes_the_elbo,
::test_matches_scikit_learn_from_the_same_start
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.cavi.bayesian_gmm_elbo import (
    MixtureFactors,
    MixturePrior,
    elbo,
    expected_log_likelihood,
    expected_log_weights,
)
from minivae.topics.clustering import kmeans_plus_plus

DEFAULT_SEED = 0  # rng=None means np.random.default_rng(DEFAULT_SEED): fits are repeatable


@dataclass(frozen=True)
class BayesianMixtureFit(MixtureFactors):
    """A finished fit: the global factors' parameters (inherited), r (N, K), the ELBO after each
    coordinate update, whether the tolerance was met, the number of sweeps and the prior used."""

    r: np.ndarray
    elbo_history: list
    converged: bool
    n_iter: int
    prior: MixturePrior


def update_global_factors(X: np.ndarray, prior: MixturePrior, r: np.ndarray) -> MixtureFactors:
    """The optimal q(π) q(μ, Λ) given r (Bishop 10.51–10.53, 10.58, 10.60–10.63):

        N_k = Σₙ r_nk,  α_k = α₀ + N_k,  β_k = β₀ + N_k,  ν_k = ν₀ + N_k,
        m_k = (β₀ m₀ + Σₙ r_nk x_n) / β_k,
        W_k⁻¹ = W₀⁻¹ + Σₙ r_nk (x_n − m_k)(x_n − m_k)ᵀ + β₀ (m_k − m₀)(m_k − m₀)ᵀ.

    The last line is Bishop's W₀⁻¹ + N_k S_k + (β₀N_k/(β₀ + N_k)) (x̄_k − m₀)(x̄_k − m₀)ᵀ rewritten:
    Σₙ r_nk (x_n − m_k)(…)ᵀ = N_k S_k + N_k (x̄_k − m_k)(…)ᵀ, and with x̄_k − m_k = β₀(x̄_k − m₀)/β_k,
    m_k − m₀ = N_k(x̄_k − m₀)/β_k the two outer products add to N_kβ₀(β₀ + N_k)/β_k² = β₀N_k/β_k
    times (x̄_k − m₀)(…)ᵀ.  This form divides by nothing (x̄_k is undefined when N_k = 0) and is
    a sum of positive semi-definite terms, so its Cholesky factor L_k always exists.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_global_update_maximizes_the_elbo
    """
    counts = r.sum(axis=0)
    beta = prior.beta0 + counts
    m = (prior.beta0 * prior.m0 + r.T @ X) / beta[:, None]
    centred = X[None, :, :] - m[:, None, :]  # (K, N, D)
    offset = m - prior.m0
    W0_inv = prior.W0_inv_cholesky @ prior.W0_inv_cholesky.T
    W_inv = (W0_inv + np.einsum("nk,knd,kne->kde", r, centred, centred)
             + prior.beta0 * offset[:, :, None] * offset[:, None, :])
    return MixtureFactors(alpha=prior.alpha0 + counts, beta=beta, m=m,
                          W_inv_cholesky=np.linalg.cholesky(W_inv), nu=prior.nu0 + counts)


def update_responsibilities(X: np.ndarray, factors: MixtureFactors) -> np.ndarray:
    """The optimal q(Z) given the global factors (Bishop 10.46, 10.49, 10.64–10.67):

        log ρ_nk = E[log π_k] + ½ E[log |Λ_k|] − (D/2) log 2π
                   − ½ (D/β_k + ν_k (x_n − m_k)ᵀW_k(x_n − m_k)),
        r_nk = ρ_nk / Σⱼ ρ_nj,

    normalized in log space (subtract each row's maximum before exponentiating).  For points not
    in the training set this is the responsibility that one more CAVI step would give them with
    the global factors held fixed; it is what scikit-learn's ``predict_proba`` returns.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_responsibility_update_maximizes_the_elbo,
    ::test_predict_proba_matches_scikit_learn
    """
    log_rho = expected_log_weights(factors.alpha) + expected_log_likelihood(X, factors)
    shifted = log_rho - log_rho.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def kmeans_plusplus_responsibilities(X: np.ndarray, K: int, rng: np.random.Generator
                                     ) -> np.ndarray:
    """One-hot r (N, K): each point to its nearest of K centres seeded by greedy k-means++.

    The first centre is a uniformly drawn point; each next one is the best (lowest total squared
    distance to the nearest centre) of 2 + ⌊ln K⌋ candidates drawn with probability ∝ the squared
    distance to the centres so far (``kmeans_plus_plus`` with that many trials).

    Verified by: tests/cavi/test_bayesian_gmm.py::test_recovers_well_separated_means
    """
    centres = X[kmeans_plus_plus(X, K, rng, trials=2 + int(math.log(K)))]
    labels = np.argmin(np.sum((X[:, None, :] - centres[None]) ** 2, axis=2), axis=1)
    return np.eye(K)[labels]


def _data(X, argument: str = "X", D: int | None = None) -> np.ndarray:
    array = np.asarray(X)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must be a numeric array, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{argument} must have shape (N, D) with N, D ≥ 1, got {array.shape}")
    if D is not None and array.shape[1] != D:
        raise ValueError(f"{argument} must have {D} columns like the data the mixture was "
                         f"fitted to, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{argument} contains NaN or infinity")
    return array.astype(np.float64)


def _check_mean_and_dof(m0: np.ndarray, nu0: float, D: int) -> None:
    checks.shape(m0.shape == (D,), "mean_prior", f"({D},) for data with D = {D}", m0.shape)
    if nu0 <= D - 1:
        raise ValueError(f"degrees_of_freedom_prior must exceed D − 1 = {D - 1}, got {nu0}")


def _sample_covariance(X: np.ndarray) -> np.ndarray:
    N, D = X.shape
    if N < 2:
        raise ValueError("covariance_prior=None uses the sample covariance of X, which "
                         "needs N ≥ 2 rows; pass covariance_prior")
    return np.cov(X.T).reshape(D, D)


def _prior_cholesky(scale: np.ndarray, source: str, D: int) -> np.ndarray:
    """L₀ with L₀L₀ᵀ = scale, after checking that scale is a symmetric (D, D) matrix;
    ``source`` names where scale came from, for the messages."""
    checks.shape(scale.shape == (D, D), "covariance_prior", f"({D}, {D})", scale.shape)
    if np.max(np.abs(scale - scale.T)) > 1e-10 * np.max(np.abs(scale)):
        raise ValueError(f"{source} must be symmetric")
    try:
        return np.linalg.cholesky(scale)
    except np.linalg.LinAlgError:
        raise ValueError(f"{source} must be positive definite (pass covariance_prior when "
                         "the data are degenerate)") from None


class BayesianGaussianMixture:
    """K-component Bayesian Gaussian mixture with full covariances, fitted by CAVI.

    ``fit`` returns a ``BayesianMixtureFit`` and keeps it as ``self.fitted`` for ``predict_proba``.

    Verified by: tests/cavi/test_bayesian_gmm.py::test_matches_scikit_learn_from_the_same_start
    """

    def __init__(self, K: int, weight_concentration_prior=None, mean_prior=None,
                 mean_precision_prior=None, degrees_of_freedom_prior=None, covariance_prior=None):
        self.K = checks.int_at_least(K, "K")
        self.weight_concentration_prior = checks.positive(
            weight_concentration_prior, "weight_concentration_prior", number=True, optional=True)
        self.mean_precision_prior = checks.positive(
            mean_precision_prior, "mean_precision_prior", number=True, optional=True)
        self.degrees_of_freedom_prior = checks.positive(
            degrees_of_freedom_prior, "degrees_of_freedom_prior", number=True, optional=True)
        self.mean_prior = None
        if mean_prior is not None:
            if np.ndim(mean_prior) != 1:
                raise ValueError(f"mean_prior must have shape (D,), got {np.shape(mean_prior)}")
            self.mean_prior = _data(np.asarray(mean_prior)[None], "mean_prior")[0]
        self.covariance_prior = None if covariance_prior is None else _data(
            covariance_prior, "covariance_prior")
        self.fitted: BayesianMixtureFit | None = None

    def resolve_prior(self, X: np.ndarray) -> MixturePrior:
        """The prior for data X (N, D): the given hyperparameters, scikit-learn's defaults for
        the rest, and L₀ with L₀L₀ᵀ = covariance_prior; checks shapes, ν₀ > D − 1 and that
        covariance_prior is symmetric positive definite.

        Verified by: tests/cavi/test_bayesian_gmm.py::test_defaults_follow_scikit_learn
        """
        D = X.shape[1]
        m0 = X.mean(axis=0) if self.mean_prior is None else self.mean_prior
        nu0 = float(D) if self.degrees_of_freedom_prior is None else self.degrees_of_freedom_prior
        _check_mean_and_dof(m0, nu0, D)
        if self.covariance_prior is None:
            scale, source = _sample_covariance(X), "the sample covariance of X"
        else:
            scale, source = self.covariance_prior, "covariance_prior"
        cholesky = _prior_cholesky(scale, source, D)  # L₀ L₀ᵀ = scale
        alpha0 = 1.0 / self.K if self.weight_concentration_prior is None else \
            self.weight_concentration_prior
        beta0 = 1.0 if self.mean_precision_prior is None else self.mean_precision_prior
        return MixturePrior(alpha0=alpha0, m0=m0, beta0=beta0, nu0=nu0, W0_inv_cholesky=cholesky)

    def fit(self, X, init=None, rng=None, max_iter: int = 200, tol: float = 1e-8,
            progress: bool = False) -> BayesianMixtureFit:
        """Coordinate ascent from responsibilities ``init`` (N, K) (rows on the simplex), or from
        a k-means++ seeding drawn with ``rng`` (None: np.random.default_rng(0)), for at most
        ``max_iter`` sweeps; see the module docstring for the sweep and the stopping rule.
        X (and init) are read as float64, as all of the coordinate ascent runs in float64.

        Verified by: tests/cavi/test_bayesian_gmm.py::test_elbo_never_decreases,
        ::test_recovers_well_separated_means
        """
        X = _data(X)
        N, K = X.shape[0], self.K
        max_iter = checks.integer(max_iter, "max_iter", 1)
        tol = checks.real(tol, "tol", 0.0)
        if init is None:
            rng = checks.generator(rng, optional=True) or np.random.default_rng(DEFAULT_SEED)
            if N < K:
                raise ValueError(f"k-means++ seeding needs at least K = {K} rows of X, got "
                                 f"N = {N}; pass init")
        else:
            init = _data(init, "init")
            if init.shape != (N, K):
                raise ValueError(f"init must have shape (N, K) = ({N}, {K}), got {init.shape}")
            if np.any(init < 0) or np.max(np.abs(init.sum(axis=1) - 1.0)) > 1e-8:
                raise ValueError("init must be responsibilities: non-negative rows summing to 1")
        prior = self.resolve_prior(X)
        r = kmeans_plusplus_responsibilities(X, K, rng) if init is None else init

        history, converged, sweep = [], False, 0
        for sweep in tqdm(range(1, max_iter + 1), desc="CAVI", disable=not progress,
                          leave=False):
            factors = update_global_factors(X, prior, r)
            history.append(elbo(X, prior, r, factors))
            r = update_responsibilities(X, factors)
            history.append(elbo(X, prior, r, factors))
            if sweep > 1 and history[-1] - history[-3] <= tol * abs(history[-1]):
                converged = True
                break
        self.fitted = BayesianMixtureFit(**vars(factors), r=r, elbo_history=history,
                                         converged=converged, n_iter=sweep, prior=prior)
        return self.fitted

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities (N, K) of new points under the fitted factors: the CAVI update of
        q(z) for each point with the global factors held fixed (see update_responsibilities).

        Verified by: tests/cavi/test_bayesian_gmm.py::test_predict_proba_matches_scikit_learn
        """
        if self.fitted is None:
            raise ValueError("predict_proba needs a fitted mixture: call fit(X) first")
        return update_responsibilities(_data(X, D=self.fitted.m.shape[1]), self.fitted)

"""Coordinate-ascent VI for the Poisson–Gaussian mixture ("earthquakes").

K super-epicentres.  For each event n: Z_n ~ Cat(π); location X_n | Z_n = k ~ N(μ_k, τ⁻¹ I₂);
strength S_n | Z_n = k ~ Poisson(λ_k).  Priors μ_k ~ N(ν, ρ⁻¹ I₂), λ_k ~ Gamma(α, β) (shape,
rate); π, τ, ν, ρ, α, β are fixed.  Mean field

    q(Z, μ, λ) = Πₙ Cat(Z_n; r_n) Πₖ N(μ_k; m_k, s_k⁻¹ I₂) Gamma(λ_k; a_k, b_k).

CAVI: with all other factors held, the ELBO is maximized over one factor q_j by
q_j ∝ exp E_{q₋ⱼ}[log p(X, S, Z, μ, λ)] (the ELBO is then −KL(q_j ‖ that density) + const).  The
complete-data log density is

    log p = Σₙₖ z_nk [log π_k − log 2π + log τ − (τ/2)‖X_n − μ_k‖² + S_n log λ_k − λ_k − log S_n!]
            + Σₖ [−log 2π + log ρ − (ρ/2)‖μ_k − ν‖² + α log β − log Γ(α) + (α − 1) log λ_k − βλ_k],

and each update method below reads its factor off this sum.  Each update is exact, so the ELBO
(``minivae/cavi/poisson_gaussian_elbo.py``) cannot decrease at any step.  Plain NumPy, float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.cavi import poisson_gaussian_elbo as objective
from minivae.cavi.poisson_gaussian_elbo import log_evidence_exact  # noqa: F401  (public here too)
from minivae.engine.ops.special import digamma_array
from minivae.topics.clustering import kmeans_plus_plus

DEFAULT_SEED = 0  # rng=None means np.random.default_rng(DEFAULT_SEED): fits are reproducible


@dataclass
class PoissonGaussianFit:
    """A fitted q: r (N, K); q(μ_k) = N(m_k, s_k⁻¹ I₂) with m (K, 2), s (K,); q(λ_k) =
    Gamma(a_k, b_k) with a, b (K,); ``elbo_history`` has one value per coordinate update
    (three per sweep: after r, after (a, b), after (m, s)); ``n_iter`` counts sweeps."""
    r: np.ndarray
    m: np.ndarray
    s: np.ndarray
    a: np.ndarray
    b: np.ndarray
    elbo_history: np.ndarray
    converged: bool
    n_iter: int

    @property
    def elbo(self) -> float:
        return float(self.elbo_history[-1])

    @property
    def rates(self) -> np.ndarray:
        """Posterior mean rates E_q λ_k = a_k/b_k."""
        return self.a / self.b


def _real_array(name: str, value, shape: tuple) -> np.ndarray:
    """``value`` as float64 of the given shape (None in ``shape`` = any length ≥ 1), finite."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.ndim != len(shape) or any(want is not None and got != want
                                       for got, want in zip(array.shape, shape)):
        expected = "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity")
    return array.astype(np.float64)


class PoissonGaussianMixture:
    """Prior hyperparameters of the Poisson–Gaussian mixture and its CAVI fit.

    K ≥ 1 components; ``pi`` (K,) positive mixing weights summing to 1; ``tau`` > 0 precision
    of the locations around their epicentre; ``nu`` (2,) and ``rho`` > 0 mean and precision of
    the epicentres' prior; ``alpha``, ``beta`` > 0 shape and rate of the rates' Gamma prior.
    """

    def __init__(self, K, pi, tau, nu, rho, alpha, beta):
        self.K = checks.integer(K, "K", 1)
        pi = _real_array("pi", pi, (self.K,))
        if np.any(pi <= 0) or abs(pi.sum() - 1.0) > 1e-6:
            raise ValueError(f"pi must hold K = {self.K} positive weights summing to 1, got {pi}")
        self.pi = pi / pi.sum()
        self.log_pi = np.log(self.pi)
        self.tau = checks.positive(tau, "tau", number=True)
        self.nu = _real_array("nu", nu, (2,))
        self.rho = checks.positive(rho, "rho", number=True)
        self.alpha = checks.positive(alpha, "alpha", number=True)
        self.beta = checks.positive(beta, "beta", number=True)
        self.fitted: PoissonGaussianFit | None = None

    # --- the three coordinate updates -------------------------------------------------------

    def update_responsibilities(self, X, S, m, s, a, b) -> np.ndarray:
        """q(Z_n) = Cat(r_n): the terms of log p holding z_nk, averaged over q(μ) q(λ):

        log r_nk = log π_k − (τ/2)(‖X_n − m_k‖² + 2/s_k) + S_n (ψ(a_k) − log b_k) − a_k/b_k + c_n

        (E‖X_n − μ_k‖² = ‖X_n − m_k‖² + 2/s_k, E log λ_k = ψ(a_k) − log b_k, E λ_k = a_k/b_k;
        −log 2π + log τ − log S_n! do not depend on k and join c_n).  Why this maximizes: with
        ℓ_nk the k-dependent part, the ELBO's r_n terms are Σₖ r_nk ℓ_nk − Σₖ r_nk log r_nk
        = log Σₖ e^ℓ_nk − KL(r_n ‖ softmax ℓ_n), largest at r_n = softmax ℓ_n, computed as
        r_nk = exp(ℓ_nk − max_j ℓ_nj) / Σ_j exp(ℓ_nj − max_j ℓ_nj) (log-sum-exp, never overflows).

        Verified by: tests/cavi/test_poisson_gaussian.py::test_updates_are_coordinate_maximizers
        """
        X, S = self._data(X, S)
        m, s, a, b = self._global_factors(m, s, a, b)
        logits = (self.log_pi - 0.5 * self.tau * objective.expected_squared_distances(X, m, s)
                  + S[:, None] * (digamma_array(a) - np.log(b)) - a / b)
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        return r / r.sum(axis=1, keepdims=True)

    def update_rates(self, S, r) -> tuple[np.ndarray, np.ndarray]:
        """q(λ_k) = Gamma(a_k, b_k): the λ_k terms of E_q(Z)[log p] are

        Σₙ r_nk (S_n log λ_k − λ_k) + (α − 1) log λ_k − β λ_k = (a_k − 1) log λ_k − b_k λ_k,

        a Gamma log density with a_k = α + Σₙ r_nk S_n and b_k = β + Σₙ r_nk.

        Verified by: tests/cavi/test_poisson_gaussian.py::test_updates_are_coordinate_maximizers,
        ::test_k1_factors_are_the_exact_posterior
        """
        S = self._strengths(S, len(S) if np.ndim(S) else 0)
        r = self._responsibilities(r, len(S))
        return self.alpha + r.T @ S, self.beta + r.sum(axis=0)

    def update_locations(self, X, r) -> tuple[np.ndarray, np.ndarray]:
        """q(μ_k) = N(m_k, s_k⁻¹ I₂): the μ_k terms of E_q(Z)[log p] are

        −(τ/2) Σₙ r_nk ‖X_n − μ_k‖² − (ρ/2)‖μ_k − ν‖² = −(s_k/2)‖μ_k − m_k‖² + const

        (complete the square), with s_k = ρ + τ Σₙ r_nk and m_k = (ρν + τ Σₙ r_nk X_n) / s_k.

        Verified by: tests/cavi/test_poisson_gaussian.py::test_updates_are_coordinate_maximizers,
        ::test_k1_factors_are_the_exact_posterior
        """
        X = _real_array("X", X, (None, 2))
        r = self._responsibilities(r, len(X))
        s = self.rho + self.tau * r.sum(axis=0)
        return (self.rho * self.nu + self.tau * (r.T @ X)) / s[:, None], s

    # --- the objective ----------------------------------------------------------------------

    def elbo_terms(self, X, S, r, m, s, a, b) -> dict[str, float]:
        """The ELBO's eight named terms; see ``poisson_gaussian_elbo.elbo_terms`` for formulas.

        Verified by: tests/cavi/test_poisson_gaussian.py::test_elbo_terms_match_scipy_monte_carlo
        """
        X, S = self._data(X, S)
        r, (m, s, a, b) = self._responsibilities(r, len(X)), self._global_factors(m, s, a, b)
        return objective.elbo_terms(self, X, S, r, m, s, a, b)

    def elbo(self, X, S, r, m, s, a, b) -> float:
        """E_q[log p(X, S, Z, μ, λ)] − E_q[log q(Z, μ, λ)], all constants kept (nats).

        Verified by: tests/cavi/test_poisson_gaussian.py::test_k1_elbo_equals_exact_log_evidence
        """
        X, S = self._data(X, S)
        r, (m, s, a, b) = self._responsibilities(r, len(X)), self._global_factors(m, s, a, b)
        return objective.elbo(self, X, S, r, m, s, a, b)

    # --- fitting ----------------------------------------------------------------------------

    def initial_factors(self, X, S, rng: np.random.Generator):
        """(m, s, a, b) to start from: K seed events picked by greedy D² sampling of the
        locations (k-means++ seeding: each next seed is drawn with probability ∝ squared
        distance to the nearest seed so far; of 2 + ⌊log K⌋ such draws the one leaving the
        smallest total squared distance is kept), so seeds rarely share a cluster.  Each seed
        acts as if it held an even share N/K of the events: m_k = X_seed, s_k = ρ + τN/K,
        a_k = α + (N/K) S_seed, b_k = β + N/K.

        Verified by: tests/cavi/test_poisson_gaussian.py::test_fit_recovers_separated_components
        """
        X, S = self._data(X, S)
        seeds = kmeans_plus_plus(X, self.K, rng, trials=2 + int(np.log(self.K)))
        share = len(X) / self.K
        ones = np.ones(self.K)
        return (X[seeds].copy(), (self.rho + self.tau * share) * ones,
                self.alpha + share * S[seeds], (self.beta + share) * ones)

    def fit(self, X, S, init=None, rng=None, max_iter: int = 200, tol: float = 1e-8,
            progress: bool = False) -> PoissonGaussianFit:
        """Run CAVI sweeps r → (a, b) → (m, s), recording the ELBO after every update.

        ``init``: (m, s, a, b) to start from (``rng`` is then unused); None draws them with
        ``initial_factors`` from ``rng`` (a numpy Generator; None means
        np.random.default_rng(0), so repeated fits agree).  Stops after a sweep
        whose ELBO changed by at most tol·(1 + |ELBO|), or after ``max_iter`` sweeps.  The
        result is also kept as ``self.fitted`` for ``predict_proba``.

        Verified by: tests/cavi/test_poisson_gaussian.py::test_elbo_never_decreases_at_any_update,
        ::test_fit_recovers_separated_components
        """
        X, S = self._data(X, S)
        max_iter = checks.integer(max_iter, "max_iter", 1)
        tol = checks.real(tol, "tol", 0.0)
        if init is None:
            rng = np.random.default_rng(DEFAULT_SEED) if rng is None else rng
            if not isinstance(rng, np.random.Generator):
                raise TypeError(f"rng must be a numpy Generator or None, got {type(rng).__name__}")
            m, s, a, b = self.initial_factors(X, S, rng)
        else:
            m, s, a, b = self._initial(init)

        history, converged, sweeps = [], False, 0
        bar = tqdm(range(max_iter), desc="CAVI", disable=not progress, leave=False)
        for sweeps in range(1, max_iter + 1):
            r = self.update_responsibilities(X, S, m, s, a, b)
            history.append(objective.elbo(self, X, S, r, m, s, a, b))
            a, b = self.update_rates(S, r)
            history.append(objective.elbo(self, X, S, r, m, s, a, b))
            m, s = self.update_locations(X, r)
            history.append(objective.elbo(self, X, S, r, m, s, a, b))
            bar.update(1)
            bar.set_postfix(elbo=f"{history[-1]:.6g}")
            if sweeps > 1 and abs(history[-1] - history[-4]) <= tol * (1.0 + abs(history[-1])):
                converged = True
                break
        bar.close()
        self.fitted = PoissonGaussianFit(r, m, s, a, b, np.array(history), converged, sweeps)
        return self.fitted

    def predict_proba(self, X, S, fitted: PoissonGaussianFit | None = None) -> np.ndarray:
        """Responsibilities of new events under a fitted q(μ) q(λ) (default: the last fit): the
        r-update above for those events, i.e. the CAVI factor q(Z_new) with the global factors
        held.  (They do not feed back into q(μ), q(λ); a refit would.)

        Verified by: tests/cavi/test_poisson_gaussian.py::test_predict_proba_matches_the_fit
        """
        fitted = self.fitted if fitted is None else fitted
        if fitted is None:
            raise ValueError("predict_proba needs a fitted q: call fit first or pass fitted=")
        if not isinstance(fitted, PoissonGaussianFit):
            raise TypeError(f"fitted must be a PoissonGaussianFit, got {checks.describe(fitted)}")
        return self.update_responsibilities(X, S, fitted.m, fitted.s, fitted.a, fitted.b)

    # --- input checks -----------------------------------------------------------------------

    def _data(self, X, S) -> tuple[np.ndarray, np.ndarray]:
        X = _real_array("X", X, (None, 2))
        return X, self._strengths(S, len(X))

    @staticmethod
    def _strengths(S, n_events: int) -> np.ndarray:
        S = _real_array("S", S, (None,))
        if len(S) != n_events:
            raise ValueError(f"S must hold one strength per event: X has {n_events} rows, "
                             f"S has {len(S)}")
        if np.any(S < 0) or np.any(S != np.round(S)):
            raise ValueError("S must hold non-negative integer counts, got "
                             f"{S[(S < 0) | (S != np.round(S))][:3]}")
        return S

    def _initial(self, init) -> tuple[np.ndarray, ...]:
        if not isinstance(init, (tuple, list)) or len(init) != 4:
            raise TypeError("init must be a tuple (m, s, a, b) of arrays, got "
                            f"{type(init).__name__}")
        return self._global_factors(*init, prefix="init ")

    def _global_factors(self, m, s, a, b, prefix: str = "") -> tuple[np.ndarray, ...]:
        """q(μ), q(λ)'s parameters: m (K, 2) finite, s, a, b (K,) positive."""
        m = _real_array(f"{prefix}m", m, (self.K, 2))
        s, a, b = (_real_array(f"{prefix}{name}", value, (self.K,))
                   for name, value in zip("sab", (s, a, b)))
        for name, value in zip("sab", (s, a, b)):
            checks.positive(value, f"{prefix}{name}")
        return m, s, a, b

    def _responsibilities(self, r, n_events: int) -> np.ndarray:
        """q(Z)'s parameters: r (N, K), each row a probability vector."""
        r = _real_array("r", r, (n_events, self.K))
        checks.require((r >= 0).all() and np.allclose(r.sum(axis=1), 1.0), "r",
                       "non-negative with rows summing to 1", r)
        return r

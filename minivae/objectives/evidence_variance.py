"""How noisy a Monte Carlo estimate of p(x) is, in closed form.

Both estimators of minivae/objectives/likelihood.py average n weights with E[w] = p(x):
prior sampling (w = p(x|z), z ~ p(z)) and importance sampling (w = p(x, z)/q(z), z ~ q).  Since
p(x, z) = p(x) p(z|x),

    w = p(x) · p(z|x)/q(z),     E_q[w²]/p(x)² = ∫ p(z|x)²/q(z) dz = 1 + χ²(p(·|x) ‖ q),

and the mean p̂_n of n weights has relative variance Var(p̂_n)/p(x)² = χ²(p(·|x) ‖ q)/n: the
spread falls as 1/√n whatever q is, and q sets the constant.  Prior sampling is the case
q = p(z).  q = p(z|x) gives χ² = 0: every weight equals p(x).

For one coordinate with a Gaussian posterior N(a, A) and a Gaussian proposal N(m, S) the
integral is Gaussian (complete the square in z; it converges only when 2S > A):

    ∫ N(z; a, A)²/N(z; m, S) dz = S / √(A (2S − A)) · exp((a − m)²/(2S − A)),

and for independent coordinates the factors multiply.  The 1 at q = posterior (S = A, m = a)
is the check; a proposal narrower than half the posterior's variance has infinite variance.

The "one latent explains x" scenario: z uniform over |Z| values, only z̄ gives p(x|z) > 0.
Then k prior draws contain z̄ with probability 1 − (1 − 1/|Z|)^k (≈ k/|Z| when k ≪ |Z|), and
χ² = |Z| − 1, so the relative variance of p̂_k is (|Z| − 1)/k.

Verified by: tests/objectives/test_evidence_variance.py
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks


def gaussian_relative_second_moment(posterior_loc, posterior_scale, proposal_loc,
                                    proposal_scale) -> np.ndarray:
    """E_q[w²]/p(x)² = S/√(A(2S − A)) · exp((a − m)²/(2S − A)) per coordinate (A = posterior
    variance, S = proposal variance), +∞ where 2S ≤ A; elementwise (multiply over independent
    coordinates).  Computed in logs, so only a truly huge value overflows (to +∞).

    Verified by:
    tests/objectives/test_evidence_variance.py::test_gaussian_second_moment_matches_quadrature,
    ::test_importance_sampling_spread_follows_the_closed_form
    """
    a, m = (checks.values(v).astype(np.float64) for v in (posterior_loc, proposal_loc))
    checks.finite(a, "posterior_loc"), checks.finite(m, "proposal_loc")
    A, S = (np.square(checks.values(checks.positive(v, name)).astype(np.float64))
            for v, name in ((posterior_scale, "posterior_scale"),
                            (proposal_scale, "proposal_scale")))
    excess = 2.0 * S - A
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_moment = np.log(S) - 0.5 * (np.log(A) + np.log(excess)) + np.square(a - m) / excess
        return np.where(excess > 0, np.exp(log_moment), np.inf)


def hit_probability(latent_count: int, draws: int) -> float:
    """P(z̄ ∈ {z_1, …, z_k}) = 1 − (1 − 1/|Z|)^k for k uniform draws with replacement,
    as −expm1(k · log1p(−1/|Z|)) (no cancellation when 1/|Z| is tiny).

    Verified by:
    tests/objectives/test_evidence_variance.py::test_hit_probability_matches_enumeration
    """
    latent_count = checks.int_at_least(latent_count, "latent_count", 1)
    draws = checks.int_at_least(draws, "draws", 1)
    return -math.expm1(draws * math.log1p(-1.0 / latent_count)) if latent_count > 1 else 1.0

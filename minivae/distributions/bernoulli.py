"""The Bernoulli distribution on {0, 1}, parameterized by its logit, and its closed-form KL.

    p(x) = pˣ (1 − p)¹⁻ˣ,   p = σ(l) = 1/(1 + e⁻ˡ),   l = log p − log(1 − p)

The logit l is the primary parameter because both log-probabilities are exact functions of it,

    log p = log σ(l) = −softplus(−l),      log(1 − p) = log σ(−l) = −softplus(l),

for every l, whereas log(1 − p) computed from a rounded p is lost once p rounds to 1 (l ≳ 37).
p = 1 and p = 0 are the logits +∞ and −∞.  The formulas below then meet 0 · ∞ (a weight
σ(∓∞) = 0 in front of an infinite −log-probability); the convention 0 · log 0 = 0 says that
product is 0, and the code selects the exact limit instead of ever forming it, so no NaN
appears.

Verified by: tests/test_dist_discrete.py::test_bernoulli_matches_scipy,
::test_bernoulli_is_exact_at_probabilities_zero_and_one
"""
from __future__ import annotations

import numpy as np

from minivae import ops
from minivae.distributions.base import Distribution, as_parameters, check_rng, require
from minivae.distributions.kl import register_cross_entropy, register_kl
from minivae.tensor import Tensor


class Bernoulli(Distribution):
    """Bernoulli(p) for each entry of ``probs`` or of ``logits`` (give exactly one).

    probs : p ∈ [0, 1]; kept as given and turned into l = log p − log1p(−p) (p = 0 → −∞,
        p = 1 → +∞), so gradients flow back to p.
    logits : l ∈ [−∞, +∞] (not NaN).
    validate_args : check the ranges above (ValueError otherwise).

    ``sample`` returns a float Tensor of 0s and 1s; there is no ``rsample``, since a draw is a
    step function of p (use a score-function estimator or a relaxation instead).
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        if (probs is None) == (logits is None):
            raise ValueError("exactly one of probs and logits must be given, got "
                             f"{'both' if probs is not None else 'neither'}")
        if probs is not None:
            (probs,) = as_parameters(probs=probs)
            if validate_args:
                require((probs.data >= 0) & (probs.data <= 1), "probs", "in [0, 1]", probs)
            with np.errstate(divide="ignore"):  # p = 0 or 1: the logit is ±∞ on purpose
                logits = probs.log() - (-probs).log1p()
        else:
            (logits,) = as_parameters(logits=logits)
            if validate_args:
                require(~np.isnan(logits.data), "logits", "a number (±inf allowed), not NaN",
                        logits)
        self._given_probs, self.logits = probs, logits
        super().__init__(logits.shape, (), logits.dtype)

    @property
    def probs(self) -> Tensor:
        """p: the given probs, else σ(l)."""
        return self._given_probs if self._given_probs is not None else self.logits.sigmoid()

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """x = 1[u < p] with u ~ Uniform[0, 1), so P(x = 1) = p (exactly 0 or 1 at p ∈ {0, 1}).

        Verified by: tests/test_dist_discrete.py::test_bernoulli_sampler_frequencies
        """
        uniform = check_rng(rng).random(self.sample_shape(shape), dtype=self.dtype)
        return Tensor((uniform < self.probs.data).astype(self.dtype))

    def log_prob(self, x) -> Tensor:
        """log p(x) = x log p + (1 − x) log(1 − p) = −x·softplus(−l) − (1 − x)·softplus(l).

        This equals x·l − softplus(l) for finite l; written with the two softplus terms it is
        exact at l = ±∞ too (a term whose weight x or 1 − x is 0 is dropped: 0 · log 0 = 0).
        Targets: x ∈ {0, 1} give the log-probability.  A soft target x ∈ (0, 1) (e.g. a grey
        pixel) gives −(binary cross-entropy of p against x), which is not a normalized
        log-density but is maximized at p = x.  x outside [0, 1] (or NaN) gives −∞.
        d/dl = x − σ(l).

        Verified by: tests/test_dist_discrete.py::test_bernoulli_matches_scipy,
        ::test_bernoulli_is_exact_at_probabilities_zero_and_one,
        ::test_bernoulli_soft_targets_and_outside_support,
        ::test_bernoulli_gradients
        """
        x = self._value(x)
        inside = (x.data >= 0) & (x.data <= 1)
        x = ops.where(inside, x, 0.0)
        minus_log_p = ops.where(x.data == 0, 0.0, (-self.logits).softplus())
        minus_log_not_p = ops.where(x.data == 1, 0.0, self.logits.softplus())
        value = -(x * minus_log_p + (1.0 - x) * minus_log_not_p)
        return ops.where(inside, value, -np.inf)

    def entropy(self) -> Tensor:
        """H = −p log p − (1 − p) log(1 − p) = σ(l)·softplus(−l) + σ(−l)·softplus(l).

        Both terms are products of small positive numbers for large |l| (no cancellation, as
        the equivalent softplus(l) − l·σ(l) would suffer); H = 0 at l = ±∞.

        Verified by: tests/test_dist_discrete.py::test_bernoulli_matches_scipy
        """
        return _cross_entropy_in_logits(self.logits, self.logits)

    @property
    def mean(self) -> Tensor:
        """E[x] = p.  Verified by: tests/test_dist_discrete.py::test_bernoulli_matches_scipy"""
        return self.probs

    @property
    def variance(self) -> Tensor:
        """Var[x] = p(1 − p) = σ(l)·σ(−l) (accurate when 1 − p is tiny).

        Verified by: tests/test_dist_discrete.py::test_bernoulli_matches_scipy
        """
        return self.logits.sigmoid() * (-self.logits).sigmoid()


def _where_finite(logits: Tensor) -> Tensor:
    """The logits with ±∞ replaced by 0, so a branch that will be discarded stays finite."""
    return ops.where(np.isfinite(logits.data), logits, 0.0)


def _pair_in_logits(lp: Tensor, lq: Tensor, finite_formula) -> Tensor:
    """``finite_formula(lp, lq)`` for finite logits, and the exact limits elsewhere.

    Both KL(p ‖ q) and −E_p[log q] reduce to −log q(1) = softplus(−l_q) at p = 1 (l_p = +∞)
    and to −log q(0) = softplus(l_q) at p = 0 (l_p = −∞), because p log p = 0 there; and both
    are +∞ where q gives probability 0 to a value p can take (l_q = +∞ while l_p < +∞, or
    l_q = −∞ while l_p > −∞).  That leaves finite l_p with finite l_q for the formula.
    """
    impossible = (((lq.data == np.inf) & (lp.data != np.inf))
                  | ((lq.data == -np.inf) & (lp.data != -np.inf)))
    lq_possible = ops.where(impossible, 0.0, lq)  # keeps softplus(∓l_q) finite in dropped branches
    value = finite_formula(_where_finite(lp), _where_finite(lq))
    value = ops.where(lp.data == -np.inf, lq_possible.softplus(), value)
    value = ops.where(lp.data == np.inf, (-lq_possible).softplus(), value)
    return ops.where(impossible, np.inf, value)


def _cross_entropy_in_logits(lp: Tensor, lq: Tensor) -> Tensor:
    def formula(lp, lq):
        return lp.sigmoid() * (-lq).softplus() + (-lp).sigmoid() * lq.softplus()

    return _pair_in_logits(lp, lq, formula)


@register_cross_entropy(Bernoulli, Bernoulli)
def cross_entropy_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """−E_p[log q(x)] = −p log q − (1 − p) log(1 − q)
                     = σ(l_p)·softplus(−l_q) + σ(−l_p)·softplus(l_q).

    At p ∈ {0, 1} the term with weight 0 is dropped; +∞ where q(x) = 0 < p(x).
    Verified by: tests/test_dist_discrete.py::test_bernoulli_kl_is_cross_entropy_minus_entropy,
    ::test_bernoulli_kl_and_cross_entropy_at_the_boundary
    """
    return _cross_entropy_in_logits(p.logits, q.logits)


@register_kl(Bernoulli, Bernoulli)
def kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """KL(p ‖ q) = p log(p/q) + (1 − p) log((1 − p)/(1 − q))
                = σ(l_p)·[softplus(−l_q) − softplus(−l_p)]
                  + σ(−l_p)·[softplus(l_q) − softplus(l_p)].

    With softplus(−l) = softplus(l) − l this is the same as σ(l_p)(l_p − l_q) + softplus(l_q)
    − softplus(l_p), but that form subtracts numbers of size |l| to get a result that may be
    tiny, and forms ∞ − ∞ at p ∈ {0, 1}.  In the form used, each bracket is a log-ratio and
    each weight is a probability, so for |l| up to 1e4 and beyond every term is finite and
    small terms stay small.  Limits: KL = −log q(1) at p = 1, −log q(0) at p = 0, +∞ where
    q(x) = 0 < p(x).  Where p ≈ q the two terms cancel to about p(1 − p)(l_p − l_q)²/2 and
    rounding can leave −1e-17 or so; KL ≥ 0 exactly, so a negative result is set to 0.

    Verified by: tests/test_dist_discrete.py::test_bernoulli_kl_matches_direct_sum,
    ::test_bernoulli_kl_is_finite_for_extreme_logits,
    ::test_bernoulli_kl_and_cross_entropy_at_the_boundary,
    ::test_bernoulli_kl_matches_monte_carlo, ::test_bernoulli_kl_is_cross_entropy_minus_entropy
    """
    def formula(lp, lq):
        log_ratio_one = (-lq).softplus() - (-lp).softplus()  # log p − log q
        log_ratio_zero = lq.softplus() - lp.softplus()  # log(1 − p) − log(1 − q)
        return lp.sigmoid() * log_ratio_one + (-lp).sigmoid() * log_ratio_zero

    return _pair_in_logits(p.logits, q.logits, formula).relu()

"""The Bernoulli distribution on {0, 1}, parameterized by its logit or its probability.

    p(x) = pˣ (1 − p)¹⁻ˣ,   p = σ(l) = 1/(1 + e⁻ˡ),   l = log p − log(1 − p)

Every formula below is written with four numbers per entry: the weights P(1) = p and
P(0) = 1 − p, and their logarithms log P(1), log P(0).  From a logit they are exact for every l,

    log P(1) = log σ(l) = −softplus(−l),      log P(0) = log σ(−l) = −softplus(l),

whereas log(1 − p) computed from a rounded p is lost once p rounds to 1 (l ≳ 37).  From a
probability they are p, 1 − p, log p and log1p(−p), so gradients reach p directly (the chain
through l = ±∞ would multiply 0 by ∞ at p ∈ {0, 1}).  p = 1 and p = 0 are the logits +∞ and −∞.
A term whose weight is 0 is dropped (0 · log 0 = 0) by selecting the exact limit instead of
forming the product, so no NaN appears in a value or a gradient.

``BernoulliLogits`` is the VAE's decoder likelihood p(x | z): independent pixels over the last
axis, from the decoder's logits, with the fused kernel as a drop-in for its log-probability.

Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_matches_scipy,
::test_bernoulli_is_exact_at_probabilities_zero_and_one
"""
from __future__ import annotations

import numpy as np

from minivae import checks, kernels
from minivae.checks import require
from minivae.distributions.base import (
    Distribution,
    Independent,
    as_parameters,
    log_of_weight,
    probs_or_logits,
)
from minivae.distributions.kl import register_cross_entropy, register_kl
from minivae.engine import ops
from minivae.engine.ops import fused
from minivae.engine.ops.elementwise import stable_sigmoid
from minivae.engine.ops.ratios import generalized_kl, log_ratio_array
from minivae.engine.tensor import Tensor


def check_targets(x: np.ndarray, soft_targets: bool, name: str = "x") -> None:
    """Raise ValueError unless every target is 0 or 1 (any value in [0, 1] if soft).

    One pass per check on valid data (NaN and ±∞ fail both comparisons); the offending values
    are looked for only when the check fails.
    """
    if soft_targets:
        if not (x.size == 0 or (x.min() >= 0 and x.max() <= 1)):
            bad = x[~((x >= 0) & (x <= 1))][:3]
            raise ValueError(f"{name} must be in [0, 1] with soft_targets=True, got {bad}")
    else:
        if not ((x == 0) | (x == 1)).all():
            bad = x[(x != 0) & (x != 1)][:3]
            raise ValueError(f"{name} must hold 0s and 1s (pass soft_targets=True to score values "
                             f"in [0, 1], e.g. grey levels, by the cross-entropy), got {bad}")


class Bernoulli(Distribution):
    """Bernoulli(p) for each entry of ``probs`` or of ``logits`` (give exactly one).

    probs : p ∈ [0, 1]; kept as given (gradients flow to p); ``logits`` is derived from it.
    logits : l ∈ [−∞, +∞] (not NaN).
    soft_targets : if False (the default), ``log_prob`` accepts only x ∈ {0, 1}; if True, any
        x ∈ [0, 1] (a grey pixel), scored by minus the binary cross-entropy.
    validate_args : check the ranges above (ValueError otherwise).

    ``sample`` returns a float Tensor of 0s and 1s; there is no ``rsample``, since a draw is a
    step function of p (use a score-function estimator or a relaxation instead).
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True,
                 soft_targets: bool = False):
        given = probs_or_logits(probs, logits)
        self.soft_targets = checks.flag(soft_targets, "soft_targets")
        if given == "probs":
            (probs,) = as_parameters(probs=probs)
            if validate_args:
                require((probs.data >= 0) & (probs.data <= 1), "probs", "in [0, 1]", probs)
            logits = log_of_weight(probs) - log_of_weight(probs, complement=True)
        else:
            (logits,) = as_parameters(logits=logits)
            if validate_args:
                require(~np.isnan(logits.data), "logits", "a number (±inf allowed), not NaN",
                        logits)
        self._given_probs, self.logits = probs, logits
        self._cache: dict = {}
        super().__init__(logits.shape, (), logits.dtype)

    def _pieces(self) -> dict:
        """(P(1), P(0)), (log P(1), log P(0)) and where each value is possible, built once on
        first use (the fused likelihood of ``BernoulliLogits`` never needs them)."""
        if not self._cache:
            p, l = self._given_probs, self.logits
            if p is not None:
                self._cache.update(
                    weights=(p, 1.0 - p),
                    logs=(log_of_weight(p), log_of_weight(p, complement=True)),
                    possible=(p.data > 0, p.data < 1))
            else:
                self._cache.update(
                    weights=(l.sigmoid(), (-l).sigmoid()),
                    logs=(-(-l).softplus(), -l.softplus()),
                    possible=(l.data > -np.inf, l.data < np.inf))
        return self._cache

    @property
    def _weights(self) -> tuple[Tensor, Tensor]:
        return self._pieces()["weights"]

    @property
    def _logs(self) -> tuple[Tensor, Tensor]:
        return self._pieces()["logs"]

    @property
    def _possible(self) -> tuple[np.ndarray, np.ndarray]:
        return self._pieces()["possible"]

    @property
    def probs(self) -> Tensor:
        """p: the given probs, else σ(l)."""
        return self._weights[0]

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """x = 1[u < p] with u ~ Uniform[0, 1), so P(x = 1) = p (exactly 0 or 1 at p ∈ {0, 1}).

        Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_sampler_frequencies
        """
        uniform = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        return Tensor((uniform < self.probs.data).astype(self.dtype))

    def log_prob(self, x) -> Tensor:
        """log p(x) = x log p + (1 − x) log(1 − p) = −x·softplus(−l) − (1 − x)·softplus(l).

        This equals x·l − softplus(l) for finite l; written with the two log-weights it is
        exact at p ∈ {0, 1} too (a term whose weight x or 1 − x is 0 is dropped: 0 · log 0 = 0),
        so log p(1 | p = 1) = 0 with d/dp = 1, and log p(0 | p = 1) = −∞.
        Targets: x ∈ {0, 1}; with ``soft_targets=True`` any x ∈ [0, 1] (e.g. a grey pixel),
        which gives −(binary cross-entropy of p against x): not a normalized log-density, but
        maximized at p = x.  Other targets (or NaN) raise ValueError.  d/dl = x − σ(l).

        Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_matches_scipy,
        ::test_bernoulli_is_exact_at_probabilities_zero_and_one,
        ::test_bernoulli_soft_targets_and_outside_support,
        ::test_bernoulli_gradients
        """
        x = self._value(x)
        check_targets(x.data, self.soft_targets)
        log_one, log_zero = self._logs
        log_one = ops.where(x.data == 0, 0.0, log_one)
        log_zero = ops.where(x.data == 1, 0.0, log_zero)
        return x * log_one + (1.0 - x) * log_zero

    def entropy(self) -> Tensor:
        """H = −p log p − (1 − p) log(1 − p) = σ(l)·softplus(−l) + σ(−l)·softplus(l).

        Both terms are products of small positive numbers for large |l| (no cancellation, as
        the equivalent softplus(l) − l·σ(l) would suffer); H = 0 at p ∈ {0, 1}.

        Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_matches_scipy
        """
        return _expected_minus_log(self, self, _zeros(self))

    @property
    def mean(self) -> Tensor:
        """E[x] = p.  Verified by:
        tests/distributions/test_bernoulli.py::test_bernoulli_matches_scipy"""
        return self.probs

    @property
    def variance(self) -> Tensor:
        """Var[x] = p(1 − p) (= σ(l)·σ(−l), accurate when 1 − p is tiny).

        Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_matches_scipy
        """
        return self._weights[0] * self._weights[1]


def _zeros(p: Bernoulli) -> tuple[Tensor, Tensor]:
    zero = Tensor(np.zeros(p.batch_shape, dtype=p.dtype))
    return zero, zero


def _expected_minus_log(p: Bernoulli, q: Bernoulli, logs_of_p) -> Tensor:
    """Σ_x P(x)·[a(x) − log q(x)] over x ∈ {1, 0}, P the probabilities of p, a = ``logs_of_p``:
    zeros give the cross-entropy −E_p[log q] (and the entropy, with q = p), p's own logs the KL.

    Terms with P(x) = 0 are 0 (0 · log 0 = 0); where q gives 0 to an x that p can take the
    result is +∞.  Both are selected, never formed, so no 0 · ∞ reaches a value or a gradient
    (the gradient of a dropped term is taken as 0).
    """
    total = None
    impossible = np.zeros(np.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=bool)
    for weight, log_p, log_q, possible, q_possible in zip(
            p._weights, logs_of_p, q._logs, p._possible, q._possible):
        dropped = ~possible | ~q_possible  # weight 0, or +∞ handled below
        impossible = impossible | (possible & ~q_possible)
        gap = ops.where(dropped, 0.0, log_p) - ops.where(dropped, 0.0, log_q)
        term = weight * gap
        total = term if total is None else total + term
    return ops.where(impossible, np.inf, total)


@register_cross_entropy(Bernoulli, Bernoulli)
def cross_entropy_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """−E_p[log q(x)] = −p log q − (1 − p) log(1 − q)
                     = σ(l_p)·softplus(−l_q) + σ(−l_p)·softplus(l_q).

    At p ∈ {0, 1} the term with weight 0 is dropped; +∞ where q(x) = 0 < p(x).
    Verified by:
    tests/distributions/test_bernoulli.py::test_bernoulli_kl_is_cross_entropy_minus_entropy,
    ::test_bernoulli_kl_and_cross_entropy_at_the_boundary
    """
    return _expected_minus_log(p, q, _zeros(p))


@register_kl(Bernoulli, Bernoulli)
def kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """KL(p ‖ q) = p log(p/q) + (1 − p) log((1 − p)/(1 − q))
                = Σ_x P(x) (e^(δ_x) − 1 − δ_x),   δ_x = log Q(x) − log P(x),  x ∈ {1, 0},

    the second form by adding Σ_x (Q(x) − P(x)) = 0 term by term: a sum of terms ≥ 0
    (``generalized_kl`` of P(x) and Q(x), with log P(x) for a P(x) too small to be a float), so
    KL ≥ 0 holds without clamping, and near p = q each term is of order P δ², where the first
    form cancels terms of order P δ.  The log-weights are exact for every logit:
    log σ(l) = −softplus(−l).  Limits: where P(x) = 0 the term is its limit Q(x) (0 · log 0 =
    0 in the first form); KL = +∞ where Q(x) = 0 < P(x).

    Verified by: tests/distributions/test_bernoulli.py::test_bernoulli_kl_matches_direct_sum,
    ::test_bernoulli_kl_is_finite_for_extreme_logits,
    ::test_bernoulli_kl_and_cross_entropy_at_the_boundary,
    ::test_bernoulli_kl_matches_monte_carlo, ::test_bernoulli_kl_is_cross_entropy_minus_entropy,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range,
    ::test_named_examples
    """
    total = None
    impossible = np.zeros(np.broadcast_shapes(p.batch_shape, q.batch_shape), dtype=bool)
    for weight, q_weight, log_p, log_q, possible, q_possible, log_ratio in zip(
            p._weights, q._weights, p._logs, q._logs, p._possible, q._possible,
            _log_ratios(p, q)):
        kept = possible & q_possible  # the others add Q(x) (where P(x) = 0) or +∞ (Q = 0 < P)
        impossible = impossible | (possible & ~q_possible)
        log_p, log_q = ops.where(kept, log_p, 0.0), ops.where(kept, log_q, 0.0)
        term = ops.where(kept, generalized_kl(ops.where(kept, weight, 1.0), log_q,
                                              np.where(kept, log_ratio, 0), log_p.data),
                         ops.where(possible, 0.0, q_weight))
        total = term if total is None else total + term
    return ops.where(impossible, np.inf, total)


def _log_ratios(p: Bernoulli, q: Bernoulli) -> tuple[np.ndarray, np.ndarray]:
    """log(Q(x)/P(x)) for x = 1, 0, to relative accuracy where p ≈ q.

    The difference of the rounded log-weights loses the digits of a small log-ratio (it is
    formed from numbers of size log P).  From logits l_p, l_q within 1 of each other:
        log σ(l_q) − log σ(l_p) = log1p(σ(−l_q) (e^(l_q − l_p) − 1)),
        log σ(−l_q) − log σ(−l_p) = log1p(σ(l_q) (e^(l_p − l_q) − 1));
    from probabilities (in float64, where p − q of float32 numbers is exact): log(q/p) and
    log((1 − q)/(1 − p)) by ``log_ratio_array`` with the difference p − q, which takes
    log1p((p − q)/(1 − p)) only where (1 − q)/(1 − p) is within ½ … 2: as q → 1 the argument
    nears −1 and log1p kept its rounding (Bernoulli(0.3) ‖ Bernoulli(1 − 1e-15) was 0.5% off).
    """
    (log_p1, log_p0), (log_q1, log_q0) = p._logs, q._logs
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ratios = [log_q1.data - log_p1.data, log_q0.data - log_p0.data]
        if p._given_probs is None and q._given_probs is None:
            step = q.logits.data - p.logits.data
            close = np.abs(step) <= 1
            step = np.where(close, step, 0)
            ratios = [np.where(close, np.log1p(stable_sigmoid(-q.logits.data) * np.expm1(step)),
                               ratios[0]),
                      np.where(close, np.log1p(stable_sigmoid(q.logits.data) * np.expm1(-step)),
                               ratios[1])]
        elif p._given_probs is not None and q._given_probs is not None:
            prob_p, prob_q = (d._given_probs.data.astype(np.float64) for d in (p, q))
            ratios = [np.where((prob_p > 0) & (prob_q > 0), log_ratio_array(prob_q, prob_p),
                               ratios[0]),
                      np.where((prob_p < 1) & (prob_q < 1),
                               log_ratio_array(1 - prob_q, 1 - prob_p, prob_p - prob_q),
                               ratios[1])]
    return ratios[0], ratios[1]


class BernoulliLogits(Independent):
    """Independent Bernoulli variables over the last axis, with logits l = log(p / (1 − p)):
    the decoder's p(x | z) = Π_i Bernoulli(x_i; σ(l_i)).

    logits : (..., D), any reals or ±∞ (not NaN).
    soft_targets : False (the default): ``log_prob(x)`` accepts only x ∈ {0, 1}; True: any
        x ∈ [0, 1], scored by minus the binary cross-entropy (see ``Bernoulli.log_prob``).
    """

    def __init__(self, logits: Tensor, soft_targets: bool = False):
        (logits,) = as_parameters(logits=logits)
        if logits.ndim < 1:
            raise ValueError(f"logits must have a last axis of pixels, got shape {logits.shape}")
        # one pass: the decoder's logits are finite, and only then is the fused kernel exact
        self._all_finite = bool(np.isfinite(logits.data).all())
        if not self._all_finite:
            require(~np.isnan(logits.data), "logits", "a number (±inf allowed), not NaN", logits)
        self.logits = logits
        super().__init__(Bernoulli(logits=logits, validate_args=False,
                                   soft_targets=soft_targets), 1)
        self.soft_targets = self.base.soft_targets

    @property
    def probs(self) -> Tensor:
        return ops.sigmoid(self.logits)

    def log_prob(self, x) -> Tensor:
        """log p(x) = Σ_i [ x_i log σ(l_i) + (1 − x_i) log(1 − σ(l_i)) ], summed over the last axis.

        Math: since log σ(l) = l − softplus(l) and log(1 − σ(l)) = −softplus(l), each term is
        x·l − softplus(l): finite for any finite logit, and for soft targets x ∈ [0, 1] too
        (this is minus the binary cross-entropy).  Logits ±∞, other shapes and targets that
        carry a gradient take the general ``Bernoulli.log_prob``, which broadcasts and is exact
        at l = ±∞.  Targets are checked in one vectorized pass (ValueError: x must hold 0s and
        1s, or lie in [0, 1] with soft_targets=True).  Logits (S, B, D) of S samples with x
        (B, D) broadcast x over the samples, as NumPy would, without copying it S times (the
        kernel repeats its rows), and x is checked once, not S times.
        Verified by:
        tests/distributions/test_bernoulli.py::test_bernoulli_log_prob_matches_direct_formula
        """
        x_data = self._same_shape_targets(x)
        if x_data is None:
            return super().log_prob(x)
        l = self.logits
        if not kernels.enabled("bernoulli_log_prob"):
            return (x_data * l - l.softplus()).sum(axis=-1)  # Σ_i x_i l_i − softplus(l_i)
        # The line above in one kernel pass, with its gradient x − σ(l) (engine/ops/fused.py);
        # the sample axes stacked into rows, against which the B rows of x repeat.
        rows = l if l.ndim == 2 else l.reshape(-1, l.shape[-1])
        return fused.bernoulli_log_prob(rows, x_data).reshape(l.shape[:-1])

    def _same_shape_targets(self, x) -> np.ndarray | None:
        """x as a checked array when the logits are finite and x is 2-D of the logits' last two
        axes, (B, D) for logits (B, D) (the training step) or (..., B, D) (samples of each
        image: the IWAE step), else None (the general path checks and broadcasts)."""
        if not (self.logits.ndim >= 2 and self._all_finite) or (isinstance(x, Tensor)
                                                                and x.requires_grad):
            return None
        data = checks.in_dtype(x, self.dtype, "x", "the logits'")
        if data.ndim != 2 or data.shape != self.logits.shape[-2:]:
            return None
        check_targets(data, self.soft_targets)
        return data

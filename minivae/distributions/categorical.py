"""The categorical distribution over K classes, the Gumbel-max sampler, and the closed-form KL.

    P(k) = π_k = exp(l_k) / Σ_j exp(l_j),   k ∈ {0, …, K − 1}

Classes sit on the last axis of ``logits`` (or ``probs``); leading axes are the batch.  The
logits are stored normalized, log π_k = l_k − logsumexp(l), so they are log-probabilities.
A class of probability 0 has logit −∞; sums over classes use 0 · log 0 = 0.

Draws are class indices: ``sample`` returns an int64 ndarray (not a Tensor, whose data are
floats and which would carry no gradient anyway); ``log_prob`` accepts ints, or floats holding
integer values.

Verified by: tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas,
::test_categorical_sampler_chi_square
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import (
    Distribution,
    as_parameters,
    log_of_weight,
    probs_or_logits,
)
from minivae.distributions.gumbel import standard_gumbel_from_uniform
from minivae.distributions.kl import register_cross_entropy, register_kl
from minivae.engine import ops
from minivae.engine.ops.elementwise import cast
from minivae.engine.ops.ratios import generalized_kl
from minivae.engine.tensor import Tensor


def standard_gumbel(rng: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
    """G = −log(−log U), U ~ Uniform[0, 1): the standard Gumbel, P(G ≤ g) = exp(−e⁻ᵍ).

    Drawn in ``dtype`` by the inverse CDF of ``gumbel.standard_gumbel_from_uniform``, which
    keeps every draw finite.
    Verified by: tests/distributions/test_relaxed.py::test_gumbel_noise_has_the_gumbel_distribution
    """
    return standard_gumbel_from_uniform(checks.generator(rng).random(shape, dtype=dtype))


def normalized_logits(probs, logits, validate_args: bool) -> Tensor:
    """log π = l − logsumexp(l) along the last axis, from exactly one of ``probs``, ``logits``.

    Computed as (l − max l) − logsumexp(l − max l), the same number without the rounding of
    logsumexp(l) itself (see ``shifted_logits``).
    """
    shifted = shifted_logits(given_logits(probs, logits, validate_args))
    return shifted - shifted.logsumexp(axis=-1, keepdims=True)


def shifted_logits(value: Tensor) -> Tensor:
    """l − max l along the last axis (l from ``given_logits``).

    The difference is exact for the entries near the maximum, which then keep the digits that
    l − logsumexp(l) would lose to the rounding of logsumexp(l) at the size of l (1e7 + log 2
    is 1e7 + 1 in float32).  The shift by a constant changes neither the normalized logits
    nor their gradient.

    Verified by: tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas,
    tests/distributions/test_kl_float_range.py::test_named_examples
    """
    top = value.data.max(axis=-1, keepdims=True)
    return value - np.where(np.isfinite(top), top, 0).astype(value.dtype)


def given_logits(probs, logits, validate_args: bool) -> Tensor:
    """The logits l as given, or l = log probs, from exactly one of ``probs`` and ``logits``;
    checked as below.

    probs : non-negative weights with a positive sum on each row; they are normalized, π =
        probs / Σ probs, and a weight 0 becomes the logit −∞.
    logits : any reals; −∞ (probability 0) is allowed, +∞ and NaN are not, and each row needs
        one finite entry.
    """
    name = probs_or_logits(probs, logits)
    (value,) = as_parameters(**{name: probs if name == "probs" else logits})
    if value.ndim == 0:
        raise ValueError(f"{name} must have a class axis (the last one), got a scalar")
    if validate_args and name == "probs":
        checks.require((value.data >= 0) & np.isfinite(value.data), "probs",
                       "non-negative and finite", value)
        checks.require(value.data.sum(axis=-1) > 0, "probs", "rows with a positive sum",
                       value.data.sum(axis=-1))
    if validate_args and name == "logits":
        checks.require(~np.isnan(value.data) & (value.data != np.inf), "logits",
                       "real or −inf (not NaN or +inf)", value)
        checks.require(np.isfinite(value.data).any(axis=-1), "logits",
                       "rows with a finite entry", value.data.max(axis=-1))
    if name == "probs":
        value = log_of_weight(value)  # a weight 0 is the logit −∞, with no 0 · ∞ in the VJP
    return value


def pick_class(table: Tensor, index: np.ndarray) -> Tensor:
    """table[..., index]: along the last axis, the entry named by ``index``.

    ``index`` broadcasts against the leading axes of ``table``; the result has the broadcast
    shape.  (Indexing with one integer array per axis; the VJP scatters with np.add.at.)
    """
    batch = table.shape[:-1]
    grids = tuple(np.arange(n).reshape((n,) + (1,) * (len(batch) - 1 - axis))
                  for axis, n in enumerate(batch))
    return table[grids + (index,)]


def class_indices(value, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices as int64 with invalid entries set to 0, mask of the valid entries).

    Valid: an integer value (an int, or a float with no fractional part) in [0, K).
    """
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"value must hold class indices (ints), got dtype {data.dtype}")
    checks.require(~np.isnan(data), "value", "class indices, not NaN", data)
    with np.errstate(invalid="ignore"):
        valid = (data >= 0) & (data < num_classes) & (data == np.floor(data))
    return np.where(valid, data, 0).astype(np.int64), valid


class Categorical(Distribution):
    """Categorical(π) over the last axis of ``probs`` or ``logits`` (give exactly one).

    probs : non-negative weights (normalized along the last axis; a 0 is probability 0).
    logits : unnormalized log-probabilities (−∞ allowed for probability 0).
    validate_args : check the ranges above (ValueError otherwise).

    batch_shape = the leading axes; event_shape = (); ``num_classes`` = K.
    """

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        given = given_logits(probs, logits, validate_args)
        self._given_logits = given.data  # for log-ratios near p = q (see the KL)
        shifted = shifted_logits(given)
        self.logits = shifted - shifted.logsumexp(axis=-1, keepdims=True)
        self.num_classes = self.logits.shape[-1]
        super().__init__(self.logits.shape[:-1], (), self.logits.dtype)

    @property
    def probs(self) -> Tensor:
        """π_k = exp(log π_k), shape batch + (K,)."""
        return self.logits.exp()

    def sample(self, rng: np.random.Generator, shape=()) -> np.ndarray:
        """Class indices k = argmax_j (log π_j + G_j), G_j i.i.d. standard Gumbel (Gumbel-max).

        Exact, not approximate.  G_j has density e^{−g} exp(−e^{−g}); with x_j = log π_j + G_j,
        P(argmax = k) = ∫ P(x_k ∈ dx) Π_{j≠k} P(x_j < x)
                      = ∫ π_k e^{−x} exp(−e^{−x} π_k) Π_{j≠k} exp(−e^{−x} π_j) dx
                      = ∫ π_k e^{−x} exp(−e^{−x} Σ_j π_j) dx = π_k ∫₀^∞ e^{−t} dt = π_k
        (substituting t = e^{−x}, Σ_j π_j = 1).  Classes with π_j = 0 have x_j = −∞: never drawn.

        Returns an int64 ndarray of shape ``shape + batch_shape``.
        Verified by: tests/distributions/test_categorical.py::test_categorical_sampler_chi_square,
        tests/distributions/test_relaxed.py::test_gumbel_max_is_exactly_categorical
        """
        full_shape = self.sample_shape(shape) + (self.num_classes,)
        noisy = self.logits.data + standard_gumbel(rng, full_shape, self.dtype)
        return np.argmax(noisy, axis=-1).astype(np.int64)

    def log_prob(self, value) -> Tensor:
        """log P(k) = log π_k = l_k − logsumexp(l) for class indices k.

        ``value``: ints (or integer-valued floats) broadcasting against the batch shape.
        Anything else — negative, ≥ K, fractional — is outside the support: −∞.
        d/dl_j = 1[j = k] − π_j.
        Verified by:
        tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas,
        ::test_categorical_outside_support_and_validation, ::test_categorical_gradients
        """
        index, valid = class_indices(value, self.num_classes)
        checks.broadcast((index.shape, self.batch_shape), "value and the batch shape")
        return ops.where(valid, pick_class(self.logits, index), -np.inf)

    def entropy(self) -> Tensor:
        """H = −Σ_k π_k log π_k (terms with π_k = 0 are 0).

        Verified by:
        tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas
        """
        return -(self.probs * _drop_minus_infinity(self.logits)).sum(axis=-1)

    @property
    def mean(self) -> Tensor:
        """E[k] = Σ_k k π_k: the mean of the class index read as a number.

        Meaningful only when the order of the classes means something (it does not for
        labels); for the one-hot encoding of k the mean is ``probs``.
        Verified by:
        tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas
        """
        return (self.probs * self._class_numbers()).sum(axis=-1)

    @property
    def variance(self) -> Tensor:
        """Var[k] = Σ_k π_k (k − E[k])², of the index read as a number (see ``mean``).

        Verified by:
        tests/distributions/test_categorical.py::test_categorical_matches_direct_formulas
        """
        centered = self._class_numbers() - self.mean.reshape(self.batch_shape + (1,))
        return (self.probs * centered * centered).sum(axis=-1)

    def _class_numbers(self) -> np.ndarray:
        return np.arange(self.num_classes, dtype=self.dtype)


def _drop_minus_infinity(log_probs: Tensor) -> Tensor:
    """log π with −∞ replaced by 0: multiplied by π = 0 it gives the term 0 · log 0 = 0."""
    return ops.where(log_probs.data == -np.inf, 0.0, log_probs)


def _check_classes(p: Categorical, q: Categorical) -> np.ndarray:
    """Where q gives probability 0 to a class p can draw, per batch entry."""
    if p.num_classes != q.num_classes:
        raise ValueError(f"p and q must have the same number of classes, got {p.num_classes} "
                         f"and {q.num_classes}")
    return ((q.logits.data == -np.inf) & (p.logits.data > -np.inf)).any(axis=-1)


def _two_difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, e) with s = a − b rounded and s + e = a − b exactly (Knuth's two-sum)."""
    s = a - b
    v = s - a
    return s, (a - (s - v)) - (b + v)


def _log_sum_from_top(logits: np.ndarray, top: np.ndarray) -> np.ndarray:
    """log S, S = Σ_j e^(l_j − max l) ≥ 1, as log1p of the sum without one largest entry (the
    rest may be far below the rounding of 1 + rest: S = 1 + 2e-43 for [100, 1, 1])."""
    first = np.argmax(logits, axis=-1)[..., None] == np.arange(logits.shape[-1])
    return np.log1p(np.sum(np.where(first, 0, np.exp(logits - top)), axis=-1, keepdims=True))


def _log_ratios(p: Categorical, q: Categorical) -> np.ndarray:
    """δ_k = log ρ_k − log π_k, to relative accuracy where p ≈ q, also up to a shift of all
    logits.

    The difference of the normalized logits carries their rounding, of the size of log π,
    where δ itself may be far smaller, and l − max l rounds the entries far from the maximum.
    From the logits as given, in float64, with m = max l^p, m_q = max l^q,
    S = Σ_j e^(l^p_j − m) and S_q likewise:

        δ_k = D_k − Λ,   D_k = (l^q_k − l^p_k) − (m_q − m),   Λ = log S_q − log S = log1p(Σ),
        Σ = Σ_j π_j (e^(D_j) − 1),

    D_k to relative accuracy from the two differences and their rounding errors (two-sum: for
    logits 1e5 and 1e5 + 1e-8, neither difference nor l − max l alone keeps 1e-8 exactly).
    Σ from terms π_j expm1(D_j) for |D_j| ≤ 1 and e^(l^q_j − m_q)/S − π_j beyond (that is
    π_j e^(D_j) − π_j, formed without e^(D_j), which may overflow where π_j is tiny; the same
    form gives −π_j where ρ_j = 0 and ρ_j S_q/S where π_j = 0); Λ = log1p(Σ) where |Σ| ≤ ½,
    log S_q − log S elsewhere (S_q/S ≥ 1/K there, and log1p would keep Σ's rounding near
    Σ = −1).  Where a difference overflows, the difference of the normalized logits.
    """
    given_p, given_q = (d._given_logits.astype(np.float64) for d in (p, q))
    both = np.isfinite(given_p) & np.isfinite(given_q)
    with np.errstate(invalid="ignore", over="ignore"):
        top, top_q = (np.max(v, axis=-1, keepdims=True) for v in (given_p, given_q))
        log_total, log_total_q = _log_sum_from_top(given_p, top), _log_sum_from_top(given_q, top_q)
        (step, step_error), (shift, shift_error) = (_two_difference(given_q, given_p),
                                                    _two_difference(top_q, top))
        steps = np.where(both, (step - shift) + (step_error - shift_error), 0)
        weights = np.exp((given_p - top) - log_total)
        small = both & (np.abs(steps) <= 1)
        changes = np.where(small, weights * np.expm1(np.where(small, steps, 0)),
                           np.exp((given_q - top_q) - log_total) - weights)
        total = np.sum(changes, axis=-1, keepdims=True)
        normalizer = np.where(np.abs(total) <= 0.5, np.log1p(np.where(total > -1, total, 0)),
                              log_total_q - log_total)
        ratios = steps - normalizer
        default = q.logits.data - p.logits.data
    return np.where(both & np.isfinite(ratios), ratios, default)


@register_cross_entropy(Categorical, Categorical)
def cross_entropy_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    """−E_p[log q(k)] = −Σ_k π_k log ρ_k  (π, ρ the class probabilities of p and q).

    Terms with π_k = 0 are 0; +∞ where some ρ_k = 0 < π_k.
    Verified by:
    tests/distributions/test_categorical.py::test_categorical_kl_is_cross_entropy_minus_entropy,
    ::test_categorical_kl_with_zero_probabilities
    """
    impossible = _check_classes(p, q)
    log_q = ops.where(p.logits.data == -np.inf, 0.0, _drop_minus_infinity(q.logits))
    return ops.where(impossible, np.inf, -(p.probs * log_q).sum(axis=-1))


@register_kl(Categorical, Categorical)
def kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    """KL(p ‖ q) = Σ_k π_k (log π_k − log ρ_k), with 0 · log(0/ρ) = 0 and +∞ where ρ_k = 0 < π_k.

    Since Σ_k ρ_k = Σ_k π_k = 1, adding Σ_k (ρ_k − π_k) = 0 term by term gives

        KL = Σ_k π_k (e^(δ_k) − 1 − δ_k),    δ_k = log ρ_k − log π_k,

    a sum of terms ≥ 0 (``generalized_kl`` of π_k and ρ_k, with log π_k for a π_k too small to
    be a float; where π_k = 0 the term is its limit ρ_k), so KL ≥ 0 holds without any
    clamping, and a KL near 0 keeps its relative accuracy: each term is of order π_k δ_k²,
    where the textbook sum would cancel terms of order π_k δ_k to leave it (δ_k itself from
    ``_log_ratios``).  Evaluated in float64 and rounded to the dtype (a float32 π_k = e^(−99)
    is subnormal, its term π_k (e^(δ_k) − 1 − δ_k) = 1e-35 is not).

    A class whose normalized logit l^q_k − logsumexp(l^q) overflowed to −∞ (logits ±1e308) has
    ρ_k = 0 in floats but not in fact: its term is π_k (−δ_k − 1) with −δ_k = log π_k +
    (max l^q − l^q_k) + log S_q, formed from halves (0 where π_k = 0, +∞ only where it
    overflows), and the KL is +∞ only where a logit of q as given is −∞.  Its gradient with
    respect to that logit of q is left out (it is −π_k, and π_k < e^(−1e308)/… is 0 wherever
    the term is finite and not 0).
    Verified by: tests/distributions/test_categorical.py::test_categorical_kl_matches_direct_sum,
    ::test_categorical_kl_with_zero_probabilities,
    ::test_categorical_kl_is_finite_for_extreme_logits,
    ::test_categorical_kl_matches_monte_carlo, ::test_categorical_kl_is_cross_entropy_minus_entropy,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range,
    ::test_named_examples
    """
    _check_classes(p, q)
    given_p, given_q = (d._given_logits.astype(np.float64) for d in (p, q))
    impossible = ((given_q == -np.inf) & (given_p > -np.inf)).any(axis=-1)
    possible = p.logits.data > -np.inf
    kept = possible & (q.logits.data > -np.inf)
    vanished = possible & (q.logits.data == -np.inf) & (given_q > -np.inf)
    logits_p, logits_q = cast(p.logits, np.float64), cast(q.logits, np.float64)
    log_p, log_q = ops.where(kept, logits_p, 0.0), ops.where(kept, logits_q, 0.0)
    log_ratios = np.where(kept, _log_ratios(p, q), 0)
    terms = generalized_kl(log_p.exp(), log_q, log_ratios, log_p.data)
    with np.errstate(invalid="ignore", over="ignore"):
        top_q = np.max(given_q, axis=-1, keepdims=True)
        half_gap = np.where(vanished, 0.5 * top_q - 0.5 * given_q, 0)  # (max l^q − l^q_k)/2
        rest = _log_sum_from_top(given_q, top_q) - 1.0
    log_p_vanished = ops.where(vanished, logits_p, 0.0)
    vanished_terms = 2.0 * (log_p_vanished.exp() * (half_gap + 0.5 * (log_p_vanished + rest)))
    terms = ops.where(kept, terms, ops.where(vanished, ops.where(
        log_p_vanished.data > -np.inf, vanished_terms, 0.0), ops.where(possible, 0.0,
                                                                       logits_q.exp())))
    return cast(ops.where(impossible, np.inf, terms.sum(axis=-1)), p.dtype)

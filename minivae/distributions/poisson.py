"""The Poisson distribution on the counts {0, 1, 2, …}, and its closed-form KL.

    P(k) = λᵏ e^{−λ} / k!,   E[k] = Var[k] = λ

Counts are returned and accepted as floats holding integers (as the engine's Tensors are
float); a value that is not a non-negative integer is outside the support.

Verified by: tests/distributions/test_poisson.py::test_poisson_matches_scipy
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters
from minivae.distributions.kl import register_kl
from minivae.engine import ops
from minivae.engine.ops.ratios import generalized_kl, log_ratio
from minivae.engine.ops.special import log_gamma_array
from minivae.engine.tensor import Tensor

STIRLING_COUNT = 1e6  # above this count, log P(k) takes Stirling's form (see log_prob)

# The entropy sums P(k) over k ∈ [λ − a, λ + a] with a = TAIL_SDS·√λ + TAIL_OFFSET (see there).
TAIL_SDS, TAIL_OFFSET = 10.0, 40.0
SERIES_ABOVE = 1e6  # above this rate the entropy comes from its large-λ expansion


def log_factorial(k: np.ndarray) -> np.ndarray:
    """log k! = log Γ(k + 1), with 0! = 1! = 1 giving exactly 0.

    log Γ is accurate to a few 1e-15 absolute; at k ∈ {0, 1} that would be all the error of
    log P(k) = −λ + k log λ for a tiny rate, so those two values are set exactly.
    """
    return np.where(k < 2, 0, log_gamma_array(k + 1)).astype(k.dtype)


class Poisson(Distribution):
    """Poisson(λ) for each entry of ``rate``.

    rate : λ > 0, finite.
    validate_args : check the range above (ValueError otherwise).

    ``sample`` returns a float Tensor of counts; there is no ``rsample`` (counts are discrete).
    """

    def __init__(self, rate, validate_args: bool = True):
        (self.rate,) = as_parameters(rate=rate)
        if validate_args:
            checks.positive(self.rate, "rate")
        super().__init__(self.rate.shape, (), self.rate.dtype)

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Counts drawn by NumPy's Poisson sampler, as floats of this distribution's dtype.

        Verified by:
        tests/distributions/test_poisson.py::test_poisson_sampler_chi_square_and_moments
        """
        rate = np.broadcast_to(self.rate.data.astype(np.float64), self.sample_shape(shape))
        counts = checks.generator(rng).poisson(rate)
        return Tensor(np.asarray(counts).astype(self.dtype))  # 0-d: an int

    def log_prob(self, k) -> Tensor:
        """log P(k) = k log λ − λ − log k!,  with log k! = log Γ(k + 1).

        For k > 10⁶ Stirling's series log k! = k log k − k + ½ log(2πk) + 1/(12k) + O(k⁻³)
        (omitted terms < 1e-20) gives the same number in the form
        log P(k) = k log(λ/k) + (k − λ) − ½ log(2πk) − 1/(12k), which stays finite where
        k log λ and log k! would both overflow (k near the float range) and their difference
        be ∞ − ∞.
        k outside {0, 1, 2, …} (negative, fractional, ±∞ or NaN) gives −∞.  d/dλ = k/λ − 1.
        Verified by: tests/distributions/test_poisson.py::test_poisson_matches_scipy,
        ::test_poisson_outside_support, ::test_poisson_gradients,
        ::test_poisson_log_prob_at_huge_counts
        """
        k = self._value(k, "k").data
        with np.errstate(invalid="ignore"):
            valid = (k >= 0) & np.isfinite(k) & (k == np.floor(k))
        k = np.where(valid, k, 0).astype(self.dtype)
        huge = k > STIRLING_COUNT
        # each form gets only the counts it is for (stand-ins elsewhere), so neither computes
        # an ∞ − ∞ that the selection would then throw away
        small_k = np.where(huge, 0, k).astype(self.dtype)
        value = small_k * self.rate.log() - self.rate - log_factorial(small_k)
        if huge.any():
            big_k = np.where(huge, k, STIRLING_COUNT).astype(self.dtype)
            stirling = (big_k * (self.rate.log() - np.log(big_k)) + (big_k - self.rate)
                        - (0.5 * np.log(2 * np.pi * big_k) + 1 / (12 * big_k)))
            value = ops.where(huge, stirling, value)
        return ops.where(valid, value, -np.inf)

    def entropy(self) -> Tensor:
        """H = −Σ_k P(k) log P(k), summed numerically (there is no closed form).

        The sum runs over the window k ∈ [max(0, λ − a), λ + a], a = 10√λ + 40.  The mass
        left outside is below 1e-21: above the window, the Bernstein form of the Chernoff
        bound gives P(k ≥ λ + a) ≤ exp(−a² / (2(λ + a/3))) ≤ e^{−50} for this a; below it,
        P(k ≤ λ − a) ≤ exp(−a²/(2λ)) < e^{−50}.  The entropy those tails carry,
        Σ P(k)·(−log P(k)), is of the order of that mass times its −log (≈ 1e-19), far
        below 1e-16 relative.  What limits the accuracy is rounding in k log λ − λ − log k!,
        whose terms have size λ log λ: the relative error is of order 1e-16 · λ log λ (≈ 1e-11
        at λ = 1e4, 1e-9 at λ = 1e6; rounding level for λ ≲ 10).  Each rate costs
        O(√λ) terms; the windows of a batch share one width, so one array holds all the terms.
        Differentiable in λ (each term is an engine expression of λ).

        Above λ = 1e6 the sum would cost more than 2e4 terms per rate (and for λ = 1e300 could
        not be formed at all); there the large-λ expansion
        H = ½ log(2πeλ) − 1/(12λ) − 1/(24λ²) + O(λ⁻³) is used, whose omitted terms
        (< 1e-19) are far below the rounding error of the sum at that size.

        Verified by: tests/distributions/test_poisson.py::test_poisson_matches_scipy,
        ::test_poisson_entropy_for_large_and_small_rates,
        ::test_poisson_entropy_at_huge_rates
        """
        if self.rate.size == 0:
            return Tensor(np.zeros(self.batch_shape, dtype=self.dtype))
        large = self.rate.data > SERIES_ABOVE
        small_rate = ops.where(large, 1.0, self.rate)  # a stand-in, discarded below
        rate64 = small_rate.data.astype(np.float64).reshape(-1)
        half_width = TAIL_SDS * np.sqrt(rate64) + TAIL_OFFSET
        start = np.maximum(0.0, np.floor(rate64 - half_width))
        width = int(np.max(np.ceil(rate64 + half_width) - start)) + 1
        k = (start[:, None] + np.arange(width)).astype(self.dtype)
        rate = small_rate.reshape(-1, 1)
        log_p = k * rate.log() - rate - log_factorial(k)
        terms = log_p.exp() * log_p  # P(k) underflows to 0 far from λ: those terms are 0
        summed = -terms.sum(axis=-1).reshape(self.batch_shape)
        if not large.any():
            return summed
        big = ops.where(large, self.rate, SERIES_ABOVE)  # keeps 1/λ² finite where unused
        inverse = 1.0 / big  # 1/λ² as its square, which underflows to 0 instead of λ² to ∞
        expansion = (0.5 * (1.0 + np.log(2 * np.pi)) + 0.5 * big.log()
                     - inverse / 12.0 - inverse * inverse / 24.0)
        return ops.where(large, expansion, summed)

    @property
    def mean(self) -> Tensor:
        """E[k] = λ.  Verified by:
        tests/distributions/test_poisson.py::test_poisson_matches_scipy"""
        return self.rate

    @property
    def variance(self) -> Tensor:
        """Var[k] = λ.  Verified by:
        tests/distributions/test_poisson.py::test_poisson_matches_scipy"""
        return self.rate


@register_kl(Poisson, Poisson)
def kl_poisson_poisson(p: Poisson, q: Poisson) -> Tensor:
    """KL(p ‖ q) = λ_p log(λ_p/λ_q) − λ_p + λ_q = λ_p (r − 1 − log r),  r = λ_q/λ_p.

    Derivation: log p(k) − log q(k) = k log(λ_p/λ_q) − λ_p + λ_q (the k! cancel), and E_p[k] =
    λ_p.  r − 1 − log r ≥ 0 shows KL ≥ 0.  ``generalized_kl`` evaluates it from λ_p and λ_q:
    near r = 1 as λ_p (t − log1p(t)), t = (λ_q − λ_p)/λ_p, so a KL near 0 keeps its relative
    accuracy, and elsewhere as λ_q − λ_p (1 + log(λ_q/λ_p)), finite where r overflows.
    Verified by: tests/distributions/test_poisson.py::test_poisson_kl_matches_truncated_sum,
    ::test_poisson_kl_matches_monte_carlo,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    return generalized_kl(p.rate, q.rate.log(), log_ratio(q.rate, p.rate))

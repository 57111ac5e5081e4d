"""The univariate Gaussian N(μ, σ²), element-wise over a batch, and its closed-form KL.

    N(x; μ, σ²) = exp(−(x − μ)² / 2σ²) / √(2πσ²)

A diagonal Gaussian over d-vectors is ``Independent(Normal(loc, scale), 1)``: the coordinates
are independent, so its log density, entropy and KL are sums of the ones below over the last
axis (see ``base.Independent`` and the (Independent, Independent) KL in ``kl.py``).

Verified by: tests/distributions/test_normal.py::test_log_prob_and_entropy_match_scipy
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import LocationScale, broadcast_to
from minivae.distributions.kl import register_cross_entropy, register_kl
from minivae.engine.ops.ratios import ratio_excess, scaled_difference
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


def _standard_normal_cdf(z: Tensor) -> Tensor:
    """Φ(z) = ½ erfc(−z/√2);  dΦ/dz = φ(z) = exp(−z²/2)/√(2π).

    erfc rather than ½(1 + erf) keeps relative accuracy in the lower tail, where Φ(z) ≪ 1.
    """
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    out = (0.5 * erfc(-z.data.astype(np.float64) / math.sqrt(2.0))).astype(z.dtype)
    density = (np.exp(-0.5 * z.data * z.data) / math.sqrt(2.0 * math.pi)).astype(z.dtype)
    return Tensor.from_op(out, (z,), lambda g: (g * density,), "standard_normal_cdf")


class Normal(LocationScale):
    """N(loc, scale²) for each entry of the broadcast of ``loc`` and ``scale``.

    loc : μ, any real (array, Tensor or number).
    scale : σ > 0, the standard deviation (not the variance).
    validate_args : check that μ is finite and σ positive and finite (ValueError otherwise).
    """

    has_rsample = True

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """z = μ + σ ε with ε ~ N(0, 1) drawn outside the graph, so dz/dμ = 1 and dz/dσ = ε.

        Verified by:
        tests/distributions/test_normal.py::test_rsample_is_differentiable_in_the_parameters,
        ::test_samples_have_the_normal_distribution
        """
        noise = checks.generator(rng).standard_normal(self.sample_shape(shape)).astype(self.dtype)
        return self.loc + self.scale * noise

    def log_prob(self, x) -> Tensor:
        """log N(x; μ, σ²) = −½ log 2π − log σ − ½ ((x − μ)/σ)².

        The support is all of ℝ; at x = ±∞ the value is −∞.
        Verified by: tests/distributions/test_normal.py::test_log_prob_and_entropy_match_scipy
        """
        standardized = (self._value(x) - self.loc) / self.scale
        return -0.5 * LOG_2PI - self.scale.log() - 0.5 * standardized * standardized

    def entropy(self) -> Tensor:
        """H = −E[log N(x; μ, σ²)] = ½ log(2πe σ²) = ½ (1 + log 2π) + log σ.

        Verified by: tests/distributions/test_normal.py::test_log_prob_and_entropy_match_scipy
        """
        return broadcast_to(0.5 * (1.0 + LOG_2PI) + self.scale.log(), self.batch_shape)

    @property
    def mean(self) -> Tensor:
        """E[x] = μ.  Verified by: tests/distributions/test_normal.py::test_mean_and_variance"""
        return broadcast_to(self.loc, self.batch_shape)

    @property
    def variance(self) -> Tensor:
        """Var[x] = σ².  Verified by: tests/distributions/test_normal.py::test_mean_and_variance"""
        return broadcast_to(self.scale * self.scale, self.batch_shape)

    @property
    def stddev(self) -> Tensor:
        """σ, broadcast to the batch shape."""
        return broadcast_to(self.scale, self.batch_shape)

    def cdf(self, x) -> Tensor:
        """P(X ≤ x) = Φ((x − μ)/σ) = ½ erfc(−(x − μ)/(σ√2)).

        Verified by: tests/distributions/test_normal.py::test_cdf_matches_scipy_and_has_gradients
        """
        return _standard_normal_cdf((self._value(x) - self.loc) / self.scale)


def _expected_log_density(p: Normal, q: Normal) -> Tensor:
    """∫ N(z; μ̃, σ̃²) log N(z; μ, σ²) dz  for p = N(μ̃, σ̃²), q = N(μ, σ²).

    Derivation: log N(z; μ, σ²) = −½ log(2πσ²) − (z − μ)²/(2σ²), and under z ~ p
    E[(z − μ)²] = E[(z − μ̃)²] + (μ̃ − μ)² = σ̃² + (μ̃ − μ)² (variance plus squared bias; the
    cross term 2(μ̃ − μ) E[z − μ̃] vanishes).  Hence

        ∫ N(z; μ̃, σ̃²) log N(z; μ, σ²) dz = −½ log(2πσ²) − σ̃²/(2σ²) − (μ̃ − μ)²/(2σ²).

    With q = p it gives −H(p) = −½ log(2πσ²) − ½, the entropy above.
    """
    variance_ratio = (p.scale / q.scale) * (p.scale / q.scale)
    shift = (p.loc - q.loc) / q.scale
    return -0.5 * LOG_2PI - q.scale.log() - 0.5 * variance_ratio - 0.5 * shift * shift


@register_cross_entropy(Normal, Normal)
def cross_entropy_normal_normal(p: Normal, q: Normal) -> Tensor:
    """−E_p[log q] = ½ log(2πσ_q²) + σ_p²/(2σ_q²) + (μ_p − μ_q)²/(2σ_q²)  (the lemma above).

    Verified by: tests/distributions/test_normal.py::test_kl_is_cross_entropy_minus_entropy
    """
    return -_expected_log_density(p, q)


@register_kl(Normal, Normal)
def kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    """KL(p ‖ q) = E_p[log p] − E_p[log q], both from the lemma in ``_expected_log_density``:

        KL = log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²)/(2σ_q²) − ½
           = ½ [r² − 1 − log r²] + ½ ((μ_p − μ_q)/σ_q)²,   r = σ_p/σ_q.

    The bracket r² − 1 − log r² ≥ 0 with equality only at r = 1, so KL ≥ 0.  Each of the two
    terms ≥ 0 is computed from the parameters, not from r or μ_p − μ_q, which can overflow
    while the KL is finite (``ratio_excess``, ``scaled_difference``): the sum is never NaN.
    Verified by: tests/distributions/test_normal.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo, ::test_kl_is_nonnegative_and_zero_on_the_diagonal,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    shift = scaled_difference(p.loc, q.loc, q.scale)
    return 0.5 * ratio_excess(p.scale, q.scale, power=2) + 0.5 * shift * shift

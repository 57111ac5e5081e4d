"""The continuous uniform distribution U(a, b) on [a, b), and the KL pairs that involve it.

    p(x; a, b) = 1/(b − a) on [a, b),     F(x) = (x − a)/(b − a),     F⁻¹(u) = a + (b − a) u

U(a, b) has bounded support, so KL(p ‖ U) = +∞ for every p with unbounded support (p puts
mass where log U = −∞): Normal, Laplace, Gumbel and Exponential are registered as such.
The other direction, KL(U ‖ q), is finite for those q and has closed forms below.

Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
tests/distributions/test_inverse_cdf_kl.py::test_kl_support_mismatch_is_infinite
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters
from minivae.distributions.exponential import Exponential
from minivae.distributions.gumbel import Gumbel
from minivae.distributions.kl import infinite, register_kl
from minivae.distributions.laplace import Laplace
from minivae.distributions.normal import Normal
from minivae.engine.ops import absolute, exp_taylor_remainder, where
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class Uniform(Distribution):
    """U(low, high) for each entry of the broadcast of ``low`` and ``high``.

    low, high : a < b, finite, entry by entry.
    validate_args : check that a and b are finite and a < b (ValueError otherwise).
    """

    has_rsample = True

    def __init__(self, low, high, validate_args: bool = True):
        self.low, self.high = as_parameters(low=low, high=high)
        batch_shape = np.broadcast_shapes(self.low.shape, self.high.shape)
        if validate_args:
            checks.finite(self.low, "low")
            checks.finite(self.high, "high")
            a, b = np.broadcast_arrays(self.low.data, self.high.data)
            bad = ~(a < b)
            if np.any(bad):
                raise ValueError(f"low must be less than high in every entry, got low = "
                                 f"{a[bad][:3]} and high = {b[bad][:3]} where it is not")
        super().__init__(batch_shape, (), self.low.dtype)

    @property
    def width(self) -> Tensor:
        """b − a, the length of the support."""
        return self.high - self.low

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """Reparameterized inverse-CDF draw:  z = F⁻¹(u; a, b) = a + (b − a) u,  u ~ U[0, 1).

        The gradient flows through F⁻¹: dz/da = 1 − u, dz/db = u.  In exact arithmetic
        z < b; when u is within an ulp of 1, rounding can carry z up to b, and such a draw is
        set to the float just below b (keeping dz/db = 1), so every draw has log_prob > −∞.

        Verified by: tests/distributions/test_inverse_cdf.py::test_rsample_matches_scipy_by_ks_test,
        ::test_rsample_gradcheck_with_fixed_noise,
        ::test_uniform_draws_stay_below_high
        """
        u = checks.generator(rng).random(self.sample_shape(shape), dtype=self.dtype)
        z = self.low + self.width * u
        below_high = self.high + (np.nextafter(self.high.data, -np.inf) - self.high.data)
        return where(z.data < self.high.data, z, below_high)

    def log_prob(self, x) -> Tensor:
        """log p(x) = −log(b − a) for a ≤ x < b; −∞ outside [a, b).

        Verified by: tests/distributions/test_inverse_cdf.py::test_log_prob_matches_scipy,
        ::test_log_prob_outside_the_support_is_minus_infinity
        """
        x = self._value(x)
        inside = (x.data >= self.low.data) & (x.data < self.high.data)
        return where(inside, -self.width.log(), -np.inf)

    def entropy(self) -> Tensor:
        """H = −∫ₐᵇ log(1/(b − a)) dx/(b − a) = log(b − a).

        Verified by: tests/distributions/test_inverse_cdf.py::test_entropy_matches_scipy
        """
        return self.width.log()

    @property
    def mean(self) -> Tensor:
        """E[x] = (a + b)/2.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return 0.5 * (self.low + self.high)

    @property
    def variance(self) -> Tensor:
        """Var[x] = ∫ (x − m)² dx/(b − a) over m ± (b − a)/2 = (b − a)²/12.

        Verified by: tests/distributions/test_inverse_cdf.py::test_mean_and_variance_match_scipy
        """
        return self.width * self.width / 12.0


@register_kl(Uniform, Uniform)
def kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    """KL(U(a_p, b_p) ‖ U(a_q, b_q)) = log((b_q − a_q)/(b_p − a_p)) if [a_p, b_p) ⊂ [a_q, b_q),
    else +∞ (entry by entry).

    Derivation: where p > 0, log p − log q = log(w_q/w_p) is constant, provided q > 0 there,
    i.e. a_q ≤ a_p and b_p ≤ b_q.  The finite branch is computed for every entry, so the
    gradient stays finite wherever the KL is.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_support_mismatch_is_infinite
    """
    nested = (q.low.data <= p.low.data) & (p.high.data <= q.high.data)
    return where(nested, (q.width / p.width).log(), np.inf)


@register_kl(Normal, Uniform)
@register_kl(Laplace, Uniform)
@register_kl(Gumbel, Uniform)
@register_kl(Exponential, Uniform)
def kl_unbounded_uniform(p: Distribution, q: Uniform) -> Tensor:
    """KL(p ‖ U(a, b)) = +∞: p > 0 outside [a, b), where log U = −∞.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_support_mismatch_is_infinite
    """
    return infinite(p, q)


@register_kl(Uniform, Normal)
def kl_uniform_normal(p: Uniform, q: Normal) -> Tensor:
    """KL(U(a, b) ‖ N(μ, σ²)) = −log w + ½ log 2π + log σ + (w²/12 + (m − μ)²)/(2σ²),

    with w = b − a and m = (a + b)/2.  Derivation: KL = −H(U) − E_U[log N], H(U) = log w, and
    −E_U[log N] = ½ log 2πσ² + E_U[(x − μ)²]/(2σ²) with E_U[(x − μ)²] = Var + bias² =
    w²/12 + (m − μ)².

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients
    """
    shift = (p.mean - q.loc) / q.scale
    spread = p.width / q.scale
    return 0.5 * LOG_2PI - spread.log() + spread * spread / 24.0 + 0.5 * shift * shift


@register_kl(Uniform, Laplace)
def kl_uniform_laplace(p: Uniform, q: Laplace) -> Tensor:
    """KL(U(a, b) ‖ Laplace(μ, s)) = −log w + log 2s + E_U|x − μ|/s,

    E_U|x − μ| = |m − μ| + max(0, δ)²/w,  δ = w/2 − |m − μ|,  w = b − a,  m = (a + b)/2.

    Derivation: for μ outside [a, b], |x − μ| is linear on the support and its mean is
    |m − μ|.  For μ inside, with d₁ = b − μ ≥ d₂ = μ − a (the other case is symmetric),
    E|x − μ| = (d₁² + d₂²)/(2w) = (d₁ − d₂)/2 + d₂²/w, and δ = d₂ is the distance to the
    nearer end.  This form adds non-negative terms, so nothing cancels when μ is far away.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients
    """
    offset = absolute(p.mean - q.loc)
    inner = (0.5 * p.width - offset).relu()
    mean_distance = offset + inner * inner / p.width
    return (2.0 * q.scale / p.width).log() + mean_distance / q.scale


@register_kl(Uniform, Gumbel)
def kl_uniform_gumbel(p: Uniform, q: Gumbel) -> Tensor:
    """KL(U(a, b) ‖ Gumbel(μ, β)) = log(β/w) + (m − μ)/β + e^(−(a − μ)/β) (1 − e^(−s))/s,

    with w = b − a, m = (a + b)/2, s = w/β.  Derivation: −log q(x) = log β + y + e^(−y),
    y = (x − μ)/β, E_U[y] = (m − μ)/β and
    E_U[e^(−y)] = (1/w) ∫ₐᵇ e^(−(x − μ)/β) dx = (β/w) (e^(−(a − μ)/β) − e^(−(b − μ)/β)).
    (1 − e^(−s))/s = 1 − (e^(−s) − 1 + s)/s is computed from ``exp_taylor_remainder`` so it
    stays accurate when s is small.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_matches_monte_carlo,
    ::test_kl_gradients
    """
    s = p.width / q.scale
    averaged_exp = 1.0 - exp_taylor_remainder(-s) / s
    return (-s.log() + (p.mean - q.loc) / q.scale
            + (-(p.low - q.loc) / q.scale).exp() * averaged_exp)


@register_kl(Uniform, Exponential)
def kl_uniform_exponential(p: Uniform, q: Exponential) -> Tensor:
    """KL(U(a, b) ‖ Exp(λ)) = −log w − log λ + λ m if a ≥ 0, else +∞ (entry by entry),

    with w = b − a, m = (a + b)/2: −E_U[log λ − λx] = −log λ + λ m minus H(U) = log w.
    For a < 0, U puts mass on x < 0, where the exponential density is 0.

    Verified by: tests/distributions/test_inverse_cdf_kl.py::test_kl_matches_quadrature,
    ::test_kl_support_mismatch_is_infinite
    """
    finite = -(p.width * q.rate).log() + q.rate * p.mean
    return where(p.low.data >= 0, finite, np.inf)

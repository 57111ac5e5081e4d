"""The Dirichlet distribution on the probability simplex {x : x_k ≥ 0, Σ_k x_k = 1}.

    p(x) = Γ(α₀)/Π_k Γ(α_k) · Π_k x_k^(α_k − 1),   α₀ = Σ_k α_k

(a density with respect to the Lebesgue measure on K − 1 of the coordinates).

Sampling normalizes independent gammas: with g_k ~ Gamma(α_k, 1), x = g / Σ_k g ~ Dir(α).
The gammas are drawn as log g (see ``draw_log_standard_gamma``), and x = softmax(log g), so
small α, whose gammas round to 0 in floating point, cannot produce 0/0.  Each log g_k carries
the implicit slope ∂log g_k/∂α_k of the Gamma module, so the draw is also reparameterized.

Verified by: tests/distributions/test_dirichlet.py::test_marginal_of_samples_is_beta_by_ks,
::test_rsample_gradient_is_unbiased
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import (
    Distribution,
    as_parameters,
    broadcast_to,
    require_log_gamma_finite,
)
from minivae.distributions.gamma import log_power
from minivae.distributions.incomplete_gamma import (
    draw_log_standard_gamma,
    incomplete_gamma_pieces,
    require_implicit_gradient,
)
from minivae.distributions.kl import register_kl
from minivae.engine.ops import where
from minivae.engine.ops.elementwise import cast
from minivae.engine.ops.operands import unbroadcast
from minivae.engine.ops.ratios import generalized_kl, log_ratio, log_ratio_of_ratios
from minivae.engine.ops.special import digamma, lgamma
from minivae.engine.ops.stirling import stirling_gap_bregman
from minivae.engine.ops.stirling_increments import stirling_gap_bregman_increment
from minivae.engine.tensor import Tensor


def simplex_rsample(rng: np.random.Generator, concentration: Tensor, shape=()) -> Tensor:
    """x = softmax(log g), g_k ~ Gamma(α_k, 1), of shape ``shape + concentration.shape``.

    VJP: with s_k = ∂log g_k/∂α_k (implicit, per draw) and ∂x_k/∂log g_j = x_k(δ_kj − x_j),
        ∂L/∂α_j = s_j x_j (g_j − Σ_k g_k x_k)    (g = ∂L/∂x, summed over the sample axes).

    Verified by: tests/distributions/test_dirichlet.py::test_rsample_gradient_is_unbiased,
    tests/distributions/test_beta.py::test_rsample_gradient_is_unbiased
    """
    require_implicit_gradient(concentration)
    out_shape = checks.sample_shape(shape) + concentration.shape
    log_g = draw_log_standard_gamma(checks.generator(rng), concentration.data, out_shape)
    weights = np.exp(log_g - log_g.max(axis=-1, keepdims=True))
    x = weights / weights.sum(axis=-1, keepdims=True)

    def vjp(g):
        _, _, slope = incomplete_gamma_pieces(np.broadcast_to(concentration.data, out_shape),
                                              log_g)
        grad_log_g = x * (g - np.sum(g * x, axis=-1, keepdims=True))
        return (unbroadcast((grad_log_g * slope).astype(concentration.dtype),
                            concentration.shape),)

    return Tensor.from_op(x.astype(concentration.dtype), (concentration,), vjp, "dirichlet")


def log_beta_function(alpha: Tensor) -> Tensor:
    """log B(α) = Σ_k log Γ(α_k) − log Γ(α₀), over the last axis.

    Verified by: tests/distributions/test_dirichlet.py::test_log_prob_matches_scipy
    """
    return lgamma(alpha).sum(axis=-1) - lgamma(alpha.sum(axis=-1))


def _check_defined(log_density: Tensor) -> Tensor:
    """``log_density`` unless it is NaN: x on a face of the simplex where one factor is 0 and
    another ∞, so that the density has no limit there."""
    if np.isnan(log_density.data).any():
        raise ValueError("x must not lie on a face of the simplex where one factor "
                         "x_k^(α_k − 1) is 0 and another ∞ (some x_k = 0 with α_k > 1 and "
                         "another with α_k < 1): the density has no limit there")
    return log_density


class Dirichlet(Distribution):
    """Dir(α) over K categories: ``concentration`` has shape batch_shape + (K,), α_k > 0.

    log_prob(x) is −∞ off the simplex: where some x_k < 0 or |Σ_k x_k − 1| > √ε of the dtype
    (1.5e−8 in float64, 3.5e−4 in float32: about half the digits, room for the rounding of a
    normalized vector).  On the simplex's faces (some x_k = 0) each factor takes its limit as
    in ``log_power``; where one factor is +∞ and another −∞ the density has no limit there,
    and log_prob raises ValueError rather than return NaN.
    """

    has_rsample = True

    def __init__(self, concentration, validate_args: bool = True):
        (self.concentration,) = as_parameters(concentration=concentration)
        alpha = self.concentration
        if alpha.ndim < 1 or alpha.shape[-1] < 1:
            raise ValueError(f"concentration must have a last axis of K ≥ 1 categories, "
                             f"got shape {alpha.shape}")
        if validate_args:
            checks.positive(alpha, "concentration")
            with np.errstate(over="ignore"):
                require_log_gamma_finite(alpha.data.sum(axis=-1), "the sum of concentration")
        super().__init__(alpha.shape[:-1], alpha.shape[-1:], alpha.dtype)

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """x = g/Σ_k g_k with g_k ~ Gamma(α_k, 1), differentiable in α (``simplex_rsample``).

        ``sample`` is this draw without the graph.

        Verified by: tests/distributions/test_dirichlet.py::test_marginal_of_samples_is_beta_by_ks,
        ::test_rsample_gradient_is_unbiased
        """
        return simplex_rsample(rng, self.concentration, shape)

    def log_prob(self, x) -> Tensor:
        """log p(x) = Σ_k (α_k − 1) log x_k + log Γ(α₀) − Σ_k log Γ(α_k).

        Verified by: tests/distributions/test_dirichlet.py::test_log_prob_matches_scipy,
        ::test_log_prob_off_the_simplex
        """
        x = self._value(x)
        tolerance = np.sqrt(np.finfo(self.dtype).eps)
        on_simplex = np.all(x.data >= 0, axis=-1) & (np.abs(x.data.sum(axis=-1) - 1) <= tolerance)
        off = ~on_simplex
        x = where(off[..., None], 1 / self.event_shape[0], x)
        alpha = self.concentration
        with np.errstate(invalid="ignore"):  # +∞ − ∞ on a face: see _check_defined
            density = log_power(x, alpha - 1).sum(axis=-1) - log_beta_function(alpha)
        return where(off, -np.inf, _check_defined(density))

    def entropy(self) -> Tensor:
        """H = log B(α) + (α₀ − K) ψ(α₀) − Σ_k (α_k − 1) ψ(α_k).

        Verified by: tests/distributions/test_dirichlet.py::test_entropy_mean_variance_match_scipy
        """
        alpha = self.concentration
        total = alpha.sum(axis=-1)
        return (log_beta_function(alpha) + (total - self.event_shape[0]) * digamma(total)
                - ((alpha - 1) * digamma(alpha)).sum(axis=-1))

    @property
    def mean(self) -> Tensor:
        """E[x_k] = α_k/α₀.

        Verified by: tests/distributions/test_dirichlet.py::test_entropy_mean_variance_match_scipy
        """
        alpha = self.concentration
        return alpha / alpha.sum(axis=-1, keepdims=True)

    @property
    def variance(self) -> Tensor:
        """Var[x_k] = α_k (α₀ − α_k) / (α₀² (α₀ + 1)) = m_k (1 − m_k)/(α₀ + 1),  m_k = α_k/α₀.

        The second form never squares α₀, so it does not overflow for huge concentrations.
        Verified by: tests/distributions/test_dirichlet.py::test_entropy_mean_variance_match_scipy
        """
        alpha = self.concentration
        total = alpha.sum(axis=-1, keepdims=True)
        share = alpha / total
        return share * ((total - alpha) / total) / (total + 1)


def simplex_kl(a: Tensor, b: Tensor) -> Tensor:
    """KL(Dir(a) ‖ Dir(b)) over the last axis, for concentrations a, b > 0 (broadcast).

    Textbook form (``kl_dirichlet_dirichlet``) as Bregman divergences of log Γ,
    B(y; x) = log Γ(y) − log Γ(x) − (y − x) ψ(x):

        KL = Σₖ B(bₖ; aₖ) − B(b₀; a₀),      a₀ = Σₖ aₖ, b₀ = Σₖ bₖ.

    Each B grows like y log y, and a₀ = Σₖ aₖ rounds away the small aₖ (Beta(1e17, 1) ‖ Beta(1,
    1) came out 0.0, exactly 38.1).  Split log Γ = g + (z log z − z), g the ``stirling_gap``:
    the z log z − z parts add up to b₀ times the KL between the proportions b/b₀ and a/a₀,

        KL = Σₖ bₖ (ρₖ − 1 − log ρₖ) + [Σₖ B_g(bₖ; aₖ) − B_g(b₀; a₀)],   ρₖ = (aₖ/bₖ)/(a₀/b₀)

    (the terms bₖ ρₖ − bₖ sum to 0): terms ≥ 0 (``generalized_kl`` of bₖ and bₖ ρₖ),
    whose sum changes only at second order when a₀ and b₀ round, plus Bregman divergences of
    g, of the size of log a rather than a log a.  When one category j holds nearly all of a₀
    and b₀, B_g(b₀; a₀) and B_g(b_j; a_j) nearly coincide, and their difference is taken as
    the increment ``stirling_gap_bregman_increment`` by u = a₀ − a_j and v = b₀ − b_j, formed
    from differences of size u and v instead; entry by entry, whichever of the two bracket
    forms has the smaller terms (the smaller rounding error, inner terms of its differences
    included) is used, and the increment form wherever the direct one is ∞ − ∞ (B_g of the
    largest category and of the totals both overflowing).  Where B_g(bₖ; aₖ) ≈ bₖ/aₖ
    overflows for a k other than j, both forms are ∞ − ∞ and the KL is +∞: it is at least
    bₖ (1/aₖ − 1/a₀) ≥ bₖ/(2aₖ) there.  Like log Γ and ψ, it is evaluated in float64 and
    rounded to the concentrations' dtype.

    Verified by: tests/distributions/test_dirichlet.py::test_kl_matches_independent_formula,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range,
    ::test_named_examples
    """
    dtype = a.dtype  # evaluated in float64, as log Γ and ψ are, then rounded to dtype
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = broadcast_to(cast(a, np.float64), shape), broadcast_to(cast(b, np.float64), shape)
    a_total, b_total = a.sum(axis=-1), b.sum(axis=-1)
    # b₀ − a₀ as the sum of the exact differences bₖ − aₖ: near p = q the rounding of the
    # sums a₀ and b₀ would be as large as their difference
    total_difference = (b - a).sum(axis=-1)
    column = shape[:-1] + (1,)
    a_column, b_column = a_total.reshape(column), b_total.reshape(column)
    log_rho = log_ratio_of_ratios(a, b, a_column, b_column, -total_difference.reshape(column))
    log_matched = log_ratio(a, a_column) + b_column.log()  # log(bₖ ρₖ) = log(b₀ aₖ/a₀)
    proportions = generalized_kl(b, log_matched, log_rho).sum(axis=-1)
    gaps = stirling_gap_bregman(b, a)
    whole = stirling_gap_bregman(b_total, a_total, total_difference)

    largest = np.argmax(a.data, axis=-1)[..., None] == np.arange(shape[-1])
    rest = (~largest).astype(a.dtype)
    a_star, b_star = (a * largest).sum(axis=-1), (b * largest).sum(axis=-1)
    step, step_size = stirling_gap_bregman_increment(
        b_star, a_star, (b * rest).sum(axis=-1), (a * rest).sum(axis=-1),
        ((b - a) * rest).sum(axis=-1))
    with np.errstate(invalid="ignore", over="ignore"):
        direct, stepped = gaps.sum(axis=-1) - whole, where(largest, 0.0, gaps).sum(axis=-1) - step
        direct_size = np.where(largest, gaps.data, 0).sum(axis=-1) + whole.data
        # where the direct form is ∞ − ∞ it says nothing (a = [1e-127, 1e-126, 1e-126], b₁ =
        # 1e184: B_g(b₁; a₁) and B_g(b₀; a₀) overflow, the increment form is +∞ like the KL)
        by_step = (step_size < direct_size) | np.isnan(direct.data)
        bracket = where(by_step, stepped, direct)
    # both forms ∞ − ∞ where some B_g(bₖ; aₖ) overflows for a k other than the largest (a₀ ≥
    # 2aₖ): in 1,630 such cases checked in mpmath the KL was 1.5 times the largest float or more
    overflow = np.isnan(bracket.data) & np.any(~largest & (gaps.data == np.inf), axis=-1)
    return cast(proportions + where(overflow, np.inf, bracket), dtype)


@register_kl(Dirichlet, Dirichlet)
def kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> Tensor:
    """KL(Dir(a) ‖ Dir(b)) = log Γ(a₀) − Σ log Γ(a_k) − log Γ(b₀) + Σ log Γ(b_k)
                             + Σ_k (a_k − b_k)(ψ(a_k) − ψ(a₀)),

    from E_a[log x_k] = ψ(a_k) − ψ(a₀); evaluated by ``simplex_kl`` without cancellation.

    Verified by: tests/distributions/test_dirichlet.py::test_kl_matches_independent_formula,
    ::test_kl_matches_monte_carlo,
    tests/distributions/test_kl_float_range.py::test_kl_matches_mpmath_over_the_float_range
    """
    return simplex_kl(p.concentration, q.concentration)

"""The multivariate Gaussian N(μ, Σ) with Σ = L Lᵀ given by its Cholesky factor L.

    N(x; μ, Σ) = (2π)^(−d/2) |Σ|^(−1/2) exp(−½ (x − μ)ᵀ Σ⁻¹ (x − μ))

Working with L instead of Σ makes every formula a triangular solve: with y = L⁻¹(x − μ),
(x − μ)ᵀ Σ⁻¹ (x − μ) = ‖y‖², and log |Σ| = 2 Σᵢ log Lᵢᵢ.  No inverse is ever formed.

Also here: the closed-form KLs between full-covariance and diagonal Gaussians
(``Independent(Normal(loc, scale), 1)``, the project's diagonal Gaussian).

Verified by: tests/distributions/test_multivariate_normal.py::test_log_prob_and_entropy_match_scipy
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, Independent, as_parameters, broadcast_to
from minivae.distributions.kl import register_cross_entropy, register_kl
from minivae.distributions.normal import LOG_2PI, Normal
from minivae.engine.ops import softplus, where
from minivae.engine.ops.linalg import diagonal, solve_triangular
from minivae.engine.ops.ratios import ratio_excess, scaled_difference
from minivae.engine.tensor import Tensor


def _swap_last_axes(a: Tensor) -> Tensor:
    axes = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return a.transpose(axes)


def squared_norm_of_solve(L: Tensor, b: Tensor, vector: bool,
                          strictly_lower: bool = False) -> Tensor:
    """‖L⁻¹b‖² summed over each solution's axes (the last one, or two with ``vector=False``;
    with ``strictly_lower``, only the entries below the diagonal of the matrix L⁻¹b).

    Each row i of L and b is first divided by the power of two nearest below Lᵢᵢ: the
    solution is the same, bit for bit, but a product Lᵢⱼ yⱼ of the substitution overflows
    only where (Lᵢⱼ/Lᵢᵢ) yⱼ does (for L = 1e155 [[1, 0], [2, 1]] and b = diag(1e308, 1),
    2e155 · 1e153 overflowed where ‖y‖² = 5e306 does not).

    The forward substitution can still overflow (b ≈ 1e38 in float32): an entry of y becomes
    ±∞ and a later step forms ∞ − ∞ or 0 · ∞ = NaN.  NaN appears only after such an
    overflow, when ‖y‖² is far beyond the largest float, so those entries are +∞ (their
    gradient 0), computed from a zero stand-in so that no NaN reaches the graph.
    """
    axes = (-1,) if vector else (-2, -1)
    kept = np.tril(np.ones(b.shape[-2:], dtype=bool), -1) if strictly_lower else True
    finfo = np.finfo(L.dtype)
    _, exponent = np.frexp(np.diagonal(L.data, axis1=-2, axis2=-1))
    exponent = np.clip(exponent - 1, 1 - finfo.maxexp, -finfo.minexp)  # 2^(−e) stays normal
    row_scale = np.ldexp(np.ones((), dtype=L.dtype), -exponent)[..., None]
    L, b = L * row_scale, b * (row_scale[..., 0] if vector else row_scale)
    solution = solve_triangular(L, b, vector=vector)
    overflow = np.isnan(solution.data).any(axis=axes)
    if overflow.any():
        mask = overflow.reshape(overflow.shape + (1,) * len(axes))
        solution = where(kept, solve_triangular(L, where(mask, 0.0, b), vector=vector), 0.0)
        return where(overflow, np.inf, (solution * solution).sum(axis=axes))
    solution = where(kept, solution, 0.0)  # not a product: an overflowed diagonal times 0
    return (solution * solution).sum(axis=axes)


def half_log_det(scale_tril: Tensor) -> Tensor:
    """½ log |L Lᵀ| = Σᵢ log Lᵢᵢ  (a triangular matrix's determinant is its diagonal's product)."""
    return diagonal(scale_tril).log().sum(axis=-1)


class MultivariateNormal(Distribution):
    """N(loc, scale_tril scale_trilᵀ) over d-vectors, batched over the leading axes.

    loc : μ, shape (..., d).
    scale_tril : L, shape (..., d, d), lower-triangular with a positive diagonal (then
        Σ = L Lᵀ is positive definite and L is its Cholesky factor).  To get one from a network
        output, use ``scale_tril_from_unconstrained``.
    validate_args : check that μ is finite, L finite, zero above the diagonal, and with a
        positive diagonal (ValueError otherwise).  Shapes are always checked.
    """

    has_rsample = True

    def __init__(self, loc, scale_tril, validate_args: bool = True):
        self.loc, self.scale_tril = as_parameters(loc=loc, scale_tril=scale_tril)
        L = self.scale_tril.data
        if L.ndim < 2 or L.shape[-1] != L.shape[-2]:
            raise ValueError(f"scale_tril must have shape (..., d, d) (square in its last two "
                             f"axes), got shape {L.shape}")
        d = L.shape[-1]
        if self.loc.ndim < 1 or self.loc.shape[-1] != d:
            raise ValueError(f"loc must have shape (..., {d}) to match scale_tril of shape "
                             f"{L.shape}, got shape {self.loc.shape}")
        batch_shape = checks.broadcast((self.loc.shape[:-1], L.shape[:-2]),
                                       "the batch axes of loc and scale_tril")
        if validate_args:
            checks.finite(self.loc, "loc")
            checks.finite(L, "scale_tril")
            checks.require(np.triu(L, 1) == 0, "scale_tril",
                           "lower-triangular (zero above the diagonal)", L)
            diag = np.diagonal(L, axis1=-2, axis2=-1)
            checks.require(diag > 0, "scale_tril", "positive on the diagonal", diag)
        super().__init__(batch_shape, (d,), self.loc.dtype)

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """z = μ + L ε with ε ~ N(0, I_d): z is Gaussian with mean μ and covariance
        E[L ε εᵀ Lᵀ] = L Lᵀ = Σ, and differentiable in μ and L (dz/dLᵢⱼ = εⱼ eᵢ).

        Verified by:
        tests/distributions/test_multivariate_normal.py::test_sample_covariance_approaches_scale_tril_squared,
        ::test_gradients_of_rsample_log_prob_and_kl
        """
        noise = checks.generator(rng).standard_normal(self.sample_shape(shape)).astype(self.dtype)
        return self.loc + (self.scale_tril @ Tensor(noise[..., None]))[..., 0]

    def log_prob(self, x) -> Tensor:
        """log N(x; μ, LLᵀ) = −½ d log 2π − Σᵢ log Lᵢᵢ − ½ ‖y‖²,  y = L⁻¹(x − μ) (a solve).

        The support is all of ℝᵈ; a point with an infinite coordinate (and no NaN) gets −∞.
        Verified by:
        tests/distributions/test_multivariate_normal.py::test_log_prob_and_entropy_match_scipy,
        ::test_change_of_variables
        """
        x = self._value(x)
        infinite = np.isinf(x.data).any(axis=-1) & ~np.isnan(x.data).any(axis=-1)
        if infinite.any():  # a finite stand-in keeps inf − inf = NaN out of the solve
            x = where(np.isinf(x.data), 0.0, x)
        mahalanobis = squared_norm_of_solve(self.scale_tril, x - self.loc, vector=True)
        d = self.event_shape[0]
        value = -0.5 * d * LOG_2PI - half_log_det(self.scale_tril) - 0.5 * mahalanobis
        return where(infinite, -np.inf, value) if infinite.any() else value

    def entropy(self) -> Tensor:
        """H = ½ log |2πe Σ| = ½ d (1 + log 2π) + Σᵢ log Lᵢᵢ.

        Verified by:
        tests/distributions/test_multivariate_normal.py::test_log_prob_and_entropy_match_scipy
        """
        d = self.event_shape[0]
        return broadcast_to(0.5 * d * (1.0 + LOG_2PI) + half_log_det(self.scale_tril),
                            self.batch_shape)

    @property
    def mean(self) -> Tensor:
        """E[x] = μ.  Verified by:
        tests/distributions/test_multivariate_normal.py::test_mean_variance_and_covariance"""
        return broadcast_to(self.loc, self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        """Var[xᵢ] = Σᵢᵢ = Σⱼ Lᵢⱼ²  (the diagonal of L Lᵀ).

        Verified by:
        tests/distributions/test_multivariate_normal.py::test_mean_variance_and_covariance
        """
        squares = self.scale_tril * self.scale_tril
        return broadcast_to(squares.sum(axis=-1), self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        """Σ = L Lᵀ, shape batch + (d, d).

        Verified by:
        tests/distributions/test_multivariate_normal.py::test_mean_variance_and_covariance
        """
        covariance = self.scale_tril @ _swap_last_axes(self.scale_tril)
        return broadcast_to(covariance, self.batch_shape + self.event_shape * 2)


def scale_tril_from_unconstrained(raw, diagonal: str = "softplus") -> Tensor:
    """A valid Cholesky factor L from any real (..., d, d) array or Tensor.

    Lᵢⱼ = rawᵢⱼ below the diagonal, Lᵢᵢ = f(rawᵢᵢ) > 0 on it, 0 above (ignored);
    f = softplus (log(1 + eˣ), the default) or exp.

    Why softplus is the default: it grows linearly (softplus(x) ≈ x for large x), so a network
    output that drifts by a few units changes the scale by a few units; exp multiplies the scale
    by e per unit and overflows float32 near 89.  Both tend to 0 for very negative inputs, where
    Σ becomes nearly singular; bound the input (or add a floor to L) if that can happen.

    Verified by: tests/distributions/test_multivariate_normal.py::test_scale_tril_from_unconstrained
    """
    if diagonal not in ("softplus", "exp"):
        raise ValueError(f"diagonal must be 'softplus' or 'exp', got {diagonal!r}")
    raw = raw if isinstance(raw, Tensor) else Tensor(np.asarray(raw))
    checks.shape(raw.ndim >= 2 and raw.shape[-1] == raw.shape[-2], "raw", "(..., d, d)", raw.shape)
    d = raw.shape[-1]
    on_diagonal = np.eye(d, dtype=bool)
    strictly_lower = np.tril(np.ones((d, d), dtype=raw.dtype), -1)
    # f sees 0 off the diagonal, so exp of a large off-diagonal entry cannot overflow to inf·0
    inner = where(on_diagonal, raw, 0.0)
    positive = softplus(inner) if diagonal == "softplus" else inner.exp()
    return raw * strictly_lower + positive * on_diagonal.astype(raw.dtype)


# -- KL divergences and cross-entropy --------------------------------------------------------

def _trace_and_mahalanobis(loc_p, tril_p, loc_q, tril_q) -> tuple[Tensor, Tensor]:
    """tr(Σ_q⁻¹ Σ_p) = ‖L_q⁻¹ L_p‖_F²  and  (μ_q − μ_p)ᵀ Σ_q⁻¹ (μ_q − μ_p) = ‖L_q⁻¹(μ_q − μ_p)‖²,

    because tr(Σ_q⁻¹Σ_p) = tr(L_q⁻ᵀ L_q⁻¹ L_p L_pᵀ) = tr((L_q⁻¹L_p)ᵀ(L_q⁻¹L_p)); two solves.
    The second solves for the half difference μ_q/2 − μ_p/2 (exact halves) and multiplies by
    4: μ_q − μ_p itself overflows for means of opposite signs beyond half the largest float.
    """
    half_difference = 0.5 * loc_q - 0.5 * loc_p
    return (squared_norm_of_solve(tril_q, tril_p, vector=False),
            4.0 * squared_norm_of_solve(tril_q, half_difference, vector=True))


def _kl_from_factors(loc_p, tril_p, loc_q, tril_q) -> Tensor:
    """KL(N(μ_p, Σ_p) ‖ N(μ_q, Σ_q))
         = ½ [tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p) − d + log|Σ_q| − log|Σ_p|]
         = ½ [Σᵢ (mᵢᵢ² − 1 − log mᵢᵢ²) + Σᵢ>ⱼ mᵢⱼ² + ‖L_q⁻¹(μ_q − μ_p)‖²],   M = L_q⁻¹L_p.

    From the Gaussian expectation E_p[(x − μ)ᵀA(x − μ)] = tr(A Σ_p) + (μ_p − μ)ᵀA(μ_p − μ),
    applied to log p (A = Σ_p⁻¹, giving d) and to log q (A = Σ_q⁻¹).  M is lower triangular
    with mᵢᵢ = (L_p)ᵢᵢ/(L_q)ᵢᵢ, so tr(Σ_q⁻¹Σ_p) = ‖M‖_F² and log|Σ_q| − log|Σ_p| = −Σᵢ log mᵢᵢ²:
    the second form is a sum of terms ≥ 0 (``ratio_excess`` of the diagonals), which keeps
    its relative accuracy near p = q where ½(tr + Mahalanobis − d) would round at the size
    of d (float32 means 1e-3 apart were off by 5%).  Below the diagonal M = I + L_q⁻¹(L_p −
    L_q) has the entries of L_q⁻¹(L_p − L_q), whose substitution does not cancel near p = q
    as that of L_q⁻¹L_p does (m₁₀ = (L_p₁₀ − L_q₁₀ m₀₀)/L_q₁₁ was off by 1e-10 relative for
    L_q₀₀ = 1.000001 L_p₀₀): it is used where every mᵢᵢ is within ½ … 2 (then its terms are
    at most 3 times those of the direct solve), with halves of L_p and L_q, whose difference
    cannot overflow.
    """
    diagonal_excess = ratio_excess(diagonal(tril_p), diagonal(tril_q), 2).sum(axis=-1)
    with np.errstate(over="ignore", under="ignore"):
        ratios = diagonal(tril_p).data / diagonal(tril_q).data
    near = np.all((ratios >= 0.5) & (ratios <= 2.0), axis=-1)[..., None, None]
    half_step = where(near, 0.5 * tril_p - 0.5 * tril_q, 0.5 * tril_p)
    below = 4.0 * squared_norm_of_solve(tril_q, half_step, vector=False, strictly_lower=True)
    mahalanobis = 4.0 * squared_norm_of_solve(tril_q, 0.5 * loc_q - 0.5 * loc_p, vector=True)
    return 0.5 * (diagonal_excess + below + mahalanobis)


def _diagonal_parameters(dist: Independent) -> tuple[Tensor, Tensor]:
    """(μ, σ) of ``Independent(Normal(μ, σ), 1)``, each broadcast to batch + (d,)."""
    if not (isinstance(dist.base, Normal) and dist.ndims == 1):
        raise NotImplementedError(f"a closed-form KL with a MultivariateNormal needs "
                                  f"Independent(Normal, 1), got Independent("
                                  f"{type(dist.base).__name__}, {dist.ndims})")
    shape = dist.base.batch_shape
    return broadcast_to(dist.base.loc, shape), broadcast_to(dist.base.scale, shape)


@register_kl(MultivariateNormal, MultivariateNormal)
def kl_mvn_mvn(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    """KL(p ‖ q) = ½ [‖L_q⁻¹L_p‖_F² + ‖L_q⁻¹(μ_q − μ_p)‖² − d] + Σᵢ log (L_q)ᵢᵢ − Σᵢ log (L_p)ᵢᵢ,

    as the sum of terms ≥ 0 of ``_kl_from_factors``.

    Verified by:
    tests/distributions/test_multivariate_normal.py::test_kl_matches_an_independent_formula,
    ::test_kl_matches_monte_carlo, ::test_kl_is_nonnegative_and_zero_on_the_diagonal,
    tests/distributions/test_kl_float_range.py::test_named_examples
    """
    return _kl_from_factors(p.loc, p.scale_tril, q.loc, q.scale_tril)


@register_cross_entropy(MultivariateNormal, MultivariateNormal)
def cross_entropy_mvn_mvn(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    """−E_p[log q] = ½ [d log 2π + log|Σ_q| + tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p)].

    Verified by:
    tests/distributions/test_multivariate_normal.py::test_kl_is_cross_entropy_minus_entropy
    """
    trace, mahalanobis = _trace_and_mahalanobis(p.loc, p.scale_tril, q.loc, q.scale_tril)
    d = p.event_shape[0]
    return 0.5 * (d * LOG_2PI + trace + mahalanobis) + half_log_det(q.scale_tril)


@register_kl(Independent, MultivariateNormal)
def kl_diagonal_mvn(p: Independent, q: MultivariateNormal) -> Tensor:
    """KL(N(μ_p, diag σ_p²) ‖ N(μ_q, L_q L_qᵀ)): the full formula with L_p = diag(σ_p).

    Verified by:
    tests/distributions/test_multivariate_normal.py::test_kl_matches_an_independent_formula
    """
    loc, scale = _diagonal_parameters(p)
    d = p.event_shape[0]
    tril_p = scale.reshape(scale.shape + (1,)) * np.eye(d, dtype=p.dtype)
    return _kl_from_factors(loc, tril_p, q.loc, q.scale_tril)


@register_kl(MultivariateNormal, Independent)
def kl_mvn_diagonal(p: MultivariateNormal, q: Independent) -> Tensor:
    """KL(N(μ_p, L_p L_pᵀ) ‖ N(μ_q, diag σ_q²)): Σ_q⁻¹ is diagonal, so the solves are divisions:

        ½ [Σᵢⱼ ((L_p)ᵢⱼ / σ_qᵢ)² + Σᵢ ((μ_qᵢ − μ_pᵢ)/σ_qᵢ)² − d] + Σᵢ log σ_qᵢ − Σᵢ log (L_p)ᵢᵢ
      = ½ [Σᵢ (rᵢ² − 1 − log rᵢ²) + Σᵢ>ⱼ ((L_p)ᵢⱼ / σ_qᵢ)² + Σᵢ ((μ_qᵢ − μ_pᵢ)/σ_qᵢ)²],

    rᵢ = (L_p)ᵢᵢ/σ_qᵢ: terms ≥ 0, as in ``_kl_from_factors``.

    Verified by:
    tests/distributions/test_multivariate_normal.py::test_kl_matches_an_independent_formula,
    tests/distributions/test_kl_float_range.py::test_named_examples
    """
    loc, scale = _diagonal_parameters(q)
    d = p.event_shape[0]
    below = p.scale_tril * np.tril(np.ones((d, d), dtype=p.dtype), -1)
    ratio = below / scale.reshape(scale.shape + (1,))
    shift = scaled_difference(loc, p.loc, scale)  # (μ_q − μ_p)/σ_q without overflow of μ_q − μ_p
    diagonal_excess = ratio_excess(diagonal(p.scale_tril), scale, 2).sum(axis=-1)
    return 0.5 * (diagonal_excess + (ratio * ratio).sum(axis=(-2, -1))
                  + (shift * shift).sum(axis=-1))

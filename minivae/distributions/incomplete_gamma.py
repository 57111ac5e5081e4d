"""Implicit reparameterization of Gamma draws, through the regularized incomplete gamma function.

    p(x) = βᵅ xᵅ⁻¹ e^(−βx) / Γ(α),   x ≥ 0     (Exponential(λ) is Gamma(1, λ))

Gamma samplers reject proposals, so for fixed noise their draw is not a smooth function of α.
``rsample`` differentiates the draw *implicitly* instead: it keeps the draw's CDF value
u = P(α, z) fixed, where P(α, z) = γ(α, z)/Γ(α) is the regularized lower incomplete gamma
function (the inverse-CDF reparameterization z = P⁻¹(α, u), without computing P⁻¹).  Then
0 = ∂P/∂α + f(z) dz/dα, that is

    dz/dα = −(∂P/∂α)(α, z) / f(z; α),

and z/β turns a Gamma(α, 1) draw into a Gamma(α, β) one.  ∂P/∂α is computed below from the
power series of P (for z < α + 1) or the continued fraction of Q = 1 − P (otherwise), each
differentiated term by term in α.

Verified by:
tests/distributions/test_incomplete_gamma.py::test_cdf_and_its_alpha_derivative_match_scipy,
::test_implicit_derivative_follows_the_inverse_cdf
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.engine.ops.operands import unbroadcast
from minivae.engine.ops.special import digamma_array, log_gamma_array
from minivae.engine.tensor import Tensor, is_grad_enabled

ROUNDING = 2.3e-16  # about one unit in the last place of float64: the sums stop changing there
MAX_TERMS = 100_000  # both need < 100 terms for α ≤ 10, < 10√α beyond: α ≈ 10⁸ reaches this


def _series(a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S = Σₙ tₙ, t₀ = 1, tₙ = tₙ₋₁ x/(α + n), and S′ = dS/dα = −Σₙ tₙ Hₙ, Hₙ = Σₖ₌₁ⁿ 1/(α + k).

    Here P(α, x) = xᵅ e⁻ˣ/Γ(α + 1) · S.  For x < α + 1 each ratio x/(α + n) is below 1, and the
    tail after tₙ is at most tₙ r/(1 − r) with r = x/(α + n + 1).
    """
    term, harmonic = np.ones_like(a), np.zeros_like(a)
    total, slope = np.ones_like(a), np.zeros_like(a)
    for n in range(1, MAX_TERMS):
        term = term * x / (a + n)
        harmonic = harmonic + 1 / (a + n)
        total, slope = total + term, slope - term * harmonic
        ratio = x / (a + n + 1)
        if np.all(term * ratio / (1 - ratio) * (1 + harmonic) <= ROUNDING * total):
            return total, slope
    raise RuntimeError(f"the incomplete-gamma series did not converge in {MAX_TERMS} terms")


def _continued_fraction(a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F = b₀ + c₁/(b₁ + c₂/(b₂ + …)) with bₙ = x + 2n + 1 − α, cₙ = −n(n − α), and dF/dα.

    Here Q(α, x) = xᵅ e⁻ˣ/Γ(α) · 1/F.  Evaluated front to back by Lentz's method (F = b₀ Π Δⱼ,
    Δⱼ = CⱼDⱼ with Dⱼ = 1/(bⱼ + cⱼDⱼ₋₁), Cⱼ = bⱼ + cⱼ/Cⱼ₋₁), carrying each quantity's
    α-derivative along (b′ = −1, c′ₙ = n).  For x > α + 1, b₀ > 2 and no step divides by ~0.
    """
    f = c = x + 1 - a
    df = dc = -np.ones_like(a)
    d, dd = np.zeros_like(a), np.zeros_like(a)
    done = np.zeros(a.shape, dtype=bool)
    for n in range(1, MAX_TERMS):
        b, cn = x + 2 * n + 1 - a, -n * (n - a)
        d_inverse = b + cn * d
        d, dd = 1 / d_inverse, -(-1 + n * d + cn * dd) / d_inverse**2
        c, dc = b + cn / c, -1 + n / c - (cn / c) * (dc / c)
        delta, ddelta = c * d, dc * d + c * dd
        # Once Δ is 1 to rounding it jitters by an ulp; freeze each entry when it gets there.
        f, df = np.where(done, f, f * delta), np.where(done, df, df * delta + f * ddelta)
        done |= (np.abs(delta - 1) <= 2 * ROUNDING) & (np.abs(ddelta) <= 2 * ROUNDING)
        if np.all(done):
            return f, df
    raise RuntimeError(f"the incomplete-gamma fraction did not converge in {MAX_TERMS} terms")


def incomplete_gamma_pieces(a, log_x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(α, x), ∂P/∂α, ∂log z/∂α) in float64 for α > 0 and finite log x (x may underflow).

    The last is the implicit draw's slope (dz/dα)/z = −(∂P/∂α)/(z f(z; α)) at z = x; the ratio
    of prefactors is exact, (xᵅe⁻ˣ/Γ(α+1)) / (x f) = 1/α, so it never under- or overflows:
        series  (x < α + 1):  ∂P/∂α = A [S (log x − ψ(α+1)) + S′],  A = xᵅe⁻ˣ/Γ(α+1),
                              ∂log z/∂α = −[S (log x − ψ(α+1)) + S′] / α;
        fraction (otherwise): ∂Q/∂α = B [(log x − ψ(α)) − F′/F] / F,  B = xᵅe⁻ˣ/Γ(α),
                              ∂log z/∂α = [(log x − ψ(α)) − F′/F] / F.

    Verified by:
    tests/distributions/test_incomplete_gamma.py::test_cdf_and_its_alpha_derivative_match_scipy,
    ::test_implicit_derivative_follows_the_inverse_cdf
    """
    a, log_x = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(log_x, np.float64))
    x = np.exp(log_x)
    cdf, d_cdf, slope = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    series = x < a + 1
    if np.any(series):
        s_a, s_log_x, s_x = a[series], log_x[series], x[series]
        total, d_total = _series(s_a, s_x)
        bracket = total * (s_log_x - digamma_array(s_a + 1)) + d_total
        prefactor = np.exp(s_a * s_log_x - s_x - log_gamma_array(s_a + 1))
        cdf[series] = prefactor * total
        d_cdf[series] = prefactor * bracket
        slope[series] = -bracket / s_a
    fraction = ~series
    if np.any(fraction):
        f_a, f_log_x, f_x = a[fraction], log_x[fraction], x[fraction]
        f, df = _continued_fraction(f_a, f_x)
        bracket = (f_log_x - digamma_array(f_a) - df / f) / f
        prefactor = np.exp(f_a * f_log_x - f_x - log_gamma_array(f_a))
        cdf[fraction] = 1 - prefactor / f
        d_cdf[fraction] = -prefactor * bracket
        slope[fraction] = bracket
    return cdf, d_cdf, slope


def regularized_gamma_p(a: Tensor, x: Tensor) -> Tensor:
    """P(α, x) = γ(α, x)/Γ(α) = ∫₀ˣ tᵅ⁻¹e⁻ᵗ dt / Γ(α), the CDF of Gamma(α, 1); 0 for x ≤ 0,
    1 at x = +∞, NaN for NaN.

    VJP: ∂P/∂α from the differentiated series/fraction above;  ∂P/∂x = xᵅ⁻¹e⁻ˣ/Γ(α).

    Verified by:
    tests/distributions/test_incomplete_gamma.py::test_cdf_and_its_alpha_derivative_match_scipy,
    ::test_cdf_gradcheck
    """
    a_data, x_data = np.broadcast_arrays(a.data.astype(np.float64), x.data.astype(np.float64))
    inside = (x_data > 0) & (x_data < np.inf)
    safe_x = np.where(inside, x_data, 1.0)
    cdf, d_cdf, _ = incomplete_gamma_pieces(a_data, np.log(safe_x))
    edge = np.where(np.isnan(x_data), np.nan, np.where(x_data > 0, 1.0, 0.0))
    cdf = np.where(inside, cdf, edge)
    density = np.where(inside, np.exp((a_data - 1) * np.log(safe_x) - safe_x
                                      - log_gamma_array(a_data)), 0.0)

    def vjp(g):
        return (unbroadcast(np.where(inside, g * d_cdf, 0.0).astype(a.dtype), a.shape),
                unbroadcast((g * density).astype(x.dtype), x.shape))

    return Tensor.from_op(cdf.astype(a.dtype), (a, x), vjp, "regularized_gamma_p")


def draw_log_standard_gamma(rng: np.random.Generator, concentration, shape) -> np.ndarray:
    """log z for z ~ Gamma(α, 1), in float64, without underflow for small α.

    For α < 1 it uses Gamma(α) = Gamma(α + 1) · U^(1/α) with U ~ Uniform(0, 1], so
    log z = log z′ + log(U)/α stays finite where z itself would round to 0.

    Verified by: tests/distributions/test_gamma.py::test_samplers_match_scipy_by_ks
    """
    a = np.broadcast_to(np.asarray(concentration, np.float64), shape)
    boost = a < 1
    draws = rng.standard_gamma(np.where(boost, a + 1, a), size=shape)
    uniform = 1 - rng.random(size=shape)
    return np.log(draws) + np.where(boost, np.log(uniform) / a, 0.0)


MAX_IMPLICIT_CONCENTRATION = 1e8  # the backward pass needs < 10√α terms: 1e5 = MAX_TERMS


def require_implicit_gradient(concentration: Tensor) -> None:
    """Raise ValueError, before drawing, where the implicit gradient could not be summed.

    Only when a gradient will be recorded; ``sample`` (no graph) takes any concentration.
    """
    if is_grad_enabled() and concentration.requires_grad:
        checks.require(concentration.data <= MAX_IMPLICIT_CONCENTRATION, "concentration",
                       f"at most {MAX_IMPLICIT_CONCENTRATION:.0e} for a reparameterized draw "
                       f"(the implicit gradient's series would need more than {MAX_TERMS} "
                       f"terms); use sample() for larger ones", concentration)


def standard_gamma_from_log(concentration: Tensor, log_z: np.ndarray) -> Tensor:
    """z = exp(log z) for a Gamma(α, 1) draw; VJP g · z · ∂log z/∂α (the implicit slope).

    Verified by: tests/distributions/test_incomplete_gamma.py::test_rsample_gradient_is_unbiased
    """
    require_implicit_gradient(concentration)
    z = np.exp(log_z)

    def vjp(g):
        _, _, slope = incomplete_gamma_pieces(np.broadcast_to(concentration.data, z.shape), log_z)
        return (unbroadcast((g * z * slope).astype(concentration.dtype), concentration.shape),)

    return Tensor.from_op(z.astype(concentration.dtype), (concentration,), vjp, "standard_gamma")

"""log Γ, ψ and ψ′ against scipy.special (an independent oracle), identities, gradients, dtypes.

Accuracy bound: |ours − scipy| ≤ 1e-13 · |scipy| + floor.  The series' truncation error is
below 1e-17, so what is left is rounding, a few ulps in our arithmetic and in scipy's; the
worst seen is ≈ 1.5e-14 (log Γ near x = 3), well inside the bound.

The floor matters only near the zeros of log Γ (x = 1, 2) and of ψ (x ≈ 1.4616), where
relative error is ill-posed: there the value is a difference of terms of size up to
log Γ(20) ≈ 39 (resp. ψ(20) + 1/x ≈ 4), so its rounding error is absolute, a few ulps of
those terms.  ψ′ > 0 has no zero and needs no floor.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import mpmath
import numpy as np
import pytest
import scipy.special
from hypothesis import example, given, settings

import minivae as mv
from minivae import Tensor, gradcheck
from minivae.engine.ops.special import (
    digamma,
    digamma_array,
    lgamma,
    log_gamma_array,
    trigamma_array,
)
from minivae.engine.ops.stirling import (
    SHIFT,
    stirling_gap,
    stirling_gap_bregman,
    stirling_gap_curvature,
    stirling_gap_slope,
)
from minivae.engine.ops.stirling_increments import (
    stirling_gap_bregman_increment,
    stirling_gap_increments,
)

RTOL = 1e-13
LOG_GAMMA_FLOOR = 1e-13  # ≈ 450 ulps of 39: generous for the ~10 roundings in the shift
DIGAMMA_FLOOR = 1e-14  # ≈ 20 ulps of 4
DIGAMMA_ROOT = 1.4616321449683623  # the positive zero of ψ


def log_uniform(min_size: int = 1, max_size: int = 64):
    """float64 arrays whose entries are 10ᵘ with u uniform in [−6, 6]."""
    exponents = st.floats(-6.0, 6.0, allow_nan=False, allow_infinity=False)
    shapes = st.integers(min_size, max_size)
    return shapes.flatmap(lambda n: hnp.arrays(np.float64, (n,), elements=exponents)).map(
        lambda u: 10.0**u)


def near_roots() -> np.ndarray:
    """Points at relative distances 1e-12 … 1e-1 on both sides of each zero."""
    offsets = np.geomspace(1e-12, 1e-1, 23)
    offsets = np.concatenate([-offsets, offsets])
    return np.concatenate([root * (1 + offsets) for root in (1.0, 2.0, DIGAMMA_ROOT)])


def assert_close(ours, reference, floor):
    error = np.abs(ours - reference)
    bound = RTOL * np.abs(reference) + floor
    worst = np.argmax(error - bound)
    assert np.all(error <= bound), (
        f"error {error[worst]:.3g} > bound {bound[worst]:.3g} at entry {worst} "
        f"(reference {reference[worst]!r})")


@given(x=log_uniform())
def test_log_gamma_matches_scipy(x):
    assert_close(log_gamma_array(x), scipy.special.gammaln(x), LOG_GAMMA_FLOOR)


@given(x=log_uniform())
def test_digamma_matches_scipy(x):
    assert_close(digamma_array(x), scipy.special.digamma(x), DIGAMMA_FLOOR)


@given(x=log_uniform())
def test_trigamma_matches_scipy(x):
    assert_close(trigamma_array(x), scipy.special.polygamma(1, x), 0.0)


def test_special_functions_on_a_dense_grid_and_near_zeros():
    x = np.concatenate([np.geomspace(1e-6, 1e6, 50_001), near_roots()])
    assert_close(log_gamma_array(x), scipy.special.gammaln(x), LOG_GAMMA_FLOOR)
    assert_close(digamma_array(x), scipy.special.digamma(x), DIGAMMA_FLOOR)
    assert_close(trigamma_array(x), scipy.special.polygamma(1, x), 0.0)


def test_known_values():
    euler_gamma = 0.5772156649015329
    np.testing.assert_allclose(log_gamma_array([0.5, 1.0, 2.0, 5.0]),
                               [0.5 * np.log(np.pi), 0.0, 0.0, np.log(24.0)], rtol=1e-14,
                               atol=LOG_GAMMA_FLOOR)
    np.testing.assert_allclose(digamma_array([0.5, 1.0]),
                               [-euler_gamma - 2 * np.log(2.0), -euler_gamma], rtol=1e-14)
    np.testing.assert_allclose(trigamma_array([0.5, 1.0]), [np.pi**2 / 2, np.pi**2 / 6],
                               rtol=1e-14)


@given(x=log_uniform())
def test_recurrences_hold(x):
    """log Γ(x+1) = log Γ(x) + log x,  ψ(x+1) = ψ(x) + 1/x,  ψ′(x+1) = ψ′(x) − 1/x².

    x is rounded so that x + 1 is exact; the sides must agree to within 1e-13 of the size of
    the terms added (the identities cancel heavily for small x) plus twice the floor of the
    scipy comparison (each side carries one function value near a zero).
    """
    x = (x + 1.0) - 1.0
    x = x[x > 0]
    for f, step, floor in [(log_gamma_array, np.log(x), LOG_GAMMA_FLOOR),
                           (digamma_array, 1 / x, DIGAMMA_FLOOR),
                           (trigamma_array, -1 / x**2, 0.0)]:
        left, right = f(x + 1.0), f(x) + step
        scale = np.abs(f(x)) + np.abs(step) + np.abs(left)
        assert np.all(np.abs(left - right) <= 1e-13 * scale + 2 * floor), f.__name__


@settings(max_examples=20)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                    elements=st.floats(0.05, 30.0)))
def test_lgamma_and_digamma_gradients(x):
    assert gradcheck(lgamma, x)
    assert gradcheck(digamma, x)
    assert gradcheck(lambda t: lgamma(t * t + 0.5) + digamma(t * t + 0.5), x)


def test_ops_return_the_array_functions_values():
    x = np.array([1e-3, 0.7, 3.0, 250.0])
    np.testing.assert_array_equal(lgamma(x).data, log_gamma_array(x))
    np.testing.assert_array_equal(digamma(x).data, digamma_array(x))


def test_float32_is_preserved():
    x64 = np.array([1e-4, 0.3, 1.5, 7.0, 1e4])
    x32 = x64.astype(np.float32)
    for helper in (log_gamma_array, digamma_array, trigamma_array):
        out = helper(x32)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, helper(x32.astype(np.float64)), rtol=1e-6)
    for op in (lgamma, digamma):
        t = mv.Tensor(x32, requires_grad=True)
        out = op(t)
        assert out.dtype == np.float32
        out.sum().backward()
        assert t.grad.dtype == np.float32


@pytest.mark.parametrize("op", [lgamma, digamma])
@pytest.mark.parametrize("bad", [0.0, -1.5, np.nan, -np.inf])
def test_non_positive_or_nan_input_raises(op, bad):
    with pytest.raises(ValueError, match="x must be > 0"):
        op(np.array([2.0, bad]))


def test_array_helpers_give_nan_outside_the_domain_and_limits_at_infinity():
    x = np.array([0.0, -2.0, np.nan, np.inf])
    for helper, at_infinity in [(log_gamma_array, np.inf), (digamma_array, np.inf),
                                (trigamma_array, 0.0)]:
        out = helper(x)
        assert np.all(np.isnan(out[:3])) and out[3] == at_infinity


# -- the Stirling gap g(z) = log Γ(z) − z log z + z, its derivatives, increments and Bregman ----

def _g(z):
    return mpmath.loggamma(z) - z * mpmath.log(z) + z


def _g1(z):
    return mpmath.digamma(z) - mpmath.log(z)


def _g2(z):
    return mpmath.psi(1, z) - 1 / z


def _bregman(b, a):
    return _g(b) - _g(a) - (b - a) * _g1(a)


@st.composite
def near_pairs(draw):
    """(a, b) with a log-uniform in 1e-200 … 1e200 and b either independent or a (1 + δ),
    δ log-uniform in 1e-16 … 0.5 of either sign: both the direct form and the forms near the
    diagonal are exercised."""
    a = 10.0 ** draw(st.floats(-200, 200))
    if draw(st.booleans()):
        delta = 10.0 ** draw(st.floats(-16, np.log10(0.5))) * draw(st.sampled_from([1, -1]))
        return a, float(a * (1 + delta))
    return a, 10.0 ** draw(st.floats(-200, 200))


def _mp(function, *values, at_least=0):
    exponents = [abs(np.log10(v)) for v in values if v]
    with mpmath.workdps(max(60 + 2 * int(max(exponents, default=0)), at_least)):
        return function(*[mpmath.mpf(float(v)) for v in values])


def _assert_close(ours, reference, rtol, atol=1e-300):
    """Within rtol (and atol) of the reference, or ±∞ where the reference is beyond the
    float range."""
    if abs(reference) > np.finfo(np.float64).max:
        assert float(ours) == np.sign(float(reference)) * np.inf, float(ours)
        return
    assert abs(mpmath.mpf(float(ours)) - reference) <= rtol * abs(reference) + atol, \
        (float(ours), mpmath.nstr(reference, 17))


@settings(max_examples=30)
@given(pair=near_pairs(), step=st.floats(-300, 320))
@example(pair=(1e51, 1e52), step=-261.0)  # (b − a) Δg′(a) with Δg′ = 5e-313 subnormal: 3.8e-12
@example(pair=(5.623413251903491, 1.0), step=0.0)  # g(5.62) = 0.07 from terms of size 9.7
def test_stirling_gap_and_its_bregman_divergence(pair, step):
    """g, g′, g″ to 1e-14 relative (they are of the size of log z, 1/z, 1/z²), plus, below
    SHIFT where each is the difference of its terms, the rounding of those terms; the Bregman
    divergence B(b; a) ≥ 0 to 1e-12 relative however close b is to a (the textbook difference
    of g values would lose everything there); the increments of g, g′, g″ by c = 10^step a (up
    to 1e300, so c/a overflows too) to 1e-12 of their size, a Δg′ and a² Δg″ as well (finite
    where Δg″ ≈ 1/a² is not, normal where Δg′ ≈ c/(2a²) is subnormal), and the increment of B
    when both points move, to 1e-12 of the sum of its terms,
    which is what the Dirichlet KL uses it for (``simplex_kl``)."""
    a, b = pair
    # below SHIFT each is the difference of its terms (log Γ(a) − a log a + a, ψ(a) − log a,
    # ψ′(a) − 1/a), which rounds at 4ε of their size: up to 140 times |g| near a = 5.6
    terms = ((lambda z: abs(mpmath.loggamma(z)) + abs(z * mpmath.log(z)) + z),
             (lambda z: abs(mpmath.digamma(z)) + abs(mpmath.log(z))),
             (lambda z: mpmath.psi(1, z) + 1 / z))
    for function, reference, size in zip((stirling_gap, stirling_gap_slope,
                                          stirling_gap_curvature), (_g, _g1, _g2), terms):
        rounding = 4 * np.finfo(np.float64).eps * float(_mp(size, a)) if a < SHIFT else 0.0
        _assert_close(function(Tensor(a)).item(), _mp(reference, a), 1e-14,
                      atol=1e-300 + rounding)
    value = stirling_gap_bregman(Tensor(b), Tensor(a)).item()
    assert value >= 0
    with np.errstate(over="ignore"):
        _assert_close(value, _mp(_bregman, b, a), 1e-12)
    c = 10.0 ** min(np.log10(a) + step, 300.0)
    # the oracles cancel log Γ, ψ, ψ′ of a large a down to g, g′, g″ (a digit per decade of
    # a, two for ψ), and g(a + c) − g(a) down to c/a
    digits = 30 + 2 * max(0, int(np.log10(a))) + max(0, int(np.log10(a / c))) if c else 0
    increments = stirling_gap_increments(Tensor(a), Tensor(c))
    for ours, reference in zip(increments, (_g, _g1, _g2)):
        _assert_close(ours.item(), _mp(lambda a, c, f=reference: f(a + c) - f(a), a, c,
                                       at_least=digits), 1e-12)
    _, slope, curvature = stirling_gap_increments(Tensor(a), Tensor(c), scale=Tensor(a))
    _assert_close(slope.item(), _mp(lambda a, c: a * (_g1(a + c) - _g1(a)), a, c,
                                    at_least=digits), 1e-12)
    _assert_close(curvature.item(), _mp(lambda a, c: a * a * (_g2(a + c) - _g2(a)), a, c,
                                        at_least=digits), 1e-12)
    u, v = c, float(c * (1 + 1e-3))
    with np.errstate(over="ignore"):
        moved, size = stirling_gap_bregman_increment(Tensor(b), Tensor(a), Tensor(v), Tensor(u))
    if np.isfinite(size):
        # the textbook form cancels log Γ values of size a log a down to the result: digits
        # enough for 1e-14 of the tolerance's scale
        needed = 14 + np.log10(max(a, b, 1.0) * 1e3) - np.log10(max(float(size), 1e-300))
        exact = _mp(lambda b, a, v, u: _bregman(b + v, a + u) - _bregman(b, a), b, a, v, u,
                    at_least=int(needed))
        _assert_close(moved.item(), exact, 1e-12, 1e-12 * float(size) + 1e-300)


def test_stirling_gap_gradients():
    z = np.array([0.05, 0.7, 3.0, 9.5, 10.5, 40.0, 1e3])
    for function in (stirling_gap, stirling_gap_slope, stirling_gap_curvature):
        assert gradcheck(function, z)
    b = z * np.array([1.001, 0.6, 1.3, 1.0001, 2.5, 0.999, 1.1])
    assert gradcheck(stirling_gap_bregman, b, z)
    assert gradcheck(lambda x, c: stirling_gap_increments(x, c)[0]
                     + stirling_gap_increments(x, c)[1], z, z * 0.01)
    assert gradcheck(lambda b, a: stirling_gap_bregman_increment(b, a, 0.01 * a, 0.02 * a)[0],
                     b, z)


def test_gamma_pole_in_the_gradients():
    """g ψ′(x) for x = 1e-155: ψ′ itself overflows (1e310), the product with g = 1e-35 does not."""
    x = Tensor(np.array([1e-155, 1e-300, 0.5, 30.0]), requires_grad=True)
    (digamma(x) * np.array([1e-35, 1e-300, 1.0, 1.0])).sum().backward()
    np.testing.assert_allclose(x.grad, [1e-35 / 1e-310, 1e300,
                                        scipy.special.polygamma(1, 0.5),
                                        scipy.special.polygamma(1, 30.0)], rtol=1e-14)
    x = Tensor(np.array([1e-310]), requires_grad=True)
    (lgamma(x) * 1e-300).sum().backward()
    np.testing.assert_allclose(x.grad, [-1e-300 / 1e-310], rtol=1e-6)

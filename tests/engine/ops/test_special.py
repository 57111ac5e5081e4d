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
import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings

import minivae as mv
from minivae import gradcheck
from minivae.engine.ops.special import (
    digamma,
    digamma_array,
    lgamma,
    log_gamma_array,
    trigamma_array,
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

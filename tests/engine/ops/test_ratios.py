"""The float-range helpers of minivae.engine.ops.ratios against mpmath at 60 digits.

Operands are drawn log-uniformly over the whole float64 range (1e-300 … 1e300), and half the
time the second one is the first times (1 + δ), δ log-uniform in 1e-16 … 1, so that the
branches near ratio 1, where the textbook forms cancel, are exercised as often as the far ones.
Bounds: a few units in the last place relative (1e-15; 3e-15 for x − log(1 + x) just past
its series, where log1p's half-unit error is divided by a result 20 times smaller than x)
where the result is computed from quotients, 1e-13 where it passes through e^x with |x| up
to 700 (relative error |x| ε ≈ 8e-14).
"""
from __future__ import annotations

import hypothesis.strategies as st
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings

from minivae import Tensor, gradcheck
from minivae.engine.ops.elementwise import cast
from minivae.engine.ops.ratios import (
    generalized_kl,
    log1p_tangent_gap,
    log_product,
    log_ratio,
    log_ratio_of_ratios,
    ratio_excess,
    scaled_difference,
)

magnitudes = st.floats(-300, 300).map(lambda e: 10.0**e)


@st.composite
def pairs(draw):
    """(a, b): independent, or b = a (1 ± δ) close to a."""
    a = draw(magnitudes)
    if draw(st.booleans()):
        delta = 10.0 ** draw(st.floats(-16, 0)) * draw(st.sampled_from([1, -0.5]))
        return a, float(np.float64(a) * (1 + delta))
    return a, draw(magnitudes)


def exact(function, *values):
    """``function`` at 60 digits plus twice the largest decimal exponent among the values
    (t − log(1 + t) at t = 1e-140 cancels 140 digits)."""
    exponents = [abs(np.log10(abs(float(v)))) for v in values if v]
    with mp.workdps(60 + 2 * int(max(exponents, default=0))):
        return function(*[mp.mpf(float(v)) for v in values])


def assert_close(ours, reference, rtol, atol=1e-320):  # a subnormal result rounds absolutely
    assert abs(mp.mpf(float(ours)) - reference) <= rtol * abs(reference) + atol, \
        (float(ours), mp.nstr(reference, 17))


def leaves(*values):
    return [Tensor(np.float64(v), requires_grad=True) for v in values]


@given(first=pairs(), second=pairs())
@settings(max_examples=100)
def test_values_match_mpmath(first, second):
    (a, b), (c, d) = first, second
    assert_close(log_ratio(a, b).item(), exact(lambda a, b: mp.log(a / b), a, b), 1e-15)
    assert_close(log_product(a, b).item(), exact(lambda a, b: mp.log(a * b), a, b),
                 1e-15, 4e-16)
    assert_close(log_ratio_of_ratios(a, b, c, d).item(),
                 exact(lambda a, b, c, d: mp.log(a / b / (c / d)), a, b, c, d), 1e-15, 5e-16)
    for power in (1, 2):
        with np.errstate(over="ignore"):
            value = ratio_excess(a, b, power).item()
        reference = exact(lambda a, b, p=power: (a / b) ** p - 1 - p * mp.log(a / b), a, b)
        if reference > np.finfo(np.float64).max:
            assert value == np.inf
        else:
            assert_close(value, reference, 1e-14)
    with np.errstate(over="ignore"):  # y = b, given by its rounded log and log(y/x) exactly
        value = generalized_kl(a, np.log(b), log_ratio(b, a)).item()
    reference = exact(lambda x, y: x * mp.log(x / y) - x + y, a, b)
    if reference > np.finfo(np.float64).max:
        assert value == np.inf
    else:
        assert_close(value, reference, 2e-13)
    t = b / a - 1 if 0.5 <= b / a <= 2 else min(b / a, 1e300)
    assert_close(log1p_tangent_gap(t).item(), exact(lambda t: t - mp.log1p(t), t), 3e-15,
                 1e-320)  # subnormal results round to 5e-324
    with np.errstate(over="ignore"):
        x, y = np.float64(a) * d / c, -b  # opposite signs: x − y may overflow
    if np.isfinite(x):
        with np.errstate(over="ignore"):
            value = scaled_difference(x, y, c).item()
        reference = exact(lambda x, y, s: (x - y) / s, x, y, c)
        if reference > np.finfo(np.float64).max:
            assert value == np.inf
        else:
            assert_close(value, reference, 1e-15)


def test_named_cases():
    """Overflowing and underflowing ratios, and the exact zeros."""
    assert abs(log_ratio(1e300, 1e-300).item() - 1381.5510557964274) < 1e-12
    assert ratio_excess(1.0, 1.0).item() == 0.0 and ratio_excess(3.0, 3.0, 2).item() == 0.0
    assert generalized_kl(2.0, np.log(2.0), 0.0).item() == 0.0
    with np.errstate(over="ignore"):
        assert ratio_excess(1e155, 1e-155, 2).item() == np.inf
        assert scaled_difference(1.5e308, -1.5e308, 1e300).item() == 3e8
    # the Exponential KL that was NaN: λ_q/λ_p = 1e330 overflows, and so does the KL
    with np.errstate(over="ignore"):
        assert ratio_excess(1e30, 1e-300).item() == np.inf
    # and one whose ratio underflows: r − 1 − log r with r = 1e-330
    assert abs(ratio_excess(1e-300, 1e30).item() - (330 * np.log(10) - 1)) < 1e-12
    # 1e-8/1e300 is subnormal: the difference of two log-ratios near −700 was 1.4e-15 off
    assert_close(log_ratio_of_ratios(1.0, 1e299, 1e-8, 1e300).item(),
                 exact(lambda a, b, c, d: mp.log(a / b / (c / d)), 1.0, 1e299, 1e-8, 1e300),
                 1e-15)


@given(first=pairs(), second=pairs())
@settings(max_examples=50)
def test_gradients_match_mpmath(first, second):
    """Each partial derivative is finite wherever its exact value is a float, and equal to
    the formula of the docstring evaluated in mpmath (so 0 · ∞ and differences of overflowed
    partial derivatives, which the chain rule through the branches would form, never arise)."""
    (a, b), (c, d) = first, second
    finfo = np.finfo(np.float64)

    def check(build, values, derivatives, atol=0.0):
        inputs = leaves(*values)
        with np.errstate(all="ignore"):
            build(*inputs).backward()
        for leaf, derivative in zip(inputs, derivatives):
            reference = exact(derivative, *values)
            if abs(reference) > finfo.max:
                continue
            assert_close(leaf.grad, reference, 1e-13, finfo.tiny + atol)

    check(log_ratio, (a, b), (lambda a, b: 1 / a, lambda a, b: -1 / b))
    check(log_product, (a, b), (lambda a, b: 1 / a, lambda a, b: 1 / b))
    check(log_ratio_of_ratios, (a, b, c, d),
          (lambda *v: 1 / v[0], lambda *v: -1 / v[1], lambda *v: -1 / v[2], lambda *v: 1 / v[3]))
    for power in (1, 2):
        with np.errstate(over="ignore"):
            finite = np.isfinite(ratio_excess(a, b, power).item())
        if finite:
            check(lambda a, b, p=power: ratio_excess(a, b, p), (a, b),
                  (lambda a, b, p=power: p * ((a / b) ** p - 1) / a,
                   lambda a, b, p=power: -p * ((a / b) ** p - 1) / b))
    log_y, log_ratio_value = np.log(b), log_ratio(b, a).data
    with np.errstate(over="ignore"):
        finite = np.isfinite(generalized_kl(a, log_y, log_ratio_value).item())
    if finite:  # y = b, given by its rounded logarithm, and l = log(b/a) exactly
        inputs = leaves(a, log_y)
        with np.errstate(all="ignore"):
            generalized_kl(*inputs, log_ratio_value).backward()
        assert_close(inputs[0].grad, exact(lambda x, y: -mp.log(y / x), a, b), 1e-15, 1e-300)
        assert_close(inputs[1].grad, exact(lambda x, y: y - x, a, b), 2e-13, 1e-300)


def test_gradcheck_at_moderate_values():
    a, b = np.array([0.3, 1.0, 1.7, 40.0]), np.array([0.31, 1.2, 0.5, 3.0])
    assert gradcheck(log_ratio, a, b)
    assert gradcheck(log_product, a, b)
    assert gradcheck(lambda a, b: log_ratio_of_ratios(a, b, b, a), a, b)
    assert gradcheck(lambda a, b: ratio_excess(a, b, 2), a, b)
    assert gradcheck(lambda x, y: generalized_kl(x, y.log()), a, b)
    assert gradcheck(log1p_tangent_gap, np.array([-0.5, -0.05, 0.01, 0.2, 3.0]))
    assert gradcheck(scaled_difference, a, b, b)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # on purpose
def test_cast_rounds_and_keeps_the_gradient_dtype():
    x = Tensor(np.array([1.0, 3e38, 0.1], dtype=np.float32), requires_grad=True)
    wide = cast(x, np.float64)
    assert wide.dtype == np.float64 and np.array_equal(wide.data, x.data.astype(np.float64))
    (wide * wide).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, (2 * x.data.astype(np.float64)).astype(np.float32))
    assert cast(x, np.float32) is x
    assert cast(Tensor(np.array([1e39])), np.float32).data[0] == np.inf

"""The element-wise primitives (and neg): values against NumPy/SciPy, VJPs against central
differences, subgradients at kinks, and finite values and gradients at logits ±1e4 and
log-variances ±50, where each form must reach its mathematical limit: softplus(l) → max(l, 0),
σ(l) → [l > 0] once |l| ≫ 1."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from scipy import special

import minivae as mv
from minivae import Tensor, gradcheck
from minivae.distributions.gumbel import EULER_GAMMA, ZETA, log_gamma_plus_euler_line
from minivae.engine.ops import absolute, exp_taylor_remainder
from tests.engine.ops.helpers import (
    DTYPES,
    LOG_VARS,
    LOGITS,
    away_from_zero,
    finite,
    small_shapes,
    value_and_grad,
    values,
)

# -- values ------------------------------------------------------------------------------------

# name -> (minivae op, reference written independently of minivae, input range)
UNARY_REFERENCES = {
    "neg": (mv.neg, np.negative, (-5, 5)),
    "exp": (mv.exp, np.exp, (-5, 5)),
    "log": (mv.log, np.log, (1e-3, 5)),
    "log1p": (mv.log1p, np.log1p, (-0.999, 5)),
    "sqrt": (mv.sqrt, np.sqrt, (0, 5)),
    "tanh": (mv.tanh, np.tanh, (-5, 5)),
    "sigmoid": (mv.sigmoid, scipy.special.expit, (-30, 30)),
    "softplus": (mv.softplus, lambda x: np.log1p(np.exp(x)), (-30, 30)),
    "relu": (mv.relu, lambda x: np.where(x > 0, x, 0.0), (-5, 5)),
    "leaky_relu": (lambda t: mv.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), (-5, 5)),
}


@pytest.mark.parametrize("name", sorted(UNARY_REFERENCES))
@given(data=st.data())
def test_unary_values_match_reference(name, data):
    op, reference, (low, high) = UNARY_REFERENCES[name]
    x = data.draw(values(data.draw(small_shapes), low, high))
    out = op(Tensor(x))
    assert out.shape == x.shape
    np.testing.assert_allclose(out.data, reference(x), rtol=1e-12, atol=1e-300)


# -- gradients ---------------------------------------------------------------------------------

# name -> (function of one Tensor, map from raw values in [-3, 3] into the op's safe domain)
UNARY_OPS = {
    "neg": (mv.neg, lambda x: x),
    "exp": (mv.exp, lambda x: x),
    "log": (mv.log, lambda x: 0.1 + np.abs(x)),
    "log1p": (mv.log1p, lambda x: np.abs(x) - 0.9),
    "sqrt": (mv.sqrt, lambda x: 0.1 + np.abs(x)),
    "tanh": (mv.tanh, lambda x: x),
    "sigmoid": (mv.sigmoid, lambda x: 3 * x),
    "softplus": (mv.softplus, lambda x: 3 * x),
    "relu": (mv.relu, lambda x: away_from_zero(x, 1e-2)),
    "leaky_relu": (lambda t: mv.leaky_relu(t, 0.2), lambda x: away_from_zero(x, 1e-2)),
    "leaky_relu_default_slope": (mv.leaky_relu, lambda x: away_from_zero(x, 1e-2)),
}


@pytest.mark.parametrize("name", sorted(UNARY_OPS))
@given(data=st.data())
def test_unary_op_gradients(name, data):
    op, to_domain = UNARY_OPS[name]
    shape = data.draw(small_shapes, label="shape")
    x = to_domain(data.draw(values(shape), label="x"))
    assert gradcheck(op, x)


# -- subgradients at kinks ---------------------------------------------------------------------


def test_relu_subgradient_at_zero_is_zero():
    x = Tensor(np.array([-1.0, 0.0, -0.0, 2.0]), requires_grad=True)
    out = mv.relu(x)
    out.backward(np.ones(4))
    np.testing.assert_array_equal(out.data, [0.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0, 1.0])


def test_leaky_relu_takes_the_slope_at_zero():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    mv.leaky_relu(x, 0.1).backward(np.ones(3))
    np.testing.assert_allclose(x.grad, [0.1, 0.1, 1.0])


# -- stability at extreme inputs ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_and_sigmoid_are_stable_for_large_inputs(dtype):
    x = np.concatenate([np.linspace(-1e4, 1e4, 2001), [-1e4, -710.0, -100.0, 0.0, 100.0, 710.0]])
    x = x.astype(dtype)
    # Any overflow, division by zero or invalid operation fails the test (underflow to 0 is
    # the correct answer far in the tails).
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        softplus, softplus_grad = value_and_grad(mv.softplus, x)
        sigmoid, sigmoid_grad = value_and_grad(mv.sigmoid, x)

    for array in (softplus, softplus_grad, sigmoid, sigmoid_grad):
        assert array.dtype == dtype
        assert np.all(np.isfinite(array))
    assert np.all(softplus >= 0)
    assert np.all((sigmoid >= 0) & (sigmoid <= 1))
    assert np.all((sigmoid_grad >= 0) & (sigmoid_grad <= 0.25))
    # softplus'(x) = σ(x), checked against SciPy's logistic function in float64
    np.testing.assert_allclose(softplus_grad, scipy.special.expit(x.astype(np.float64)),
                               rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-30)
    np.testing.assert_array_equal(softplus_grad, sigmoid)

    large = x > 50  # log(1 + eˣ) = x + log(1 + e⁻ˣ), and e⁻⁵⁰ is below float precision
    np.testing.assert_allclose(softplus[large], x[large], rtol=1e-12)
    np.testing.assert_array_equal(sigmoid[large], 1.0)

    # For very negative x, log(1 + eˣ) ≈ eˣ to relative precision eˣ; stay above underflow.
    lowest = -80 if dtype == np.float32 else -700
    very_negative = np.linspace(lowest, -40, 50).astype(dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        tail, _ = value_and_grad(mv.softplus, very_negative)
        tail_sigmoid, _ = value_and_grad(mv.sigmoid, very_negative)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(tail, np.exp(very_negative), rtol=rtol)
    np.testing.assert_allclose(tail_sigmoid, np.exp(very_negative), rtol=rtol)


FORMS = {
    "softplus": (mv.softplus, lambda l: np.maximum(l, 0), lambda l: (l > 0) * 1.0),
    "sigmoid": (mv.sigmoid, lambda l: (l > 0) * 1.0, lambda l: 0 * l),
    "log_sigmoid": (lambda t: -mv.softplus(-t), lambda l: np.minimum(l, 0),
                    lambda l: (l < 0) * 1.0),
    "log_sigmoid_as_difference": (lambda t: t - mv.softplus(t), lambda l: np.minimum(l, 0),
                                  lambda l: (l < 0) * 1.0),
    "log_one_minus_sigmoid": (lambda t: -mv.softplus(t), lambda l: np.minimum(-l, 0),
                              lambda l: -1.0 * (l > 0)),
    "tanh": (mv.tanh, np.sign, lambda l: 0 * l),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(FORMS))
def test_logit_forms_are_finite_and_reach_their_limits(name, dtype):
    op, value_limit, grad_limit = FORMS[name]
    value, grad = value_and_grad(op, LOGITS.astype(dtype))
    assert value.dtype == dtype and grad.dtype == dtype
    assert finite(value) and finite(grad)
    far = np.abs(LOGITS) >= 50  # there the limits hold to rounding
    np.testing.assert_allclose(value[far], value_limit(LOGITS[far]), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad[far], grad_limit(LOGITS[far]), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_of_half_log_variance_is_finite_at_plus_minus_50(dtype):
    value, grad = value_and_grad(lambda t: mv.exp(0.5 * t), LOG_VARS.astype(dtype))
    assert finite(value) and finite(grad)
    np.testing.assert_allclose(grad, 0.5 * np.exp(0.5 * LOG_VARS), rtol=1e-6)
    value, grad = value_and_grad(mv.exp, LOG_VARS.astype(dtype))  # σ² = e^(±50) itself
    assert finite(value) and finite(grad)


# -- compositions: absolute value and the Taylor remainder of exp ------------------------------


def test_helpers_match_numpy():
    x = np.array([-3.0, -0.1 - 1e-12, -0.1, -1e-3, -1e-9, 0.0, 1e-9, 1e-3, 0.0999, 0.1, 2.0])
    np.testing.assert_array_equal(absolute(Tensor(x)).data, np.abs(x))
    # eˣ − 1 − x by an independent route: expm1, or near 0 the series to 30 terms
    reference = [special.expm1(v) - v if abs(v) > 0.5 else
                 np.float64(sum(v**k / special.factorial(k) for k in range(30, 1, -1)))
                 for v in x]
    np.testing.assert_allclose(exp_taylor_remainder(Tensor(x)).data, reference, rtol=1e-12)
    np.testing.assert_allclose([ZETA[k] for k in range(2, 11)], special.zeta(range(2, 11)),
                               rtol=1e-15)
    r = np.array([1e-3, 0.5, 0.95 - 1e-12, 0.95, 1 - 1e-6, 1.0, 1 + 1e-6, 1.05, 1.05 + 1e-12, 7.0])
    # log Γ(r) + γ(r − 1) from scipy away from 1; near 1 from the series with scipy's ζ
    near = np.abs(r - 1) < 0.2
    series = sum((-1.0) ** k * special.zeta(k) * (r - 1) ** k / k for k in range(40, 1, -1))
    reference = np.where(near, series, special.gammaln(r) + EULER_GAMMA * (r - 1))
    np.testing.assert_allclose(log_gamma_plus_euler_line(Tensor(r)).data, reference,
                               rtol=1e-11, atol=1e-300)
    assert log_gamma_plus_euler_line(Tensor(1.0)).item() == 0.0
    smooth = np.array([-2.0, -0.3, -1e-4, 3e-5, 0.4, 1.5])
    assert gradcheck(exp_taylor_remainder, smooth)
    assert gradcheck(log_gamma_plus_euler_line, 1 + smooth / 4)
    assert gradcheck(absolute, smooth)

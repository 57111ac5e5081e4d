"""The engine at the edges of the floating-point range: logits ±1e4, log-variances ±50.

Every value and every gradient must be finite there, in float32 and float64, for the
elementwise ops, the log-sum-exp and the fused kernels on every backend (Python loops,
numba, C).  The expected numbers come from the math, not from the code: softplus(l) → max(l, 0)
and σ(l) → [l > 0] once |l| ≫ 1, logsumexp of a row dominated by one entry is that entry, and
the Gaussian KL at log σ² = ±50 is ½(e^(±50) − 1 ∓ 50).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import minivae as mv
from minivae import Tensor, kernels
from minivae.engine.ops import fused

DTYPES = (np.float32, np.float64)
LOGITS = np.array([-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4])
LOG_VARS = np.array([-50.0, -1.0, 0.0, 1.0, 50.0])


def finite(array) -> bool:
    return bool(np.isfinite(np.asarray(array)).all())


def value_and_grad(op, data):
    x = Tensor(data, requires_grad=True)
    out = op(x)
    out.backward(np.ones(out.shape, dtype=out.dtype))
    return out.data, x.grad


# -- elementwise forms -----------------------------------------------------------------------
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


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_extreme_rows_is_finite_with_softmax_gradient(dtype):
    rows = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [50.0, -50.0, 1e4]], dtype=dtype)
    value, grad = value_and_grad(lambda t: mv.logsumexp(t, axis=1), rows)
    assert finite(value) and finite(grad)
    np.testing.assert_allclose(value, [1e4, -1e4 + np.log(3), 1e4], rtol=1e-6)
    np.testing.assert_allclose(grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]], atol=1e-6)


# -- log-sum-exp at ±∞: the exact subgradient ------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_infinite_entries_share_the_gradient(dtype, keepdims):
    inf = np.inf
    rows = np.array([[0.0, inf, 3.0, inf],      # two +∞: they share the mass, ½ each
                     [-inf, inf, -inf, 1e4],    # one +∞ takes it all
                     [-inf, -inf, -inf, -inf],  # empty sum: −∞, gradient 0
                     [-inf, 0.0, -inf, 0.0]], dtype=dtype)  # −∞ entries weigh nothing
    x = Tensor(rows, requires_grad=True)
    out = mv.logsumexp(x, axis=1, keepdims=keepdims)
    upstream = np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype).reshape(out.shape)
    out.backward(upstream)
    np.testing.assert_array_equal(out.data.ravel()[:3], [inf, inf, -inf])
    np.testing.assert_allclose(out.data.ravel()[3], np.log(2), rtol=1e-6)
    expected = np.array([[0, 0.5, 0, 0.5], [0, 2, 0, 0], [0, 0, 0, 0], [0, 2, 0, 2]])
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad, expected)


def test_logsumexp_infinite_subgradient_is_the_limit_of_softmax():
    # The limit of softmax([0, t, 3, t]) as t → ∞ is [0, ½, 0, ½]: the shared weights above.
    t = 700.0
    x = Tensor([0.0, t, 3.0, t], requires_grad=True)
    mv.logsumexp(x).backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0, 0.5], atol=1e-300)


def test_reductions_over_zero_entries_raise_value_error_naming_x():
    empty = Tensor(np.zeros((2, 0)))
    for op in (mv.logsumexp, mv.max, mv.mean):
        with pytest.raises(ValueError, match=r"x must have at least one entry along axis"):
            op(empty, axis=1)
    np.testing.assert_array_equal(mv.sum(empty, axis=1).data, [0.0, 0.0])  # an empty sum is 0


# -- fused kernels on every backend ----------------------------------------------------------
@pytest.fixture
def backend(every_backend):
    return every_backend


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_bernoulli_log_prob_at_extreme_logits(backend, dtype):
    logits = np.tile(LOGITS, (2, 1)).astype(dtype)
    x = np.stack([np.zeros_like(LOGITS), np.ones_like(LOGITS)]).astype(dtype)
    t = Tensor(logits, requires_grad=True)
    value = fused.bernoulli_log_prob(t, x)
    value.backward(np.ones(2, dtype=dtype))
    assert value.data.dtype == dtype and finite(value.data) and finite(t.grad)
    # x = 0: −softplus(l); x = 1: l − softplus(l) = −softplus(−l); gradient x − σ(l)
    sigma = special.expit(LOGITS)
    expected = [-np.logaddexp(0, LOGITS).sum(), -np.logaddexp(0, -LOGITS).sum()]
    np.testing.assert_allclose(value.data, expected, rtol=1e-6)
    np.testing.assert_allclose(t.grad, np.stack([-sigma, 1 - sigma]), atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_gaussian_kl_at_extreme_log_variances(backend, dtype):
    log_var = np.tile(LOG_VARS, (2, 1)).astype(dtype)
    loc = np.array([[0.0] * 5, [1e4, -1e4, 0.0, 1.0, -1.0]], dtype=dtype)
    eps = np.ones_like(loc)
    mu, lv = Tensor(loc, requires_grad=True), Tensor(log_var, requires_grad=True)
    z, kl = fused.reparameterize_kl(mu, lv, eps)
    (z.sum() + kl.sum()).backward()
    for array in (z.data, kl.data, mu.grad, lv.grad):
        assert array.dtype == dtype and finite(array)
    lv64, loc64 = LOG_VARS.astype(np.float64), loc.astype(np.float64)
    np.testing.assert_allclose(kl.data, 0.5 * (loc64**2 + np.exp(lv64) - 1 - lv64).sum(1),
                               rtol=1e-5)
    # ∂(z + KL)/∂ log σ² = ½ σ ε + ½ (σ² − 1), ∂/∂μ = 1 + μ
    np.testing.assert_allclose(lv.grad, np.broadcast_to(
        0.5 * np.exp(0.5 * lv64) + 0.5 * (np.exp(lv64) - 1), (2, 5)), rtol=1e-5)
    np.testing.assert_allclose(mu.grad, 1 + loc64, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softplus", "relu", "leaky_relu"])
def test_fused_linear_at_extreme_pre_activations(backend, dtype, activation):
    x = Tensor(np.eye(len(LOGITS), dtype=dtype), requires_grad=True)
    weight = Tensor(np.diag(LOGITS).astype(dtype), requires_grad=True)
    bias = Tensor(np.zeros(len(LOGITS), dtype=dtype), requires_grad=True)
    y = fused.linear(x, weight, bias, activation)
    y.sum().backward()
    for array in (y.data, x.grad, weight.grad, bias.grad):
        assert finite(array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adam_with_extreme_gradients_stays_finite(backend, dtype):
    grad = np.array([1e4, -1e4, 50.0, -50.0, 0.0, 1e-30], dtype=dtype)
    param = np.zeros_like(grad)
    m, v = np.zeros_like(grad), np.zeros_like(grad)
    for step in range(1, 4):
        kernels.adam_step(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, step)
    assert finite(param) and finite(m) and finite(v)
    # With a constant gradient, m̂/√v̂ = sign(g) exactly: each step moves lr against the sign.
    moved = np.abs(grad) >= 1
    np.testing.assert_allclose(param[moved], -3e-3 * np.sign(grad[moved]), rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_rows_kernel_at_extremes(backend, dtype):
    rows = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [-50.0, 50.0, 0.0]], dtype=dtype)
    out = kernels.logsumexp_rows(rows)
    assert out.dtype == dtype and finite(out)
    np.testing.assert_allclose(out, [1e4, -1e4 + np.log(3), 50.0], rtol=1e-6)


# -- one contract for every backend ----------------------------------------------------------
def test_logsumexp_rows_without_columns_raises_on_every_backend(backend):
    with pytest.raises(ValueError, match="a must have at least one column"):
        kernels.logsumexp_rows(np.zeros((3, 0)))


def test_every_backend_rejects_mixed_dtypes_with_type_error(backend):
    f32, f64 = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64)
    with pytest.raises(TypeError, match="x must have the dtype of logits"):
        kernels.bernoulli_log_prob(f32, f64)
    with pytest.raises(TypeError, match="bias must have the dtype of h"):
        kernels.bias_act_forward(f32, np.zeros(3), "tanh")
    with pytest.raises(TypeError, match="eps must have the dtype of loc"):
        kernels.reparameterize_kl_forward(f32, f32, f64)
    with pytest.raises(TypeError, match="a must be a float32 or float64 array"):
        kernels.logsumexp_rows(np.zeros((2, 3), np.int64))
    flat32, flat64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    with pytest.raises(TypeError, match="must have the dtype of param"):
        kernels.adam_step(flat32, flat32.copy(), flat32.copy(), flat64, 1e-3, 0.9, 0.999,
                          1e-8, 1)


# the extreme inputs overflow on purpose (IEEE ∞), which NumPy reports
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_division_by_a_tiny_broadcast_divisor_has_an_exact_gradient(dtype):
    """d/db Σ_i a_i/b = −(Σ_i a_i)/b², which is 0 when the a_i cancel, even though each term
    a_i/b² overflows for b = 1e-30 (summing the overflowed terms would give ∞ − ∞ = NaN)."""
    largest = np.finfo(dtype).max
    for numerator in ([1.0, -1.0], [largest, 0.0, -largest]):
        a = Tensor(np.array(numerator, dtype), requires_grad=True)
        b = Tensor(np.array(1e-30, dtype), requires_grad=True)
        (a / b).sum().backward()
        assert b.grad == 0
        np.testing.assert_allclose(a.grad, 1 / np.array(1e-30, dtype), rtol=1e-6)

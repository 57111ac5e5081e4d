"""The fused primitives (linear with its activation, the every-class activation of M2's
encoder, the Bernoulli log-likelihood, the reparameterized draw with its KL) equal the
compositions of elementary primitives they replace, and stay finite at logits ±1e4 and
log-variances ±50 on every kernel backend."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special

import minivae
from minivae import Tensor
from minivae.engine.ops import fused
from tests.engine.ops.helpers import DTYPES, LOG_VARS, LOGITS, finite

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus"]
COMPOSED = {
    "identity": lambda t: t,
    "relu": minivae.relu,
    "leaky_relu": lambda t: minivae.leaky_relu(t, 0.2),
    "tanh": minivae.tanh,
    "sigmoid": minivae.sigmoid,
    "softplus": minivae.softplus,
}


def arrays(seed, *shapes, scale=1.0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) * scale for shape in shapes]


def away_from_kinks(h):
    # relu-type derivatives jump at 0: keep pre-activations clear of it for finite differences
    return np.where(np.abs(h) < 1e-2, 0.5, h)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # backend is per test
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 6), n=st.integers(1, 5),
       m=st.integers(1, 5))
def test_fused_ops_equal_their_compositions(backend, activation, seed, rows, n, m):
    x, w, b = arrays(seed, (rows, n), (n, m), (m,))
    composed = COMPOSED[activation](Tensor(x) @ Tensor(w) + Tensor(b))
    np.testing.assert_allclose(fused.linear(x, w, b, activation, 0.2).data, composed.data,
                               rtol=1e-12, atol=1e-12)

    logits, = arrays(seed + 1, (rows, m), scale=5.0)
    target = (np.random.default_rng(seed).random((rows, m)) < 0.5).astype(float)
    np.testing.assert_allclose(
        fused.bernoulli_log_prob(logits, target).data,
        (target * Tensor(logits) - minivae.softplus(Tensor(logits))).sum(axis=-1).data,
        rtol=1e-12, atol=1e-12)

    shared, per_class = arrays(seed + 3, (rows, m), (n, m))  # n classes
    composed = COMPOSED[activation](
        (Tensor(per_class).reshape(n, 1, m) + Tensor(shared).reshape(1, rows, m))
        .reshape(n * rows, m))
    np.testing.assert_allclose(
        fused.every_class_activation(shared, per_class, activation, 0.2).data, composed.data,
        rtol=1e-12, atol=1e-12)

    loc, log_var, eps = arrays(seed + 2, (rows, m), (rows, m), (rows, m))
    z, kl = fused.reparameterize_kl(loc, log_var, eps)
    np.testing.assert_allclose(z.data, loc + np.exp(0.5 * log_var) * eps, rtol=1e-12)
    np.testing.assert_allclose(
        kl.data, 0.5 * (loc**2 + np.exp(log_var) - 1 - log_var).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_fused_op_gradients(backend, activation):
    x, w, b = arrays(3, (4, 3), (3, 5), (5,))
    pre = x @ w + b
    b = b + (away_from_kinks(pre) - pre).mean(0)  # nudge so no pre-activation sits on a kink
    assert minivae.gradcheck(lambda x, w, b: fused.linear(x, w, b, activation, 0.2), x, w, b)

    shared, per_class = arrays(9, (4, 5), (3, 5))
    # |shared| < 0.2 and |per_class| ≥ 0.5, so no sum sits on a relu-type kink
    shared, per_class = 0.2 * np.tanh(shared), np.sign(per_class) * (0.5 + np.abs(per_class))
    assert minivae.gradcheck(
        lambda s, c: fused.every_class_activation(s, c, activation, 0.2), shared, per_class)

    logits, = arrays(4, (3, 6), scale=4.0)
    target = np.random.default_rng(0).random((3, 6))  # soft targets are allowed
    assert minivae.gradcheck(lambda t: fused.bernoulli_log_prob(t, target), logits)

    eps, = arrays(5, (3, 4))
    for output, seed in ((0, 6), (1, 7)):  # z, then kl
        assert minivae.gradcheck(lambda m, v, i=output: fused.reparameterize_kl(m, v, eps)[i],
                                 *arrays(seed, (3, 4), (3, 4)))

    # used together (as in the ELBO) the two VJPs add up at μ and log σ²
    def both(m, v):
        z, kl = fused.reparameterize_kl(m, v, eps)
        return (z * z).sum(axis=-1) - kl
    assert minivae.gradcheck(both, *arrays(8, (3, 4), (3, 4)))


def test_linear_skips_the_input_gradient_for_constant_inputs():
    x, w, b = arrays(0, (2, 3), (3, 4), (4,))
    weight = Tensor(w, requires_grad=True)
    out = fused.linear(Tensor(x), weight, Tensor(b), "tanh")
    grads = out._vjp(np.ones_like(out.data))
    assert grads[0] is None
    # a parameter's gradient goes straight into its buffer: xᵀ (1 − y²) for tanh
    assert grads[1] is None
    np.testing.assert_allclose(weight.grad, x.T @ (1 - out.data**2), rtol=1e-12)
    # a weight computed by other ops gets its gradient back through the engine instead
    computed = Tensor(w, requires_grad=True) * 1.0
    grads = fused.linear(Tensor(x), computed, Tensor(b), "tanh")._vjp(np.ones_like(out.data))
    np.testing.assert_allclose(grads[1], x.T @ (1 - out.data**2), rtol=1e-12)


def test_fused_ops_keep_float32_and_reject_mixed_dtypes():
    x, w, b = [a.astype(np.float32) for a in arrays(1, (2, 3), (3, 4), (4,))]
    assert fused.linear(x, w, b, "tanh").dtype == np.float32
    assert fused.bernoulli_log_prob(x, np.ones_like(x)).dtype == np.float32
    with pytest.raises(TypeError):
        fused.bernoulli_log_prob(x, np.ones((2, 3)))
    with pytest.raises(TypeError):
        fused.linear(x, w.astype(np.float64), b)
    with pytest.raises(ValueError):
        fused.reparameterize_kl(x, x, np.ones((3, 2), np.float32))


def test_backward_twice_through_fused_ops_gives_the_same_gradient():
    x, w, b = arrays(2, (3, 4), (4, 5), (5,))
    weight = Tensor(w, requires_grad=True)
    logits = fused.linear(x, weight, b, "identity")
    loss = fused.bernoulli_log_prob(logits, (x[:, :1] > 0).repeat(5, axis=1).astype(float)).sum()
    loss.backward()
    first = weight.grad.copy()
    loss.backward()
    np.testing.assert_allclose(weight.grad, 2 * first, rtol=1e-12)


# -- at the extremes, on every backend ---------------------------------------------------------


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

"""Fused primitives equal the compositions of elementary primitives they replace."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minivae
from minivae import kernels
from minivae.engine.ops import fused
from minivae.engine.tensor import Tensor

ACTIVATIONS = ["identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus"]
COMPOSED = {
    "identity": lambda t: t,
    "relu": minivae.relu,
    "leaky_relu": lambda t: minivae.leaky_relu(t, 0.2),
    "tanh": minivae.tanh,
    "sigmoid": minivae.sigmoid,
    "softplus": minivae.softplus,
}


@pytest.fixture
def backend(every_backend):
    return every_backend


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


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_training_gives_the_same_model_on_every_backend(dtype, rtol):
    """Same seed, different kernels or none: the parameters after a few Adam steps agree to
    rounding."""
    from minivae.models import VAE
    from minivae.optim import Adam

    data = (np.random.default_rng(0).random((64, 30)) < 0.3).astype(dtype)

    def trained() -> np.ndarray:
        rng = np.random.default_rng(1)
        model = VAE(30, hidden=(16,), z_dim=4, activation="softplus", rng=rng, dtype=dtype)
        optimizer = Adam(model.parameters(), lr=1e-2)
        for _ in range(10):
            loss = -model.elbo(data, rng).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.flat_data.copy()

    results = {}
    for backend in kernels.available_backends():
        kernels.set_backend(backend)
        try:
            results[backend] = trained()
        finally:
            kernels.set_backend("auto")
    with kernels.composed():  # the readable compositions at the call sites, no kernel at all
        results["composed"] = trained()
    reference = results.pop("python")
    for backend, params in results.items():
        # float32 rounding differences grow through 10 Adam steps; the scale is the step size
        np.testing.assert_allclose(params, reference, rtol=rtol, atol=rtol * 1e-2,
                                   err_msg=backend)

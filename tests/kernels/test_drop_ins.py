"""Each fused kernel is a drop-in for the readable lines beside it at its call site.

``with kernels.composed():`` runs those readable lines (plain Tensor and NumPy code) instead
of the kernels.  Values and gradients must agree up to rounding: the kernel adds the same
terms in another order (and the C and numba loops sum one term at a time), so the tolerance
is a few ulps of the numbers involved, tighter in float64.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae import Tensor, kernels
from minivae.distributions import BernoulliLogits, DiagonalNormal
from minivae.models import VAE
from minivae.nn import HIDDEN_ACTIVATIONS, MLP, Linear
from minivae.optim import SGD, Adam

RTOL = {np.float32: 2e-5, np.float64: 1e-11}


def both_ways(run):
    """``run()`` with the kernels (the default) and with the readable compositions."""
    fused = run()
    with kernels.composed():
        assert not any(kernels.enabled(family) for family in kernels.FAMILIES)
        readable = run()
    return fused, readable


def assert_close(a, b, dtype, scale=1.0):
    np.testing.assert_allclose(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["identity", *HIDDEN_ACTIVATIONS])
def test_linear_layer_value_and_gradients(dtype, activation):
    rng = np.random.default_rng(0)
    layer = Linear(5, 4, rng, dtype)
    x = rng.standard_normal((3, 5)).astype(dtype)
    g = rng.standard_normal((3, 4)).astype(dtype)

    def run():
        inputs = Tensor(x, requires_grad=True)
        layer.weight.grad = layer.bias.grad = None
        y = layer(inputs, activation, 0.2)
        y.backward(g)
        return y.data, inputs.grad, layer.weight.grad.copy(), layer.bias.grad.copy()

    for fused, readable in zip(*both_ways(run)):
        assert fused.dtype == readable.dtype == dtype
        assert_close(fused, readable, dtype, scale=10)


@given(seed=st.integers(0, 2**16), soft=st.booleans())
def test_bernoulli_likelihood_value_and_gradient(seed, soft):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 5, (4, 7))
    x = rng.random((4, 7)) if soft else (rng.random((4, 7)) < 0.5).astype(np.float64)

    def run():
        l = Tensor(logits, requires_grad=True)
        value = BernoulliLogits(l, soft_targets=soft).log_prob(x)
        value.backward(np.arange(1.0, 5.0))
        return value.data, l.grad

    for fused, readable in zip(*both_ways(run)):
        assert_close(fused, readable, np.float64, scale=100)


@given(seed=st.integers(0, 2**16))
def test_reparameterized_draw_and_kl_value_and_gradients(seed):
    rng = np.random.default_rng(seed)
    loc, log_var = rng.standard_normal((3, 4)), rng.uniform(-4, 4, (3, 4))
    g_z, g_kl = rng.standard_normal((3, 4)), rng.standard_normal(3)

    def run():
        mu, lv = Tensor(loc, requires_grad=True), Tensor(log_var, requires_grad=True)
        z, kl = DiagonalNormal(mu, lv).rsample_and_kl(np.random.default_rng(seed))
        (z * g_z).sum().backward()
        (kl * g_kl).sum().backward()
        return z.data, kl.data, mu.grad, lv.grad

    for fused, readable in zip(*both_ways(run)):
        assert_close(fused, readable, np.float64, scale=100)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_vae_training_step_is_the_same_either_way(dtype):
    """ELBO, every parameter gradient, and the parameters after three Adam steps."""
    x = (np.random.default_rng(1).random((8, 12)) < 0.4).astype(dtype)

    def run():
        vae = VAE(12, hidden=(10,), z_dim=3, rng=np.random.default_rng(0), dtype=dtype)
        optimizer = Adam(vae.parameters(), lr=1e-2)
        noise = np.random.default_rng(2)
        elbos, grads = [], []
        for _ in range(3):
            elbo = vae.elbo(x, noise)
            optimizer.zero_grad()
            (-elbo.mean()).backward()
            elbos.append(elbo.data.copy())
            grads.append(vae.flat_grad.copy())
            optimizer.step()
        return np.concatenate(elbos), np.concatenate(grads), vae.flat_data.copy()

    fused, readable = both_ways(run)
    for a, b in zip(fused, readable):
        assert a.dtype == b.dtype == dtype
    assert_close(fused[0], readable[0], dtype, scale=1e3)  # ELBO: sums of 12 pixels' terms
    assert_close(fused[1], readable[1], dtype, scale=10)
    assert_close(fused[2], readable[2], dtype, scale=1)


@pytest.mark.parametrize("flat", [True, False])
def test_optimizer_updates_are_the_same_either_way(flat):
    def run():
        mlp = MLP([3, 4, 2], "tanh", np.random.default_rng(0), np.float64)
        if flat:
            mlp.flatten_parameters()
        gradients = np.random.default_rng(1)
        results = []
        for optimizer in (Adam(mlp.parameters(), lr=0.05), SGD(mlp.parameters(), 0.1, 0.9)):
            for _ in range(4):
                optimizer.zero_grad()
                for p in mlp.parameters():
                    p.grad += gradients.standard_normal(p.shape)
                optimizer.step()
            results.append(np.concatenate([p.data.ravel() for p in mlp.parameters()]))
        return results

    for fused, readable in zip(*both_ways(run)):
        assert_close(fused, readable, np.float64)

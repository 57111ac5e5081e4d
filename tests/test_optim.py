"""Optimizers against plain NumPy transcriptions of their update rules."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minivae.engine.tensor import Tensor
from minivae.nn import MLP
from minivae.optim import SGD, Adam


def adam_reference(theta, grads, lr, beta1, beta2, eps):
    """Algorithm 1 of Kingma & Ba (2015), written out literally."""
    theta = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


def sgd_reference(theta, grads, lr, momentum):
    theta, buffer = theta.copy(), None
    for g in grads:
        buffer = g.copy() if buffer is None else momentum * buffer + g
        theta = theta - lr * (buffer if momentum else g)
    return theta


def run(optimizer_factory, flat: bool, grads_per_step, seed=0):
    mlp = MLP([3, 4, 2], "tanh", np.random.default_rng(seed), np.float64)
    if flat:
        mlp.flatten_parameters()
    start = np.concatenate([p.data.ravel() for p in mlp.parameters()])
    optimizer = optimizer_factory(mlp.parameters())
    assert len(optimizer.groups) == (1 if flat else len(mlp.parameters()))
    for grad in grads_per_step:
        optimizer.zero_grad()
        offset = 0
        for p in mlp.parameters():
            p.grad += grad[offset:offset + p.size].reshape(p.shape)
            offset += p.size
        optimizer.step()
    return start, np.concatenate([p.data.ravel() for p in mlp.parameters()])


@given(seed=st.integers(0, 2**16), steps=st.integers(1, 20), flat=st.booleans(),
       lr=st.floats(1e-4, 1e-1), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999))
def test_adam_matches_numpy_transcription(seed, steps, flat, lr, beta1, beta2):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(26) * 10.0 ** rng.uniform(-3, 1) for _ in range(steps)]
    start, result = run(lambda p: Adam(p, lr=lr, betas=(beta1, beta2)), flat, grads)
    expected = adam_reference(start, grads, lr, beta1, beta2, 1e-8)
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@given(seed=st.integers(0, 2**16), steps=st.integers(1, 20), flat=st.booleans(),
       momentum=st.sampled_from([0.0, 0.5, 0.9]))
def test_sgd_momentum_matches_numpy_transcription(seed, steps, flat, momentum):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(26) for _ in range(steps)]
    start, result = run(lambda p: SGD(p, lr=0.05, momentum=momentum), flat, grads)
    np.testing.assert_allclose(result, sgd_reference(start, grads, 0.05, momentum), rtol=1e-12)


def test_adam_first_step_moves_each_coordinate_by_lr():
    # With bias correction the first update is lr · g/(|g| + ε') = ±lr for every coordinate.
    p = Tensor(np.zeros(5), requires_grad=True)
    p.grad = np.array([3.0, -2.0, 0.5, -1e-3, 7.0])
    Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, -0.1 * np.sign([3.0, -2.0, 0.5, -1e-3, 7.0]), rtol=1e-4)


def test_adam_keeps_float32():
    p = Tensor(np.ones(4, np.float32), requires_grad=True)
    p.grad = np.ones(4, np.float32)
    optimizer = Adam([p])
    optimizer.step()
    assert p.data.dtype == np.float32 and optimizer.m[0].dtype == np.float32


def test_adam_state_dict_round_trip():
    p = Tensor(np.zeros(3), requires_grad=True)
    p.grad = np.array([1.0, 2.0, 3.0])
    a = Adam([p])
    a.step()
    q = Tensor(np.zeros(3), requires_grad=True)
    b = Adam([q])
    b.load_state_dict(a.state_dict())
    assert b.t == 1
    np.testing.assert_array_equal(b.m[0], a.m[0])
    with pytest.raises(ValueError):
        b.load_state_dict({"t": np.array(1)})


@pytest.mark.parametrize("change, message", [
    ({"t": np.array(-1)}, "Adam state t must be an integer ≥ 0, got -1"),
    ({"t": np.array(2.0)}, "Adam state t must be an integer ≥ 0, got 2.0"),
    ({"t": np.array([1, 2])}, "Adam state t must be an integer ≥ 0"),
    ({"t": np.array(True)}, "Adam state t must be an integer ≥ 0"),
    ({"m.0": np.array([0.0, np.nan, 0.0])}, "Adam state m.0 must be finite, got"),
    ({"v.0": np.array([0.0, -1e-30, 0.0])}, "Adam state v.0 must be finite and ≥ 0, got"),
    ({"v.0": np.array([np.inf, 0.0, 0.0])}, "Adam state v.0 must be finite and ≥ 0, got"),
])
def test_adam_refuses_a_state_no_run_can_reach(change, message):
    """A step count of −1 would make the first bias correction 1 − β⁰ = 0 (a division by
    zero), a negative v the square root of a negative number: refused, the state untouched."""
    p = Tensor(np.zeros(3), requires_grad=True)
    p.grad = np.array([1.0, 2.0, 3.0])
    source = Adam([p])
    source.step()
    target = Adam([Tensor(np.zeros(3), requires_grad=True)])
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        target.load_state_dict({**source.state_dict(), **change})
    assert target.t == 0


@pytest.mark.parametrize("factory", [
    lambda p: Adam(p, lr=0.0), lambda p: Adam(p, lr=float("nan")), lambda p: SGD(p, lr=-1.0),
    lambda p: SGD(p, momentum=1.0), lambda p: Adam(p, betas=(1.0, 0.9)), lambda p: Adam([]),
])
def test_optimizers_reject_bad_hyperparameters(factory):
    p = Tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError):
        factory([p])


def test_optimizers_reject_non_parameters():
    with pytest.raises(TypeError):
        Adam([Tensor(np.zeros(2))])


def test_a_parameter_the_loss_ignores_gets_a_zero_gradient_after_zero_grad():
    """Cleared gradients are materialized before the update: the unused parameter sees g = 0."""
    used = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    unused = Tensor(np.array([0.5]), requires_grad=True)
    optimizer = SGD([used, unused], lr=0.1, momentum=0.0)
    (used * used + unused * unused).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    (used * used).sum().backward()  # unused keeps its stale gradient, marked cleared
    before = unused.data.copy()
    optimizer.step()
    np.testing.assert_array_equal(unused.data, before)
    np.testing.assert_array_equal(unused.grad, [0.0])

"""Module, Linear and MLP: parameter discovery, the flat buffer, initialization, state dicts."""
import numpy as np
import pytest

import minivae
from minivae.engine.tensor import Tensor
from minivae.nn import MLP, Linear, Module


def make_mlp(dtype=np.float64, seed=0):
    return MLP([5, 7, 3], "tanh", np.random.default_rng(seed), dtype)


def test_named_parameters_in_assignment_order():
    names = [name for name, _ in make_mlp().named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]


def test_flatten_makes_views_of_one_buffer_and_keeps_values():
    mlp = make_mlp()
    before = {name: p.data.copy() for name, p in mlp.named_parameters()}
    mlp.flatten_parameters()
    params = mlp.parameters()
    assert mlp.flat_data.size == sum(p.size for p in params)
    for name, p in mlp.named_parameters():
        np.testing.assert_array_equal(p.data, before[name])
        assert np.shares_memory(p.data, mlp.flat_data)
        assert np.shares_memory(p.grad, mlp.flat_grad)
    # Writing through the flat buffer changes the parameters: they are views, not copies.
    mlp.flat_data[:] = 0.5
    assert all(np.all(p.data == 0.5) for p in params)


def test_backward_accumulates_into_the_flat_gradient():
    mlp = make_mlp()
    mlp.flatten_parameters()
    x = np.random.default_rng(1).standard_normal((4, 5))
    mlp(Tensor(x)).sum().backward()
    first = mlp.flat_grad.copy()
    assert np.any(first != 0)
    mlp(Tensor(x)).sum().backward()
    np.testing.assert_allclose(mlp.flat_grad, 2 * first)
    mlp.zero_grad()
    assert not np.any(mlp.flat_grad)


def test_linear_computes_affine_map():
    layer = Linear(4, 3, np.random.default_rng(0), np.float64)
    x = np.random.default_rng(1).standard_normal((6, 4))
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data + layer.bias.data)


def test_linear_initialization_is_uniform_with_documented_bound():
    fan_in = 400
    layer = Linear(fan_in, 300, np.random.default_rng(0), np.float64)
    bound = 1 / np.sqrt(fan_in)
    w = layer.weight.data.ravel()
    assert np.all(np.abs(w) <= bound)
    # Var U(-a, a) = a²/3; the sample variance of n draws has standard error ≈ √(2/n)·var
    # (for the uniform, (μ₄ − σ⁴)/n with μ₄ = a⁴/5 gives √(4/5/n)·var; 5 standard errors).
    var = bound**2 / 3
    assert abs(w.var() - var) < 5 * np.sqrt(0.8 / w.size) * var


def test_mlp_input_gradient_passes_gradcheck():
    mlp = make_mlp()
    x = np.random.default_rng(2).standard_normal((3, 5))
    assert minivae.gradcheck(lambda t: mlp(t), x)


def test_mlp_parameter_gradient_matches_central_differences(flat_gradient_check):
    mlp = make_mlp()
    mlp.flatten_parameters()
    x = Tensor(np.random.default_rng(2).standard_normal((3, 5)))
    u = np.random.default_rng(3).standard_normal((3, 3))
    mlp(x).backward(u)
    directions = np.random.default_rng(4).standard_normal((5, mlp.flat_data.size))
    flat_gradient_check(mlp, lambda: float(np.sum(u * mlp(x).data)), mlp.flat_grad.copy(),
                        directions, rtol=1e-6, atol=1e-8)


def test_float32_model_keeps_float32():
    mlp = make_mlp(np.float32)
    mlp.flatten_parameters()
    out = mlp(Tensor(np.ones((2, 5), np.float32)))
    assert out.dtype == np.float32
    out.sum().backward()
    assert mlp.flat_grad.dtype == np.float32


def test_state_dict_round_trip_and_validation():
    source, target = make_mlp(seed=0), make_mlp(seed=1)
    target.flatten_parameters()
    target.load_state_dict(source.state_dict())
    for (_, a), (_, b) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert np.shares_memory(target.parameters()[0].data, target.flat_data)  # still views

    state = source.state_dict()
    with pytest.raises(ValueError, match="missing"):
        target.load_state_dict({k: v for k, v in state.items() if k != "layers.0.bias"})
    with pytest.raises(ValueError, match="layers.0.weight"):
        target.load_state_dict({**state, "layers.0.weight": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="dtype"):
        wrong_dtype = state["layers.1.bias"].astype(np.float32)
        target.load_state_dict({**state, "layers.1.bias": wrong_dtype})


def test_state_dict_returns_copies():
    mlp = make_mlp()
    state = mlp.state_dict()
    state["layers.0.weight"][:] = 123.0
    assert not np.any(mlp.layers[0].weight.data == 123.0)


@pytest.mark.parametrize("kwargs, error", [
    (dict(sizes=[5], activation="tanh"), ValueError),
    (dict(sizes=[5, 3], activation="swish"), ValueError),
    (dict(sizes=[5, 0], activation="tanh"), ValueError),
    (dict(sizes=[5, 3], activation="tanh", dtype=np.float16), TypeError),
])
def test_mlp_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        MLP(rng=np.random.default_rng(0), **{"dtype": np.float32, **kwargs})


def test_linear_requires_a_generator():
    with pytest.raises(TypeError, match="rng"):
        Linear(3, 2, rng=0)


def test_module_without_parameters_cannot_be_flattened():
    with pytest.raises(ValueError):
        Module().flatten_parameters()


@pytest.mark.parametrize("scheme", ["glorot", "he"])
def test_glorot_and_he_draw_weights_with_their_moments(scheme):
    """Each layer's weights have mean 0, the scheme's variance (2/(fan_in + fan_out) or
    2/fan_in) and its kurtosis (9/5 of a uniform, 3 of a normal), within 5 standard errors of
    the sample moments; biases are 0, and the flat buffer still holds the parameters."""
    from minivae.nn import initialize

    model = MLP([300, 200, 50], "tanh", np.random.default_rng(0), np.float64)
    model.flatten_parameters()
    initialize(model, scheme, np.random.default_rng(1))
    for layer in model.layers:
        w = layer.weight.data.ravel()
        fan_in, fan_out = layer.weight.shape
        variance = 2 / (fan_in + fan_out) if scheme == "glorot" else 2 / fan_in
        kurtosis = 9 / 5 if scheme == "glorot" else 3.0
        n = w.size
        assert abs(w.mean()) < 5 * np.sqrt(variance / n)
        # Var(w²) = E w⁴ − (E w²)² = (kurtosis − 1) σ⁴
        assert abs(np.mean(w**2) - variance) < 5 * np.sqrt((kurtosis - 1) * variance**2 / n)
        assert abs(np.mean(w**4) / variance**2 - kurtosis) < 0.15 * kurtosis
        if scheme == "glorot":
            assert np.abs(w).max() <= np.sqrt(6 / (fan_in + fan_out))
        assert np.all(layer.bias.data == 0)
        assert layer.weight.data.base is model.flat_data


def test_default_initialization_leaves_the_weights_and_bad_schemes_are_named():
    from minivae.nn import initialize

    model = MLP([5, 4, 3], "tanh", np.random.default_rng(0))
    before = model.state_dict()
    initialize(model, "default", np.random.default_rng(1))
    assert all(np.array_equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="init must be one of"):
        initialize(model, "xavier", np.random.default_rng(1))

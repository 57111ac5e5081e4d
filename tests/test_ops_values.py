"""Forward values of the primitives against NumPy/SciPy, and numerical stability at extremes."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special
from hypothesis import given

import minivae as mv
from minivae import Tensor

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


def values(shape, low: float = -5.0, high: float = 5.0):
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float64, shape, elements=elements)


# -- element-wise ------------------------------------------------------------------------------

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


@pytest.mark.parametrize(
    "name, reference",
    [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)],
)
@given(data=st.data())
def test_binary_values_match_numpy(name, reference, data):
    shape_a, shape_b = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)
    ).input_shapes
    a = data.draw(values(shape_a))
    b = data.draw(values(shape_b, 0.5, 5.0))
    out = getattr(mv, name)(Tensor(a), Tensor(b))
    np.testing.assert_array_equal(out.data, reference(a, b))


@given(data=st.data())
def test_pow_values_match_numpy(data):
    x = data.draw(values(data.draw(small_shapes), 0.1, 5.0))
    exponent = data.draw(st.one_of(st.integers(-3, 4), st.floats(-3, 3)))
    np.testing.assert_allclose(mv.pow(Tensor(x), exponent).data, np.power(x, float(exponent)))


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,)),
     ((4,), (4,))],
)
def test_matmul_values_match_explicit_sums(shape_a, shape_b, rng):
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    # Promote 1-D operands the NumPy way, sum over the shared axis with broadcasting, then drop
    # the promoted axes again.
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    expected = (a2[..., :, :, None] * b2[..., None, :, :]).sum(axis=-2)
    if a.ndim == 1:
        expected = expected[..., 0, :]
    if b.ndim == 1:
        expected = expected[..., 0]
    out = mv.matmul(Tensor(a), Tensor(b))
    assert out.shape == expected.shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


# -- reductions --------------------------------------------------------------------------------

REDUCTION_REFERENCES = {
    "sum": (mv.sum, np.sum),
    "mean": (mv.mean, np.mean),
    "max": (mv.max, np.max),
    "logsumexp": (mv.logsumexp, scipy.special.logsumexp),
}


@pytest.mark.parametrize("name", sorted(REDUCTION_REFERENCES))
@given(data=st.data())
def test_reduction_values_match_reference(name, data):
    op, reference = REDUCTION_REFERENCES[name]
    shape = data.draw(small_shapes)
    ndim = len(shape)
    axis_options = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        axis_options.append(st.integers(-ndim, ndim - 1))
    axis = data.draw(st.one_of(axis_options))
    keepdims = data.draw(st.booleans())
    x = data.draw(values(shape))
    out = op(Tensor(x), axis=axis, keepdims=keepdims)
    # NumPy's shape rule; SciPy's logsumexp gives a 0-d input with keepdims=True one axis more.
    expected_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
    expected = np.reshape(reference(x, axis=axis, keepdims=keepdims), expected_shape)
    assert out.shape == expected_shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


# -- shape ops ---------------------------------------------------------------------------------


def test_shape_op_values_match_numpy(rng):
    x = rng.standard_normal((2, 3, 4))
    y = rng.standard_normal((2, 3, 4))
    t, u = Tensor(x), Tensor(y)
    np.testing.assert_array_equal(mv.reshape(t, 4, -1).data, x.reshape(4, 6))
    np.testing.assert_array_equal(mv.reshape(t, (6, 4)).data, x.reshape(6, 4))
    np.testing.assert_array_equal(mv.transpose(t).data, x.T)
    np.testing.assert_array_equal(mv.transpose(t, 1, 2, 0).data, x.transpose(1, 2, 0))
    np.testing.assert_array_equal(mv.transpose(t, (-1, 0, 1)).data, x.transpose(2, 0, 1))
    np.testing.assert_array_equal(t.T.data, x.T)
    for index in [1, -1, (slice(None), 0), (Ellipsis, slice(None, None, -2)), np.array([1, 1, 0]),
                  (np.array([0, 1]), slice(1, None), np.array([3, 3])), x > 0, (None, 1)]:
        np.testing.assert_array_equal(mv.getitem(t, index).data, x[index])
        np.testing.assert_array_equal(t[index].data, x[index])
    for axis in [0, 1, -1]:
        np.testing.assert_array_equal(
            mv.concatenate([t, u], axis=axis).data, np.concatenate([x, y], axis=axis)
        )
    for axis in [0, 2, 3, -1, -4]:
        np.testing.assert_array_equal(mv.stack([t, u], axis=axis).data, np.stack([x, y], axis=axis))
    mask = rng.random((3, 1)) > 0.5
    np.testing.assert_array_equal(mv.where(mask, t, u).data, np.where(mask, x, y))
    np.testing.assert_array_equal(mv.where(mask, t, 0.0).data, np.where(mask, x, 0.0))


def test_where_rejects_non_boolean_condition():
    with pytest.raises(TypeError, match="condition"):
        mv.where(np.array([1, 0]), Tensor([1.0, 2.0]), Tensor([3.0, 4.0]))


# -- stability at extreme inputs ---------------------------------------------------------------


def _value_and_grad(op, x: np.ndarray):
    t = Tensor(x, requires_grad=True)
    out = op(t)
    out.sum().backward()
    return out.data, t.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_and_sigmoid_are_stable_for_large_inputs(dtype):
    x = np.concatenate([np.linspace(-1e4, 1e4, 2001), [-1e4, -710.0, -100.0, 0.0, 100.0, 710.0]])
    x = x.astype(dtype)
    # Any overflow, division by zero or invalid operation fails the test (underflow to 0 is
    # the correct answer far in the tails).
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        softplus, softplus_grad = _value_and_grad(mv.softplus, x)
        sigmoid, sigmoid_grad = _value_and_grad(mv.sigmoid, x)

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
        tail, _ = _value_and_grad(mv.softplus, very_negative)
        tail_sigmoid, _ = _value_and_grad(mv.sigmoid, very_negative)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(tail, np.exp(very_negative), rtol=rtol)
    np.testing.assert_allclose(tail_sigmoid, np.exp(very_negative), rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_is_stable(dtype):
    inf = np.inf
    x = np.array(
        [
            [1e4, 1e4 - 1.0, -1e4],  # exp(1e4) overflows: the shift by the max is needed
            [-1e4, -1e4 - 2.0, -1e4],  # exp(-1e4) underflows to 0: log(0) would be -inf
            [0.0, -inf, 1.0],  # a -inf entry contributes nothing
            [-inf, -inf, -inf],  # an empty sum: value -inf, gradient zero (not NaN)
        ],
        dtype=dtype,
    )
    t = Tensor(x, requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        out = mv.logsumexp(t, axis=1)
        out.backward(np.ones(4, dtype=dtype))
    assert out.dtype == dtype and t.grad.dtype == dtype

    expected = np.array([
        1e4 + np.log1p(np.exp(-1.0)),
        -1e4 + np.log(2.0 + np.exp(-2.0)),
        np.log1p(np.e),
        -inf,
    ])
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out.data, expected, rtol=rtol)
    np.testing.assert_allclose(out.data, scipy.special.logsumexp(x.astype(np.float64), axis=1),
                               rtol=rtol)

    assert not np.any(np.isnan(t.grad))
    np.testing.assert_array_equal(t.grad[3], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(t.grad[2, 1], 0.0)
    # the gradient of each finite row is a softmax: non-negative, summing to one
    np.testing.assert_allclose(t.grad[:3].sum(axis=1), 1.0, rtol=1e-6)
    finite_rows = x[:3].astype(np.float64)
    shifted = np.exp(finite_rows - finite_rows.max(axis=1, keepdims=True))
    softmax = shifted / shifted.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t.grad[:3], softmax, rtol=rtol, atol=1e-30)


def test_logsumexp_of_all_negative_infinity_over_everything():
    t = Tensor(np.full((2, 2), -np.inf), requires_grad=True)
    out = mv.logsumexp(t)
    out.backward()
    assert out.item() == -np.inf
    np.testing.assert_array_equal(t.grad, np.zeros((2, 2)))


# -- subgradients at kinks ---------------------------------------------------------------------


def test_max_ties_split_the_gradient_evenly():
    x = Tensor(np.array([[2.0, 2.0, 2.0], [1.0, 5.0, 5.0]]), requires_grad=True)
    mv.max(x, axis=1).backward(np.array([3.0, 1.0]))
    np.testing.assert_allclose(x.grad, [[1.0, 1.0, 1.0], [0.0, 0.5, 0.5]], rtol=1e-15)

    y = Tensor(np.array([1.0, 3.0, 3.0, -2.0]), requires_grad=True)
    mv.max(y).backward()
    np.testing.assert_allclose(y.grad, [0.0, 0.5, 0.5, 0.0], rtol=1e-15)


@given(
    x=values((3, 4), -3.0, 3.0),
    tied=hnp.arrays(np.bool_, (3, 4)),
    keepdims=st.booleans(),
)
def test_max_gradient_is_shared_by_all_maximizers(x, tied, keepdims):
    # Raise a random subset of each column to a common top value above every other entry.
    tied[0] = True  # every column has at least one maximizer
    x = np.where(tied, 4.0, x)
    t = Tensor(x, requires_grad=True)
    upstream = np.arange(1.0, 5.0).reshape((1, 4) if keepdims else (4,))
    mv.max(t, axis=0, keepdims=keepdims).backward(upstream)
    expected = tied * (upstream.reshape(1, 4) / tied.sum(axis=0, keepdims=True))
    np.testing.assert_allclose(t.grad, expected, rtol=1e-14)
    np.testing.assert_allclose(t.grad.sum(axis=0), upstream.ravel(), rtol=1e-14)


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

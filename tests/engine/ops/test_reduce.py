"""sum, mean, max and logsumexp: values against NumPy/SciPy, VJPs against central
differences, output shapes, ties of the max, and logsumexp at the edges of the float range:
rows of ±1e4 and ±∞, where the value and the (sub)gradient are exact."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special
from hypothesis import given

import minivae as mv
from minivae import Tensor, gradcheck
from tests.engine.ops.helpers import DTYPES, finite, small_shapes, value_and_grad, values

# -- values ------------------------------------------------------------------------------------

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
    x = data.draw(values(shape, -5.0, 5.0))
    out = op(Tensor(x), axis=axis, keepdims=keepdims)
    # NumPy's shape rule; SciPy's logsumexp gives a 0-d input with keepdims=True one axis more.
    expected_shape = np.sum(x, axis=axis, keepdims=keepdims).shape
    expected = np.reshape(reference(x, axis=axis, keepdims=keepdims), expected_shape)
    assert out.shape == expected_shape
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


# -- gradients ---------------------------------------------------------------------------------


def distinct_values(draw, shape) -> np.ndarray:
    """Entries at least 0.4 apart, so that no max is tied or nearly tied."""
    n = int(np.prod(shape, dtype=int))
    ranks = np.array(draw(st.permutations(range(n))), dtype=np.float64)
    jitter = draw(values((n,), 0.0, 0.1))
    return (0.5 * ranks + jitter - 0.25 * n).reshape(shape)


def axis_arguments(ndim: int):
    """Every form ``axis`` may take: None, an int (negative too) or a tuple of distinct axes."""
    options = [st.none(), hnp.valid_tuple_axes(ndim)]
    if ndim:
        options.append(st.integers(-ndim, ndim - 1))
    return st.one_of(options)


REDUCTIONS = {"sum": mv.sum, "mean": mv.mean, "max": mv.max, "logsumexp": mv.logsumexp}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(data=st.data())
def test_reduction_gradients(name, data):
    shape = data.draw(small_shapes, label="shape")
    axis = data.draw(axis_arguments(len(shape)), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    if name == "max":
        x = distinct_values(data.draw, shape)
    else:
        x = data.draw(values(shape), label="x")
    reduce = REDUCTIONS[name]
    assert gradcheck(lambda t: reduce(t, axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduction_output_shapes_follow_numpy(name, keepdims, rng):
    x = rng.standard_normal((2, 3, 4))
    for axis in [None, 0, -1, (0, 2), (-1, 0), ()]:
        out = REDUCTIONS[name](mv.Tensor(x), axis=axis, keepdims=keepdims)
        assert out.shape == np.sum(x, axis=axis, keepdims=keepdims).shape


# -- ties of the max ---------------------------------------------------------------------------


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


# -- logsumexp at the extremes -----------------------------------------------------------------


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_extreme_rows_is_finite_with_softmax_gradient(dtype):
    rows = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [50.0, -50.0, 1e4]], dtype=dtype)
    value, grad = value_and_grad(lambda t: mv.logsumexp(t, axis=1), rows)
    assert finite(value) and finite(grad)
    np.testing.assert_allclose(value, [1e4, -1e4 + np.log(3), 1e4], rtol=1e-6)
    np.testing.assert_allclose(grad, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]], atol=1e-6)


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

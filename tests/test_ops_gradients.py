"""Every primitive's VJP against central differences (minivae.engine.gradcheck), on random shapes.

Inputs are kept inside each op's domain and away from its kinks, where a finite difference
straddles two branches and measures neither one-sided derivative.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minivae as mv
from minivae import gradcheck

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def values(shape, low: float = -3.0, high: float = 3.0):
    """float64 arrays of ``shape`` with entries in [low, high]."""
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return hnp.arrays(np.float64, shape, elements=elements)


def away_from_zero(x: np.ndarray, margin: float) -> np.ndarray:
    """Push every entry at least ``margin`` away from 0 (0 itself goes to +margin)."""
    return np.where(x >= 0, x + margin, x - margin)


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


# -- arithmetic --------------------------------------------------------------------------------

BINARY_OPS = {"add": mv.add, "sub": mv.sub, "mul": mv.mul, "div": mv.div}


@pytest.mark.parametrize("name", sorted(BINARY_OPS))
@given(data=st.data())
def test_binary_op_gradients(name, data):
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)
    ).input_shapes
    a = data.draw(values(shapes[0]), label="a")
    b = data.draw(values(shapes[1]), label="b")
    if name == "div":
        b = away_from_zero(b, 0.5)
    assert gradcheck(BINARY_OPS[name], a, b)


@pytest.mark.parametrize("constant_side", ["left", "right"])
@given(x=values((2, 3)), constant=st.floats(-3, 3))
def test_binary_op_gradients_with_python_scalars(constant_side, x, constant):
    for op in BINARY_OPS.values():
        if constant_side == "left":
            if op is mv.div:
                x = away_from_zero(x, 0.5)
            assert gradcheck(lambda t, op=op, c=constant: op(c, t), x)
        else:
            if op is mv.div:
                constant = float(away_from_zero(np.array(constant), 0.5))
            assert gradcheck(lambda t, op=op, c=constant: op(t, c), x)


@st.composite
def matmul_operands(draw, kind: str):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    batch_a, batch_b = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)
    ).input_shapes
    shape_a, shape_b = {
        "2d": ((n, k), (k, m)),
        "batched": (batch_a + (n, k), batch_b + (k, m)),
        "1d_left": ((k,), batch_b + (k, m)),
        "1d_right": (batch_a + (n, k), (k,)),
        "1d_both": ((k,), (k,)),
    }[kind]
    return draw(values(shape_a), label="a"), draw(values(shape_b), label="b")


@pytest.mark.parametrize("kind", ["2d", "batched", "1d_left", "1d_right", "1d_both"])
@given(data=st.data())
def test_matmul_gradients(kind, data):
    a, b = data.draw(matmul_operands(kind))
    assert gradcheck(mv.matmul, a, b)


# -- element-wise ------------------------------------------------------------------------------

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


@given(shape=small_shapes, data=st.data())
def test_pow_gradients_integer_exponent(shape, data):
    exponent = data.draw(st.integers(-3, 4), label="exponent")
    x = data.draw(values(shape), label="x")
    if exponent < 0:
        x = away_from_zero(x, 0.5)  # a negative power has a pole at 0
    assert gradcheck(lambda t: mv.pow(t, exponent), x)
    assert gradcheck(lambda t: t ** float(exponent), x)


@given(shape=small_shapes, data=st.data())
def test_pow_gradients_real_exponent(shape, data):
    exponent = data.draw(st.floats(-2.5, 2.5), label="exponent")
    base = 0.5 + np.abs(data.draw(values(shape), label="x"))  # a real power needs a base > 0
    assert gradcheck(lambda t: mv.pow(t, exponent), base)


def test_pow_zero_exponent_has_zero_gradient_at_zero():
    x = mv.Tensor(np.array([0.0, 1.0, -2.0]), requires_grad=True)
    mv.pow(x, 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


# -- reductions --------------------------------------------------------------------------------

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


# -- shape ops ---------------------------------------------------------------------------------


def _reshape_case(data):
    shape = data.draw(small_shapes, label="shape")
    size = int(np.prod(shape, dtype=int))
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    new_shape = data.draw(
        st.sampled_from(
            [(size,), (-1,), (1, size), (size, 1, 1), tuple(reversed(shape)), ()]
            + [(d, -1) for d in divisors]
        ).filter(lambda s: s != () or size == 1),
        label="new_shape",
    )
    return lambda t: mv.reshape(t, new_shape), [data.draw(values(shape), label="x")]


def _transpose_case(data):
    shape = data.draw(small_shapes, label="shape")
    ndim = len(shape)
    permutation = data.draw(st.permutations(range(ndim)), label="permutation")
    negative = data.draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim), label="negative")
    axes = tuple(a - ndim if neg else a for a, neg in zip(permutation, negative))
    x = data.draw(values(shape), label="x")
    if data.draw(st.booleans(), label="default_axes"):
        return (lambda t: mv.transpose(t)), [x]
    return (lambda t: mv.transpose(t, axes)), [x]


def _getitem_basic_case(data):
    shape = data.draw(nonscalar_shapes, label="shape")
    index = data.draw(
        hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="index"
    )
    return (lambda t: t[index]), [data.draw(values(shape), label="x")]


def _getitem_integer_array_case(data):
    shape = data.draw(nonscalar_shapes, label="shape")
    n = shape[0]
    picks = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6), label="picks")
    # Repeat the first pick so that at least one entry is gathered twice and must accumulate.
    rows = np.array(picks + picks[:1])
    options = [rows, (rows,), list(rows)]
    if len(shape) > 1:
        options.append((rows, slice(None, None, -1)))
    index = data.draw(st.sampled_from(options), label="index")
    if len(shape) > 1 and data.draw(st.booleans(), label="several_arrays"):
        index = data.draw(hnp.integer_array_indices(shape), label="index")
    return (lambda t: t[index]), [data.draw(values(shape), label="x")]


def _getitem_boolean_mask_case(data):
    shape = data.draw(nonscalar_shapes, label="shape")
    leading_only = data.draw(st.booleans(), label="leading_only")
    mask = data.draw(hnp.arrays(np.bool_, shape[:1] if leading_only else shape), label="mask")
    return (lambda t: t[mask]), [data.draw(values(shape), label="x")]


def _concatenate_case(data):
    shape = data.draw(nonscalar_shapes, label="shape")
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3), label="sizes")
    inputs = []
    for size in sizes:
        part_shape = list(shape)
        part_shape[axis] = size
        inputs.append(data.draw(values(tuple(part_shape)), label="part"))
    return (lambda *ts: mv.concatenate(ts, axis=axis)), inputs


def _stack_case(data):
    shape = data.draw(small_shapes, label="shape")
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    count = data.draw(st.integers(1, 3), label="count")
    inputs = [data.draw(values(shape), label="part") for _ in range(count)]
    return (lambda *ts: mv.stack(ts, axis=axis)), inputs


def _where_case(data):
    mask_shape, a_shape, b_shape = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=4),
        label="shapes",
    ).input_shapes
    mask = data.draw(hnp.arrays(np.bool_, mask_shape), label="mask")
    a = data.draw(values(a_shape), label="a")
    b = data.draw(values(b_shape), label="b")
    return (lambda s, t: mv.where(mask, s, t)), [a, b]


SHAPE_CASES = {
    "reshape": _reshape_case,
    "transpose": _transpose_case,
    "getitem_basic": _getitem_basic_case,
    "getitem_integer_array": _getitem_integer_array_case,
    "getitem_boolean_mask": _getitem_boolean_mask_case,
    "concatenate": _concatenate_case,
    "stack": _stack_case,
    "where": _where_case,
}


@pytest.mark.parametrize("name", sorted(SHAPE_CASES))
@given(data=st.data())
def test_shape_op_gradients(name, data):
    f, inputs = SHAPE_CASES[name](data)
    assert gradcheck(f, *inputs)


def test_getitem_repeated_indices_accumulate():
    x = mv.Tensor(np.arange(5.0), requires_grad=True)
    picks = np.array([0, 0, 3, 0, -1, 4])
    x[picks].sum().backward()
    np.testing.assert_array_equal(x.grad, np.bincount(picks % 5, minlength=5))


def test_getitem_repeated_index_pairs_accumulate():
    x = mv.Tensor(np.zeros((3, 4)), requires_grad=True)
    rows, cols = np.array([1, 1, 2, 1]), np.array([3, 3, 0, 3])
    upstream = np.array([1.0, 10.0, 100.0, 1000.0])
    x[rows, cols].backward(upstream)
    expected = np.zeros((3, 4))
    expected[1, 3], expected[2, 0] = 1011.0, 100.0
    np.testing.assert_array_equal(x.grad, expected)


def test_transpose_negative_axes_gradient_has_input_shape():
    x = mv.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    upstream = np.arange(6.0).reshape(3, 2) * 10
    mv.transpose(x, -1, 0).backward(upstream)
    np.testing.assert_array_equal(x.grad, upstream.T)

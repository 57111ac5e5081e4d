"""reshape, transpose, getitem, concatenate, stack and where: values against NumPy, VJPs
against central differences, and indexing with repeated entries (their gradients add)."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minivae as mv
from minivae import Tensor, gradcheck
from tests.engine.ops.helpers import small_shapes, values

# -- values ------------------------------------------------------------------------------------


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


# -- gradients ---------------------------------------------------------------------------------

nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


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

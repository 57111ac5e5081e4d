"""How operands meet: broadcasting and its adjoint (unbroadcast), Python scalars, and the
rule that float32 and float64 never mix."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minivae as mv
from minivae import Tensor, unbroadcast

# -- unbroadcast -------------------------------------------------------------------------------


@st.composite
def shape_and_broadcast_target(draw):
    """A target shape and a shape that NumPy broadcasts to exactly that target."""
    target = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3))
    n_dropped = draw(st.integers(0, len(target)))
    kept = target[n_dropped:]
    squeezed = draw(st.lists(st.booleans(), min_size=len(kept), max_size=len(kept)))
    shape = tuple(1 if squeeze else n for n, squeeze in zip(kept, squeezed))
    return shape, target


@given(shapes=shape_and_broadcast_target(), seed=st.integers(0, 2**32 - 1))
def test_unbroadcast_matches_sum_over_copies(shapes, seed):
    shape, target = shapes
    rng = np.random.default_rng(seed)
    grad = rng.standard_normal(target)

    # Each output entry is a copy of the input entry found by dropping the prepended axes and
    # using index 0 along every axis where the input had size 1; add each copy's gradient there.
    expected = np.zeros(shape)
    n_prepended = len(target) - len(shape)
    for out_index in np.ndindex(target):
        in_index = tuple(
            0 if n == 1 else i for i, n in zip(out_index[n_prepended:], shape)
        )
        expected[in_index] += grad[out_index]

    result = unbroadcast(grad, shape)
    assert result.shape == shape
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-12)

    # unbroadcast is the adjoint of broadcasting: <unbroadcast(G), x> = <G, broadcast_to(x)>
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(
        np.sum(result * x), np.sum(grad * np.broadcast_to(x, target)), rtol=1e-10, atol=1e-10
    )


# -- dtypes of the operands --------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        lambda x: x * 2.0,
        lambda x: 2.0 * x,
        lambda x: x + 1,
        lambda x: 1 - x,
        lambda x: x / 3.0,
        lambda x: 3.0 / x,
        lambda x: x**2.0,
        lambda x: mv.where(np.array([True, False]), x, 0.0),
        lambda x: mv.concatenate([x, [1.0]]),
    ],
)
def test_python_scalars_do_not_upcast_float32(expression):
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    out = expression(x)
    assert out.dtype == np.float32
    out.backward(np.ones_like(out.data))
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize(
    "combine",
    [
        mv.add,
        mv.mul,
        mv.div,
        lambda a, b: mv.matmul(a, b),
        lambda a, b: mv.where(np.array([True, False]), a, b),
        lambda a, b: mv.concatenate([a, b]),
        lambda a, b: mv.stack([a, b]),
    ],
)
def test_mixing_float32_and_float64_raises(combine):
    single = Tensor(np.array([1.0, 2.0], dtype=np.float32))
    double = Tensor(np.array([3.0, 4.0], dtype=np.float64))
    with pytest.raises(TypeError, match="float32"):
        combine(single, double)
    with pytest.raises(TypeError, match="float32"):
        combine(double, single)


def test_float32_tensor_with_float64_array_raises():
    single = Tensor(np.array([1.0, 2.0], dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        single + np.array([1.0, 2.0])

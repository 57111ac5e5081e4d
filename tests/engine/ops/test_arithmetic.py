"""add, sub, mul, div, pow and matmul: values against NumPy, VJPs against central
differences, and an exact gradient where the terms of a naive one overflow."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minivae as mv
from minivae import Tensor, gradcheck
from tests.engine.ops.helpers import DTYPES, away_from_zero, small_shapes, values

# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, reference",
    [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)],
)
@given(data=st.data())
def test_binary_values_match_numpy(name, reference, data):
    shape_a, shape_b = data.draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)
    ).input_shapes
    a = data.draw(values(shape_a, -5.0, 5.0))
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


# -- gradients ---------------------------------------------------------------------------------

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


# -- at the extremes ---------------------------------------------------------------------------

# the extreme inputs overflow on purpose (IEEE ∞), which NumPy reports
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_division_by_a_tiny_broadcast_divisor_has_an_exact_gradient(dtype):
    """d/db Σ_i a_i/b = −(Σ_i a_i)/b², which is 0 when the a_i cancel, even though each term
    a_i/b² overflows for b = 1e-30 (summing the overflowed terms would give ∞ − ∞ = NaN)."""
    largest = np.finfo(dtype).max
    for numerator in ([1.0, -1.0], [largest, 0.0, -largest]):
        a = Tensor(np.array(numerator, dtype), requires_grad=True)
        b = Tensor(np.array(1e-30, dtype), requires_grad=True)
        (a / b).sum().backward()
        assert b.grad == 0
        np.testing.assert_allclose(a.grad, 1 / np.array(1e-30, dtype), rtol=1e-6)

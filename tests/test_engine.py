"""The reverse-mode engine itself: unbroadcast, graph traversal, no_grad, dtypes, detach."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

import minivae as mv
from minivae import Tensor, is_grad_enabled, no_grad, unbroadcast

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


# -- graph traversal ---------------------------------------------------------------------------


def test_shared_subexpression_accumulates_gradient():
    values = np.array([-1.5, 0.0, 0.5, 2.0])
    x = Tensor(values, requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * values + 1, rtol=1e-14)


def test_node_used_three_times_accumulates_gradient():
    values = np.array([-1.5, 0.0, 0.5, 2.0])
    x = Tensor(values, requires_grad=True)
    h = x.tanh()
    (h * h + h).sum().backward()  # h feeds three edges: both sides of the product and the sum
    t = np.tanh(values)
    np.testing.assert_allclose(x.grad, (2 * t + 1) * (1 - t**2), rtol=1e-14)


def test_diamond_graph_gradient():
    # x -> a -> (b, c) -> d: the gradient reaching a is the sum over both paths
    x = Tensor(np.array([0.3, -0.7]), requires_grad=True)
    a = x * 2.0
    b = a.exp()
    c = a * 3.0
    (b * c).sum().backward()
    xv = x.data
    # d = 6x e^{2x}  =>  d' = 6 e^{2x} + 12 x e^{2x}
    np.testing.assert_allclose(x.grad, 6 * np.exp(2 * xv) * (1 + 2 * xv), rtol=1e-13)


def test_deep_chain_backward_without_recursion_error():
    n_ops, factor = 100_000, 1.0001
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(n_ops):
        y = y * factor
    y.backward()  # a recursive topological sort would raise RecursionError here
    np.testing.assert_allclose(x.grad, np.exp(n_ops * np.log1p(factor - 1)), rtol=1e-9)


# -- no_grad -----------------------------------------------------------------------------------


def test_no_grad_records_no_graph():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with no_grad():
        y = (x * x).exp().sum()
    assert not y.requires_grad
    assert y._parents == () and y._vjp is None  # nothing keeps the intermediate arrays alive
    with pytest.raises(ValueError, match="does not require grad"):
        y.backward()
    assert x.grad is None


def test_nested_no_grad_restores_state():
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()  # leaving the inner block must not re-enable recording
    assert is_grad_enabled()
    x = Tensor(1.0, requires_grad=True)
    assert (x * 2.0).requires_grad


def test_no_grad_restores_state_on_exception():
    with pytest.raises(RuntimeError, match="boom"), no_grad():
        raise RuntimeError("boom")
    assert is_grad_enabled()
    with pytest.raises(RuntimeError, match="boom"), no_grad():
        try:
            with no_grad():
                raise RuntimeError("boom")
        finally:
            assert not is_grad_enabled()  # the inner block restores the outer block's state
    assert is_grad_enabled()


# -- dtypes ------------------------------------------------------------------------------------

# Each primitive applied to float32 operands (inputs in (0.5, 1.5), inside every op's domain).
PRIMITIVE_CALLS = {
    "add": lambda a, b: mv.add(a, b),
    "sub": lambda a, b: mv.sub(a, b),
    "mul": lambda a, b: mv.mul(a, b),
    "div": lambda a, b: mv.div(a, b),
    "neg": lambda a, b: mv.neg(a),
    "pow": lambda a, b: mv.pow(a, 1.5),
    "matmul": lambda a, b: mv.matmul(a, b.T),
    "exp": lambda a, b: mv.exp(a),
    "log": lambda a, b: mv.log(a),
    "log1p": lambda a, b: mv.log1p(a),
    "sqrt": lambda a, b: mv.sqrt(a),
    "tanh": lambda a, b: mv.tanh(a),
    "sigmoid": lambda a, b: mv.sigmoid(a),
    "relu": lambda a, b: mv.relu(a - 1.0),
    "leaky_relu": lambda a, b: mv.leaky_relu(a - 1.0, 0.1),
    "softplus": lambda a, b: mv.softplus(a),
    "sum": lambda a, b: mv.sum(a, axis=1),
    "mean": lambda a, b: mv.mean(a, axis=0, keepdims=True),
    "max": lambda a, b: mv.max(a, axis=-1),
    "logsumexp": lambda a, b: mv.logsumexp(a, axis=(0, 1)),
    "reshape": lambda a, b: mv.reshape(a, (-1,)),
    "transpose": lambda a, b: mv.transpose(a),
    "getitem": lambda a, b: mv.getitem(a, (np.array([0, 0, 1]), slice(None, None, -1))),
    "concatenate": lambda a, b: mv.concatenate([a, b], axis=1),
    "stack": lambda a, b: mv.stack([a, b], axis=-1),
    "where": lambda a, b: mv.where(np.array([True, False, True]), a, b),
    "lgamma": lambda a, b: mv.ops.lgamma(a),
    "digamma": lambda a, b: mv.ops.digamma(a),
    "solve_triangular": lambda a, b: mv.ops.solve_triangular(mv.ops.tril(a[:, :2]), b[:, 0],
                                                             vector=True),
    "cholesky": lambda a, b: mv.ops.cholesky(mv.matmul(a, a.T)),
    "diagonal": lambda a, b: mv.ops.diagonal(a[:, :2]),
    "tril": lambda a, b: mv.ops.tril(a),
}


def test_primitive_table_covers_every_primitive():
    assert set(PRIMITIVE_CALLS) == set(mv.ops.__all__)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CALLS))
def test_float32_stays_float32(name, rng):
    a = Tensor(rng.uniform(0.5, 1.5, (2, 3)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.uniform(0.5, 1.5, (2, 3)).astype(np.float32), requires_grad=True)
    out = PRIMITIVE_CALLS[name](a, b)
    assert out.dtype == np.float32

    # The engine casts a leaf's gradient to the leaf's dtype, so inspect the VJP itself: a
    # float64 intermediate would silently double the memory and time of every later VJP.
    upstream = np.ones_like(out.data)
    for parent_grad in out._vjp(upstream):
        if parent_grad is not None:
            assert np.asarray(parent_grad).dtype == np.float32

    out.backward(upstream)
    for leaf in (a, b):
        assert leaf.grad is None or leaf.grad.dtype == np.float32


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


@pytest.mark.parametrize(
    "data", [3, [1, 2, 3], np.arange(4, dtype=np.int32), np.arange(4, dtype=np.uint8), True]
)
def test_integer_input_becomes_float64(data):
    tensor = Tensor(data)
    assert tensor.dtype == np.float64
    np.testing.assert_array_equal(tensor.data, np.asarray(data, dtype=np.float64))


@pytest.mark.parametrize(
    "data",
    [
        np.ones(3, dtype=np.float16),
        np.ones(3, dtype=np.complex128),
        np.array([1 + 2j]),
        np.array(["a", "b"]),
        "text",
        np.array([1.0, None], dtype=object),
    ],
)
def test_unsupported_dtypes_raise_type_error(data):
    with pytest.raises(TypeError, match="float32 or float64"):
        Tensor(data)


@pytest.mark.parametrize("dtype", [np.float16, np.complex64, np.int64])
def test_unsupported_requested_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match="float32 or float64"):
        Tensor([1.0, 2.0], dtype=dtype)


# -- detach, accumulation and backward's arguments ---------------------------------------------


def test_detach_shares_data_but_cuts_the_graph():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    h = x * x
    frozen = h.detach()
    assert np.shares_memory(frozen.data, h.data)
    assert not frozen.requires_grad
    (frozen * x).sum().backward()
    # d/dx (c · x) with the constant c = x²: the path through the detached copy is not followed
    np.testing.assert_allclose(x.grad, x.data**2, rtol=1e-15)


def test_leaf_grads_accumulate_across_backward_calls():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (x * x).sum().backward()
    first = x.grad.copy()
    (x * x).sum().backward()
    np.testing.assert_allclose(first, 2 * x.data, rtol=1e-15)
    np.testing.assert_allclose(x.grad, 4 * x.data, rtol=1e-15)


def test_backward_through_graph_twice_gives_same_gradient():
    x = Tensor(np.array([0.5, -1.0]), requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward()
    first = x.grad.copy()
    x.grad = None
    loss.backward()
    np.testing.assert_allclose(x.grad, first, rtol=1e-15)


def test_backward_without_grad_on_non_scalar_raises():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(ValueError, match="grad must be given"):
        (x * 2.0).backward()


def test_backward_on_single_element_tensor_defaults_to_one():
    x = Tensor(np.array([[3.0]]), requires_grad=True)
    (x * 2.0).backward()
    np.testing.assert_array_equal(x.grad, [[2.0]])


def test_backward_with_wrong_grad_shape_raises():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"\(3, 2\)"):
        y.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(6))


def test_backward_with_explicit_grad_is_a_vjp(rng):
    x = Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    upstream = rng.standard_normal((2, 3))
    (x * x).backward(upstream)
    np.testing.assert_allclose(x.grad, 2 * x.data * upstream, rtol=1e-15)


def test_gradient_skips_constants():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    constant = Tensor(np.array([3.0, 4.0]))
    (x * constant).sum().backward()
    assert constant.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_cleared_gradient_reads_as_zero_and_is_overwritten_not_added():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    buffer = x.grad
    x.clear_grad()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])  # reading fills in the zeros
    x.clear_grad()
    (3 * x).sum().backward()  # overwrites the cleared buffer in place: 3, not 3 + stale 2x
    np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert x.grad is buffer
    (3 * x).sum().backward()  # and then accumulates as usual
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_accumulate_grad_matmul_writes_into_a_cleared_buffer():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    w = Tensor(np.zeros((3, 2)), requires_grad=True)
    w.grad = np.full((3, 2), 7.0)
    buffer = w.grad
    w.accumulate_grad_matmul(a, b)  # not cleared: adds
    np.testing.assert_allclose(w.grad, 7.0 + a @ b)
    w.clear_grad()
    w.accumulate_grad_matmul(a, b)  # cleared: the product replaces the stale values
    np.testing.assert_allclose(w.grad, a @ b)
    assert w.grad is buffer

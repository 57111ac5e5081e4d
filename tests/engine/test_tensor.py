"""The reverse-mode engine itself: graph traversal, no_grad, dtypes, detach, backward's
arguments."""
from __future__ import annotations

import numpy as np
import pytest

import minivae as mv
from minivae import Tensor, is_grad_enabled, no_grad

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

"""Triangular solves, Cholesky, diagonal and tril: the equations they solve, their VJPs
(against minivae.engine.gradcheck), dtypes and the errors they raise.

Random triangular matrices get off-diagonal entries in [−1, 1] and a diagonal in [1, 2], so
with n ≤ 5 they are well conditioned and a residual of 1e-10 is a meaningful bound.
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import minivae as mv
from minivae import gradcheck
from minivae.engine.ops.linalg import cholesky, diagonal, solve_triangular, tril

seeds = st.integers(0, 2**32 - 1)


def random_triangular(rng, shape, lower=True):
    """Well-conditioned triangular matrices of ``shape`` (..., n, n); the other triangle is
    filled with junk that a solve must ignore."""
    n = shape[-1]
    full = rng.uniform(-1, 1, shape)
    diagonal_values = rng.uniform(1, 2, shape[:-1])
    full[..., np.arange(n), np.arange(n)] = diagonal_values
    return full, (np.tril(full) if lower else np.triu(full))


def matrix_transpose(X: mv.Tensor) -> mv.Tensor:
    """Swap the last two axes of a Tensor."""
    axes = list(range(X.ndim))
    axes[-2:] = axes[:-3:-1]
    return X.transpose(*axes)


@st.composite
def solve_problems(draw, max_batch_dims=2):
    """(L with junk in the unused triangle, its clean triangle, b, keyword arguments)."""
    rng = np.random.default_rng(draw(seeds))
    n = draw(st.integers(1, 5))
    vector, lower, transpose = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    batch_L, batch_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=max_batch_dims, max_side=3)).input_shapes
    L, clean = random_triangular(rng, batch_L + (n, n), lower)
    b_shape = batch_b + ((n,) if vector else (n, draw(st.integers(1, 3))))
    b = rng.standard_normal(b_shape)
    return L, clean, b, dict(vector=vector, lower=lower, transpose=transpose)


@given(problem=solve_problems())
def test_solve_triangular_satisfies_the_system(problem):
    L, clean, b, kwargs = problem
    x = solve_triangular(L, b, **kwargs).data
    M = np.swapaxes(clean, -1, -2) if kwargs["transpose"] else clean
    if kwargs["vector"]:
        residual = np.einsum("...ij,...j->...i", M, x) - b
    else:
        residual = M @ x - b
    batch = np.broadcast_shapes(L.shape[:-2], b.shape[:-1 if kwargs["vector"] else -2])
    assert x.shape == batch + b.shape[-1 if kwargs["vector"] else -2:]
    assert np.max(np.abs(residual), initial=0.0) <= 1e-10


def test_vector_and_single_column_matrix_agree(rng):
    _, L = random_triangular(rng, (3, 4, 4))
    b = rng.standard_normal((3, 4))
    as_vector = solve_triangular(L, b, vector=True).data
    as_matrix = solve_triangular(L, b[..., None], vector=False).data[..., 0]
    np.testing.assert_array_equal(as_vector, as_matrix)


@st.composite
def gradient_cases(draw):
    rng = np.random.default_rng(draw(seeds))
    case = draw(st.sampled_from(["solve", "cholesky", "diagonal", "tril"]))
    if case == "solve":
        L, _, b, kwargs = draw(solve_problems(max_batch_dims=1))
        return case, (lambda A, B: solve_triangular(A, B, **kwargs)), (L, b)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=1, max_side=3))
    n = draw(st.integers(1, 4))
    X = rng.standard_normal(shape + (n, n))
    if case == "cholesky":
        # A = X Xᵀ + n I is symmetric positive definite; gradcheck also perturbs X so that
        # the input stays symmetric, since the gradient is defined for symmetric A only.
        eye = mv.Tensor(n * np.eye(n))
        return case, (lambda X: cholesky(X @ matrix_transpose(X) + eye)), (X,)
    if case == "diagonal":
        return case, diagonal, (X,)
    k = draw(st.integers(-n, n))
    return case, (lambda A: tril(A, k)), (X,)


@settings(max_examples=120)
@given(case=gradient_cases())
def test_linalg_op_gradients(case):
    _, op, inputs = case
    assert gradcheck(op, *inputs)


def test_cholesky_gradient_is_symmetric(rng):
    """For a symmetric leaf A the gradient is the symmetric one: it equals the gradient taken
    through ½(A + Aᵀ), which gradcheck verifies by perturbing A's entries one at a time."""
    X = rng.standard_normal((2, 3, 3))
    A = X @ np.swapaxes(X, -1, -2) + 3 * np.eye(3)
    through_symmetrization = lambda A: cholesky(0.5 * (A + matrix_transpose(A)))
    assert gradcheck(through_symmetrization, A)
    upstream = rng.standard_normal(A.shape)
    grads = []
    for f in (cholesky, through_symmetrization):
        leaf = mv.Tensor(A, requires_grad=True)
        f(leaf).backward(upstream)
        grads.append(leaf.grad)
    np.testing.assert_allclose(grads[0], np.swapaxes(grads[0], -1, -2), rtol=0, atol=1e-14)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-14)


def test_log_determinant_gradient_is_the_inverse(rng):
    """log det A = 2 Σᵢ log Lᵢᵢ has gradient A⁻¹ (for symmetric A), a closed form that checks
    the Cholesky VJP end to end; np.linalg.inv serves only as the oracle here."""
    X = rng.standard_normal((2, 4, 4))
    A = X @ np.swapaxes(X, -1, -2) + np.eye(4)
    t = mv.Tensor(A, requires_grad=True)
    (2 * diagonal(cholesky(t)).log()).sum().backward()
    np.testing.assert_allclose(t.grad, np.linalg.inv(A), rtol=1e-10, atol=1e-12)


@settings(max_examples=30)
@given(seed=seeds, n=st.integers(1, 6), batch=hnp.array_shapes(min_dims=0, max_dims=2,
                                                                max_side=3))
def test_cholesky_recovers_the_factor(seed, n, batch):
    _, L = random_triangular(np.random.default_rng(seed), batch + (n, n))
    A = L @ np.swapaxes(L, -1, -2)
    np.testing.assert_allclose(cholesky(A).data, L, rtol=1e-10, atol=1e-12)


def test_dtype_is_preserved(rng):
    _, L = random_triangular(rng, (2, 3, 3))
    L32, b32 = L.astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)
    A32 = (L @ np.swapaxes(L, -1, -2)).astype(np.float32)
    Lt, bt, At = (mv.Tensor(a, requires_grad=True) for a in (L32, b32, A32))
    outputs = [solve_triangular(Lt, bt, vector=True),
               solve_triangular(Lt, bt[..., None], vector=False, transpose=True),
               cholesky(At), diagonal(Lt), tril(Lt)]
    total = outputs[0].sum()
    for out in outputs:
        assert out.dtype == np.float32
        total = total + out.sum()
    total.backward()
    assert all(t.grad.dtype == np.float32 for t in (Lt, bt, At))


def test_bad_input_raises(rng):
    _, L = random_triangular(rng, (3, 3))
    with pytest.raises(ValueError, match="L must have shape"):
        solve_triangular(np.ones((3, 2)), np.ones(3), vector=True)
    with pytest.raises(ValueError, match="b must have shape"):
        solve_triangular(L, np.ones(4), vector=True)
    with pytest.raises(ValueError, match="b must have shape"):
        solve_triangular(L, np.ones((2, 3)), vector=False)
    with pytest.raises(ValueError, match="do not broadcast"):
        solve_triangular(np.broadcast_to(L, (2, 3, 3)), np.ones((4, 3)), vector=True)
    with pytest.raises(ValueError, match="nonzero diagonal"):
        solve_triangular(np.zeros((3, 3)), np.ones(3), vector=True)
    with pytest.raises(TypeError, match="vector"):
        solve_triangular(L, np.ones(3))
    with pytest.raises(TypeError, match="dtype mismatch"):
        solve_triangular(L.astype(np.float32), np.ones(3), vector=True)
    with pytest.raises(ValueError, match="A must have shape"):
        cholesky(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric positive definite"):
        cholesky(np.array([[2.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="symmetric positive definite"):
        cholesky(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric positive definite"):
        cholesky(np.array([[np.nan, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="A must have shape"):
        diagonal(np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least two dimensions"):
        tril(np.ones(3))

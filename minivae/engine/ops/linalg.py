"""Triangular linear algebra: triangular solves, the Cholesky factor, diagonal and tril.

All act on the last two axes and batch (with broadcasting) over the leading ones, written
``(..., n, n)``.  No explicit inverse appears anywhere: applying L⁻¹ is a triangular solve,
n steps of substitution, which is both cheaper and more accurate than forming L⁻¹.

Verified by: tests/engine/ops/test_linalg.py::test_solve_triangular_satisfies_the_system,
::test_linalg_op_gradients
"""
from __future__ import annotations

import numpy as np

from minivae.engine.ops.operands import as_tensor, binary_operands, unbroadcast
from minivae.engine.tensor import Tensor


def _mT(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def _check_square(a: np.ndarray, name: str) -> int:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{name} must have shape (..., n, n) (square in its last two axes); "
                         f"got shape {a.shape}")
    return a.shape[-1]


def _check_symmetric(a: np.ndarray, name: str) -> None:
    """Square in its last two axes and symmetric to a few ulps of its largest entry."""
    _check_square(a, name)
    tolerance = 64 * np.finfo(a.dtype).eps * np.max(np.abs(a), initial=0.0)
    if not np.all(np.abs(a - _mT(a)) <= tolerance):  # NaN fails here too
        raise ValueError(f"{name} must be symmetric positive definite; it is not symmetric "
                         f"(largest |{name} − {name}ᵀ| = {np.nanmax(np.abs(a - _mT(a))):.3g})")


def _substitute(M: np.ndarray, B: np.ndarray, lower: bool) -> np.ndarray:
    """X with M X = B, M (..., n, n) triangular, B (..., n, k); only M's triangle is read.

    Forward substitution (lower):  xᵢ = (bᵢ − Σⱼ<ᵢ Mᵢⱼ xⱼ) / Mᵢᵢ  for i = 1 … n;
    back substitution (upper):     xᵢ = (bᵢ − Σⱼ>ᵢ Mᵢⱼ xⱼ) / Mᵢᵢ  for i = n … 1.
    Each step is vectorized over the batch axes and the k columns of B.
    """
    n = M.shape[-1]
    batch = np.broadcast_shapes(M.shape[:-2], B.shape[:-2])
    X = np.zeros(batch + B.shape[-2:], dtype=np.result_type(M, B))
    for i in range(n) if lower else range(n - 1, -1, -1):
        known = slice(0, i) if lower else slice(i + 1, n)
        row = M[..., i : i + 1, known]  # (..., 1, number known)
        rhs = B[..., i, :] - (row @ X[..., known, :])[..., 0, :]
        X[..., i, :] = rhs / M[..., i, i, None]
    return X


def solve_triangular(L, b, *, vector: bool, lower: bool = True, transpose: bool = False
                     ) -> Tensor:
    """x solving L x = b (or Lᵀ x = b with ``transpose=True``) for triangular L.

    Shapes: L is (..., n, n), lower-triangular (upper with ``lower=False``); only that
    triangle is read, the other is ignored.  The keyword ``vector`` must be given, because
    a batch of vectors and a single matrix can have the same shape:

    - ``vector=True``:  b is (..., n), one right-hand side per batch entry → x is (..., n);
    - ``vector=False``: b is (..., n, k), k right-hand sides in columns   → x is (..., n, k).

    Leading (batch) axes of L and b broadcast against each other.

    VJP.  Write M for the matrix actually solved (L or Lᵀ), so x = M⁻¹ b.  Differentiating
    M x = b gives dM x + M dx = db, i.e. dx = M⁻¹ (db − dM x).  For upstream gradient g,
        ⟨g, dx⟩ = ⟨M⁻ᵀ g, db⟩ − ⟨M⁻ᵀ g xᵀ, dM⟩,
    so  grad_b = M⁻ᵀ g  (one more triangular solve, with the transpose flag flipped) and
        grad_M = −grad_b xᵀ  (summed over the k columns; an outer product for vectors).
    With transpose, grad_L = grad_Mᵀ = −x grad_bᵀ.  Only L's triangle enters the forward
    pass, so grad_L is kept on that triangle (tril, or triu for ``lower=False``); batch
    axes that were broadcast are summed away by ``unbroadcast``.

    Verified by: tests/engine/ops/test_linalg.py::test_solve_triangular_satisfies_the_system,
    ::test_linalg_op_gradients
    """
    L, b = binary_operands(L, b)
    n = _check_square(L.data, "L")
    if vector:
        if b.ndim < 1 or b.shape[-1] != n:
            raise ValueError(f"b must have shape (..., {n}) to match L of shape {L.shape} "
                             f"(vector=True); got shape {b.shape}")
        B = b.data[..., None]
    else:
        if b.ndim < 2 or b.shape[-2] != n:
            raise ValueError(f"b must have shape (..., {n}, k) to match L of shape {L.shape} "
                             f"(vector=False); got shape {b.shape}")
        B = b.data
    try:
        np.broadcast_shapes(L.shape[:-2], B.shape[:-2])
    except ValueError:
        raise ValueError(f"the batch axes of L {L.shape[:-2]} and b {B.shape[:-2]} "
                         "do not broadcast") from None
    if not np.all(np.diagonal(L.data, axis1=-2, axis2=-1) != 0):
        raise ValueError("L must have a nonzero diagonal (it is singular otherwise)")

    M_is_lower = lower != transpose
    M = _mT(L.data) if transpose else L.data
    X = _substitute(M, B, M_is_lower)
    keep_triangle = np.tril if lower else np.triu

    def vjp(g):
        G = g[..., None] if vector else g
        grad_B = _substitute(_mT(M), G, not M_is_lower)
        grad_M = -(grad_B @ _mT(X))
        grad_L = keep_triangle(_mT(grad_M) if transpose else grad_M)
        grad_b = grad_B[..., 0] if vector else grad_B
        return unbroadcast(grad_L, L.shape), unbroadcast(grad_b, b.shape)

    return Tensor.from_op(X[..., 0] if vector else X, (L, b), vjp, "solve_triangular")


def cholesky(A) -> Tensor:
    """The lower-triangular L with L Lᵀ = A, for symmetric positive-definite A (..., n, n).

    VJP.  From A = L Lᵀ, dA = dL Lᵀ + L dLᵀ, so L⁻¹ dA L⁻ᵀ = L⁻¹dL + (L⁻¹dL)ᵀ.  L⁻¹dL is lower
    triangular, hence L⁻¹dL = Φ(L⁻¹ dA L⁻ᵀ) with Φ(S) = the lower triangle of S, diagonal
    halved, and dL = L Φ(L⁻¹ dA L⁻ᵀ).  For upstream gradient Ḡ, and since Φ is self-adjoint
    under ⟨U, V⟩ = Σ Uᵢⱼ Vᵢⱼ,
        ⟨Ḡ, dL⟩ = ⟨Φ(Lᵀ Ḡ), L⁻¹ dA L⁻ᵀ⟩ = ⟨L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹, dA⟩.
    dA ranges over symmetric matrices only, so the gradient is the symmetric part:
        grad_A = ½ (P + Pᵀ),  P = L⁻ᵀ Φ(Lᵀ Ḡ) L⁻¹,
    computed with two triangular solves (Lᵀ Y = Φ, then Lᵀ Pᵀ = Yᵀ), never an inverse.

    Raises ValueError if A is not square, not symmetric (to a few ulps of its largest entry)
    or not positive definite.

    Verified by: tests/engine/ops/test_linalg.py::test_cholesky_recovers_the_factor,
    ::test_linalg_op_gradients,
    ::test_cholesky_gradient_is_symmetric,
    ::test_log_determinant_gradient_is_the_inverse
    """
    A = as_tensor(A)
    _check_symmetric(A.data, "A")
    try:
        L = np.linalg.cholesky(A.data)
    except np.linalg.LinAlgError:
        raise ValueError("A must be symmetric positive definite; the factorization "
                         "met a non-positive pivot") from None

    def vjp(g):
        Phi = np.tril(_mT(L) @ g)
        index = np.arange(L.shape[-1])
        Phi[..., index, index] *= 0.5
        Y = _substitute(_mT(L), Phi, lower=False)  # Y = L⁻ᵀ Φ
        P = _mT(_substitute(_mT(L), _mT(Y), lower=False))  # P = Y L⁻¹
        return (0.5 * (P + _mT(P)),)

    return Tensor.from_op(L, (A,), vjp, "cholesky")


def diagonal(A) -> Tensor:
    """The diagonal (A₁₁, …, Aₙₙ) of each (..., n, n) matrix, shape (..., n);
    the VJP writes g onto the diagonal of a zero matrix.

    Verified by: tests/engine/ops/test_linalg.py::test_linalg_op_gradients
    """
    A = as_tensor(A)
    n = _check_square(A.data, "A")
    index = np.arange(n)

    def vjp(g):
        grad = np.zeros_like(A.data)
        grad[..., index, index] = g
        return (grad,)

    return Tensor.from_op(A.data[..., index, index], (A,), vjp, "diagonal")


def tril(A, k: int = 0) -> Tensor:
    """A with entries above the k-th diagonal set to zero (Aᵢⱼ kept where j − i ≤ k);
    the VJP is tril(g, k), since the zeroed entries do not reach the output.

    Verified by: tests/engine/ops/test_linalg.py::test_linalg_op_gradients
    """
    A = as_tensor(A)
    if A.ndim < 2:
        raise ValueError(f"A must have at least two dimensions; got shape {A.shape}")
    return Tensor.from_op(np.tril(A.data, k), (A,), lambda g: (np.tril(g, k),), "tril")

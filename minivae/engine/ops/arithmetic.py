"""Binary arithmetic primitives and matmul; each forward sits beside its VJP.

For ``out = f(a, b)`` the VJP receives ``g = dL/d out`` and returns ``(dL/da, dL/db)``.
Broadcasting in the forward pass is undone by ``unbroadcast`` in the VJP.

Verified by: tests/engine/ops/test_arithmetic.py::test_binary_op_gradients
"""
from __future__ import annotations

import numbers

import numpy as np

from minivae.engine.ops.operands import as_tensor, binary_operands, unbroadcast
from minivae.engine.tensor import Tensor


def add(a, b) -> Tensor:
    """a + b;  d/da = 1, d/db = 1."""
    a, b = binary_operands(a, b)

    def vjp(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)

    return Tensor.from_op(a.data + b.data, (a, b), vjp, "add")


def sub(a, b) -> Tensor:
    """a − b;  d/da = 1, d/db = −1."""
    a, b = binary_operands(a, b)

    def vjp(g):
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)

    return Tensor.from_op(a.data - b.data, (a, b), vjp, "sub")


def mul(a, b) -> Tensor:
    """a · b;  d/da = b, d/db = a."""
    a, b = binary_operands(a, b)

    def vjp(g):
        grad_a = unbroadcast(g * b.data, a.shape) if a.requires_grad else None
        grad_b = unbroadcast(g * a.data, b.shape) if b.requires_grad else None
        return grad_a, grad_b

    return Tensor.from_op(a.data * b.data, (a, b), vjp, "mul")


def div(a, b) -> Tensor:
    """a / b;  d/da = 1/b, d/db = −a/b²."""
    a, b = binary_operands(a, b)
    out = a.data / b.data

    def vjp(g):
        grad_a = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
        if not b.requires_grad:
            return grad_a, None
        # −(Σ g·a)/b/b: sum over the broadcast axes first (b is constant along them), then
        # divide; term by term, g·a/b² overflows for tiny b even where the sum is exactly 0
        with np.errstate(over="ignore", invalid="ignore"):
            grad_b = unbroadcast(-g * a.data, b.shape) / b.data / b.data
        if not np.isfinite(grad_b).all():
            # g·a itself can overflow where g·a/b² does not (b large): there the same number
            # is (g/b)·(a/b), a product of two quotients
            with np.errstate(over="ignore", invalid="ignore"):
                quotients = unbroadcast(-(g / b.data) * out, b.shape)
            # ... taken where it is finite, or where the first form is NaN; where the
            # quotients overflow both ways (∞ − ∞ in their sum) the first form's ±∞ stands
            better = np.isfinite(quotients) | np.isnan(grad_b)
            grad_b = np.where(np.isfinite(grad_b) | ~better, grad_b, quotients).astype(
                b.dtype, copy=False)
        return grad_a, grad_b

    return Tensor.from_op(out, (a, b), vjp, "div")


def neg(a) -> Tensor:
    """−a;  d/da = −1."""
    a = as_tensor(a)
    return Tensor.from_op(-a.data, (a,), lambda g: (-g,), "neg")


def pow(a, exponent) -> Tensor:  # noqa: A001  (the primitive's name, as in NumPy and Python)
    """a ** p for a constant real exponent p;  d/da = p · a^(p−1)."""
    if isinstance(exponent, Tensor) or not isinstance(exponent, numbers.Real):
        raise TypeError("exponent must be a real number (a constant), "
                        f"got {type(exponent).__name__}")
    a = as_tensor(a)
    p = float(exponent)

    def vjp(g):
        if p == 0.0:  # a⁰ = 1 is constant; p · a^(p−1) would be 0 · ∞ = NaN at a = 0
            return (np.zeros_like(g),)
        return (g * p * a.data ** (p - 1.0),)

    return Tensor.from_op(a.data**p, (a,), vjp, "pow")


def matmul(a, b) -> Tensor:
    """a @ b for 1-D, 2-D and batched (..., n, k) @ (..., k, m) operands.

    Math: for C = A B, dL/dA = G Bᵀ and dL/dB = Aᵀ G (batch axes broadcast, then unbroadcast).
    A 1-D ``a`` is a row (1, k) and a 1-D ``b`` a column (k, 1), as in NumPy.
    """
    a, b = binary_operands(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul needs operands with at least one dimension; use * for scalars")
    out = a.data @ b.data

    def vjp(g):
        a2 = a.data[None, :] if a.ndim == 1 else a.data
        b2 = b.data[:, None] if b.ndim == 1 else b.data
        # Column axis first: for 1-D @ 1-D, g is 0-d and has no axis -2 until it has an axis -1.
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = unbroadcast(g @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if b.requires_grad:
            grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return grad_a, grad_b

    return Tensor.from_op(out, (a, b), vjp, "matmul")

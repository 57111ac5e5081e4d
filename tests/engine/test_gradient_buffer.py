"""A leaf's gradient buffer, zeroed lazily: a cleared gradient reads as zero and the next
gradient overwrites it instead of adding to it."""
from __future__ import annotations

import numpy as np

from minivae import Tensor


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

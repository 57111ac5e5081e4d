"""The gradient buffer of a leaf tensor, zeroed lazily.

``zero_grad`` does not write zeros into every gradient: it marks them *cleared*, and the first
gradient to arrive overwrites the buffer instead of being added to it.  That saves a pass over
all parameters per step and lets BLAS write a weight gradient straight into the buffer
(``accumulate_grad_matmul``).  Reading ``.grad`` of a cleared tensor fills in the zeros first,
so from the outside a cleared gradient is simply zero.

Verified by:
tests/test_optim.py::test_a_parameter_the_loss_ignores_gets_a_zero_gradient_after_zero_grad
"""
from __future__ import annotations

import numpy as np


class GradientBuffer:
    """``grad`` with lazy zeroing; ``Tensor`` inherits it (its ``shape`` and ``dtype`` are used)."""

    __slots__ = ("_grad", "_grad_cleared")

    @property
    def grad(self) -> np.ndarray | None:
        self.write_cleared_grad()
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        self._grad, self._grad_cleared = value, False

    def clear_grad(self) -> None:
        """Set the gradient to zero (lazily: see the module docstring)."""
        if self._grad is not None:
            self._grad_cleared = True

    def write_cleared_grad(self) -> None:
        """Write the zeros of a cleared gradient now, for code that reads the buffer itself."""
        if self._grad_cleared:
            self._grad[...] = 0
            self._grad_cleared = False

    def accumulate_grad(self, g: np.ndarray) -> None:
        """grad += g, in place; a missing gradient is created, a cleared one overwritten."""
        if self._grad is None:
            self._grad = np.array(np.broadcast_to(g, self.shape), dtype=self.dtype)
        elif self._grad_cleared:
            np.copyto(self._grad, g)
            self._grad_cleared = False
        else:
            self._grad += g

    def accumulate_grad_matmul(self, a: np.ndarray, b: np.ndarray) -> None:
        """grad += a @ b; into a cleared, contiguous buffer BLAS writes the product directly."""
        if (self._grad_cleared and self._grad.flags.c_contiguous
                and self._grad.dtype == np.result_type(a, b)):
            np.matmul(a, b, out=self._grad)
            self._grad_cleared = False
        else:
            self.accumulate_grad(a @ b)

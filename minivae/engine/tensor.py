"""The autodiff engine: a Tensor wraps an ndarray and remembers how it was made.

Every primitive (see ``minivae/engine/ops/``) computes its output with NumPy and returns it through
``Tensor.from_op`` together with a *vector-Jacobian product* (VJP): a function that takes the
gradient of the final scalar with respect to the output, ``g = dL/d out``, and returns
``dL/d parent`` for each parent.  ``backward()`` visits the graph once in reverse topological
order and hands each node's accumulated gradient to its VJP.  That is all of reverse mode.

Verified by: tests/engine/test_tensor.py (deep chain, shared subexpressions, no_grad),
tests/engine/ops/ (every VJP against gradcheck) and
tests/engine/test_autograd_oracle.py::test_random_programs_match_autograd (an independent autodiff).
"""
from __future__ import annotations

import contextlib

import numpy as np

from minivae import checks
from minivae.engine.anomaly import AnomalyMode, check_backward, check_forward
from minivae.engine.gradient_buffer import GradientBuffer


class _GradMode:
    enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded: results are plain leaves, VJPs are not kept."""
    previous = _GradMode.enabled
    _GradMode.enabled = False
    try:
        yield
    finally:
        _GradMode.enabled = previous


def is_grad_enabled() -> bool:
    return _GradMode.enabled


class Tensor(GradientBuffer):
    """An ndarray with a gradient and a record of the primitive that produced it.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    __slots__ = ("data", "requires_grad", "_parents", "_vjp", "op")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = checks.float_array(data, dtype)
        self._grad: np.ndarray | None = None
        self._grad_cleared = False
        self.requires_grad = bool(requires_grad)
        self._parents: tuple = ()
        self._vjp = None
        self.op = "leaf"

    @staticmethod
    def from_op(data: np.ndarray, parents: tuple, vjp, op: str) -> "Tensor":
        """Wrap a primitive's output; record ``parents`` and ``vjp`` only if a gradient can flow.

        Inside ``minivae.detect_anomaly()`` the output is first checked for NaN/±inf made from
        finite parents (and ``backward`` checks each VJP's result the same way).
        """
        if AnomalyMode.enabled:  # see minivae/engine/anomaly.py; off by default, so one test
            check_forward(data, parents, op)
        out = Tensor.__new__(Tensor)
        out.data, out._grad, out._grad_cleared, out.op = data, None, False, op
        out.requires_grad = _GradMode.enabled and any(p.requires_grad for p in parents)
        out._parents = parents if out.requires_grad else ()
        out._vjp = vjp if out.requires_grad else None
        return out

    # -- the reverse sweep -------------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

        ``grad`` is the upstream gradient (same shape as ``self``); it may be omitted for a
        single-element tensor, where it is 1.  Leaf gradients are added in place (``+=``), so
        they accumulate across calls until the optimizer's (or module's) ``zero_grad``
        (minivae/engine/gradient_buffer.py keeps them).
        """
        if not self.requires_grad:
            raise ValueError("backward() called on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"grad must be given for a non-scalar output "
                                 f"of shape {self.shape}")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"grad has shape {grad.shape}, expected {self.shape}")

        grads = {id(self): grad}
        detect_anomaly = AnomalyMode.enabled
        for node in self._reverse_topological_order():
            g = grads.pop(id(node), None)
            if g is None:  # a leaf whose VJPs all wrote into its gradient themselves
                continue
            if not node._parents:  # a leaf: keep the gradient
                node.accumulate_grad(g)
                continue
            parent_grads = node._vjp(g)
            if detect_anomaly:
                check_backward(g, node._parents, parent_grads, node.op)
            for parent, parent_grad in zip(node._parents, parent_grads):
                if parent_grad is None or not parent.requires_grad:
                    continue
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad

    def _reverse_topological_order(self) -> list:
        # Iterative depth-first search: a chain of 100,000 ops must not hit the recursion limit.
        order, visited, stack = [], {id(self)}, [(self, iter(self._parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent.requires_grad and id(parent) not in visited:
                    visited.add(id(parent))
                    stack.append((parent, iter(parent._parents)))
                    break
            else:
                stack.pop()
                order.append(node)
        return order[::-1]

    @property
    def is_leaf(self) -> bool:
        """True for a tensor made by the user, not recorded as the output of a primitive."""
        return not self._parents

    def detach(self) -> "Tensor":
        """The same data (no copy) as a leaf that does not require grad."""
        return Tensor(self.data)

    # -- array-like conveniences ---------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)
    T = property(lambda self: self.transpose())

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        return self.data.item()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, threshold=20)}, dtype={self.dtype}{grad})"

    # -- operators and methods: thin names for the primitives in minivae.engine.ops ------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, exponent): return ops.pow(self, exponent)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def log1p(self): return ops.log1p(self)
    def sqrt(self): return ops.sqrt(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def leaky_relu(self, slope=0.01): return ops.leaky_relu(self, slope)
    def softplus(self): return ops.softplus(self)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def logsumexp(self, axis=None, keepdims=False): return ops.logsumexp(self, axis, keepdims)
    def reshape(self, *shape): return ops.reshape(self, *shape)
    def transpose(self, *axes): return ops.transpose(self, *axes)


from minivae.engine import ops  # noqa: E402  (ops needs Tensor defined first)

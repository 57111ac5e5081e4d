"""Fused primitives: several elementary ops computed by one kernel, with one hand-written VJP.

Each is mathematically a composition of the primitives in this package (the docstrings say
which; the call sites in nn.py, distributions/ and optim.py write that composition out beside
the call), and the tests check that the fused result and gradient equal the composed ones.
Fusing saves the temporaries and the separate passes over memory that the composition would
make; the kernels themselves live in ``minivae.kernels`` (Python loops, numba, C).

Verified by: tests/engine/ops/test_fused.py::test_fused_ops_equal_their_compositions,
::test_fused_op_gradients
"""
from __future__ import annotations

import numpy as np

from minivae import kernels
from minivae.engine.ops.operands import as_tensor, binary_operands
from minivae.engine.tensor import Tensor, is_grad_enabled


def linear(x, weight, bias, activation: str = "identity", slope: float = 0.01) -> Tensor:
    """act(x @ W + b) for a batch of rows x (B, n), W (n, m), b (m,).

    Same as ``act(matmul(x, W) + b)``; the matmul goes to BLAS, bias and activation to one
    fused kernel.  VJP: G_pre = G · act′ (from the output), dW = xᵀ G_pre, db = Σ_rows G_pre,
    dx = G_pre Wᵀ (skipped when x needs no gradient, e.g. the input images).
    """
    x, weight = binary_operands(x, weight)
    bias = as_tensor(bias, weight)
    if x.ndim != 2 or weight.ndim != 2 or bias.shape != (weight.shape[1],):
        raise ValueError(f"linear expects x (B, n), weight (n, m), bias (m,); got {x.shape}, "
                         f"{weight.shape}, {bias.shape}")
    y = x.data @ weight.data  # (B, m), a fresh array the epilogue may overwrite
    kernels.bias_act_forward(y, bias.data, activation, slope, out=y)

    def vjp(g):
        if activation == "identity":  # act' = 1: the upstream gradient passes straight through
            grad_pre, grad_bias = g, g.sum(axis=0)
        else:
            grad_pre, grad_bias = kernels.bias_act_backward(y, g, activation, slope)
        grad_x = grad_pre @ weight.data.T if x.requires_grad else None
        grad_weight = None
        if weight.requires_grad and weight.is_leaf:
            # a parameter: BLAS writes xᵀ G_pre straight into its gradient buffer
            weight.accumulate_grad_matmul(x.data.T, grad_pre)
        elif weight.requires_grad:
            grad_weight = x.data.T @ grad_pre
        return grad_x, grad_weight, grad_bias

    return Tensor.from_op(y, (x, weight, bias), vjp, f"linear[{activation}]")


def every_class_activation(shared, per_class, activation: str, slope: float = 0.01) -> Tensor:
    """act(shared_b + per_class_k) for every class k and row b: shared (B, m), per_class
    (K, m) → (K · B, m), row k · B + b.

    Same as ``act((per_class.reshape(K, 1, m) + shared.reshape(1, B, m)).reshape(K * B, m))``;
    the sum is one NumPy pass and the activation the fused bias + activation kernel's (with a
    zero bias).  VJP: G_pre = G · act′ (from the output), viewed as (K, B, m); d shared = Σ_k,
    d per_class = Σ_b.
    """
    shared, per_class = binary_operands(shared, per_class)
    if shared.ndim != 2 or per_class.ndim != 2 or shared.shape[1] != per_class.shape[1]:
        raise ValueError(f"every_class_activation expects shared (B, m) and per_class (K, m); "
                         f"got {shared.shape}, {per_class.shape}")
    (rows, width), classes = shared.shape, per_class.shape[0]
    y = (per_class.data[:, None, :] + shared.data[None, :, :]).reshape(classes * rows, width)
    kernels.bias_act_forward(y, np.zeros(width, y.dtype), activation, slope, out=y)

    def vjp(g):
        if activation == "identity":
            grad_pre = g
        else:
            grad_pre, _ = kernels.bias_act_backward(y, g, activation, slope)
        grad_pre = grad_pre.reshape(classes, rows, width)
        return grad_pre.sum(axis=0), grad_pre.sum(axis=1)

    return Tensor.from_op(y, (shared, per_class), vjp, f"every_class_activation[{activation}]")


def bernoulli_log_prob(logits, x) -> Tensor:
    """Σ_j x_j l_j − softplus(l_j) over the last axis of (N, D) logits; x is a constant target,
    (N, D), or (R, D) with R dividing N, repeated down the rows (S samples of each of R images
    stacked into N = S·R rows).

    Same as ``(x_rows * logits - softplus(logits)).sum(axis=-1)`` with x_rows = x tiled to N
    rows; the gradient x − σ(l) is computed in the same pass as the value (only when a gradient
    is needed).
    """
    logits = as_tensor(logits)
    x = np.asarray(x.data if isinstance(x, Tensor) else x)  # the kernel checks shapes, dtypes
    need_grad = is_grad_enabled() and logits.requires_grad
    grad_logits = np.empty_like(logits.data) if need_grad else None
    value = kernels.bernoulli_log_prob(logits.data, x, grad_logits)

    def vjp(g):
        return (g[:, None] * grad_logits,)

    return Tensor.from_op(value, (logits,), vjp, "bernoulli_log_prob")


def reparameterize_kl(loc, log_var, eps: np.ndarray) -> tuple[Tensor, Tensor]:
    """z = μ + exp(½ log σ²) ε and KL(N(μ, σ²) ‖ N(0, I)) per row, from one kernel pass.

    Same as ``loc + exp(0.5 * log_var) * eps`` and
    ``0.5 * (loc**2 + exp(log_var) - 1 - log_var).sum(axis=-1)``.  Returns (z, kl) as two
    Tensors; each has its own VJP and their gradients add up at μ and log σ².
    """
    loc, log_var = binary_operands(loc, log_var)
    eps = np.asarray(eps)  # the kernel checks shapes and dtypes (kernels/contract.py)
    z, kl, std = kernels.reparameterize_kl_forward(loc.data, log_var.data, eps)

    def vjp_z(g):
        return kernels.reparameterize_kl_backward(loc.data, eps, std, g, None)

    def vjp_kl(g):
        return kernels.reparameterize_kl_backward(loc.data, eps, std, None, g)

    return (Tensor.from_op(z, (loc, log_var), vjp_z, "reparameterize"),
            Tensor.from_op(kl, (loc, log_var), vjp_kl, "kl_standard_normal"))

"""The NumPy reference kernels: the readable specification every compiled backend reproduces.

Each kernel is a fused piece of the VAE's training step, written here as plain NumPy so that its
math is easy to check; ``jit.py`` (numba) and ``csrc/kernels.c`` (C via cffi) implement the same
contract loop for loop.  The contract, for every backend:

* inputs may be any float32 or float64 arrays (non-contiguous too); all array arguments of one
  call share one dtype, and results have that dtype (nothing is upcast).  The compiled
  backends enforce this with ``TypeError``; this reference, being the specification, does not
  check it;
* outputs are fresh C-contiguous arrays unless an ``out`` argument says otherwise;
* in-place kernels (``adam_step``, ``sgd_step``) need 1-D C-contiguous buffers of one dtype;
* NaN in an input propagates to the outputs it touches; nothing raises on extreme values.

Verified by: tests/test_kernels.py (every backend against this module)
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")


# -- 1. Bernoulli log-likelihood from logits ------------------------------------------------
def check_available() -> None:
    """The reference needs nothing beyond NumPy."""


def bernoulli_log_prob(logits: np.ndarray, x: np.ndarray,
                       grad_logits: np.ndarray | None = None) -> np.ndarray:
    """Row sums of x·l − softplus(l), and optionally its gradient x − σ(l), in one pass.

    Math: log Bernoulli(x; σ(l)) = x log σ(l) + (1 − x) log(1 − σ(l)) = x·l − softplus(l), with
    softplus(l) = max(l, 0) + log1p(e^(−|l|)) (no overflow), and d/dl = x − σ(l).

    Parameters
    ----------
    logits, x : (B, D).
    grad_logits : optional (B, D) C-contiguous array that receives x − σ(l).

    Returns the (B,) row sums.

    Verified by: tests/test_kernels.py::test_bernoulli_log_prob_matches_reference
    """
    a = np.exp(-np.abs(logits))
    softplus = np.maximum(logits, 0) + np.log1p(a)
    if grad_logits is not None:
        sigmoid = np.where(logits >= 0, 1 / (1 + a), a / (1 + a))
        np.subtract(x, sigmoid, out=grad_logits)
    return (x * logits - softplus).sum(axis=1)


# -- 2. bias + activation epilogue after a matmul -------------------------------------------
def bias_act_forward(h: np.ndarray, bias: np.ndarray, activation: str, slope: float = 0.01,
                     out: np.ndarray | None = None) -> np.ndarray:
    """y = act(h + b) for a (B, N) matmul output h and a bias b of shape (N,).

    ``out`` (may be ``h`` itself) receives y.  ``slope`` is leaky_relu's negative slope.

    Verified by: tests/test_kernels.py::test_bias_act_matches_reference
    """
    pre = h + bias
    if activation == "identity":
        y = pre
    elif activation == "relu":
        y = np.maximum(pre, 0)
    elif activation == "leaky_relu":
        y = np.where(pre > 0, pre, pre * pre.dtype.type(slope))
    elif activation == "tanh":
        y = np.tanh(pre)
    elif activation == "sigmoid":
        y = np.exp(-np.logaddexp(0, -pre))
    elif activation == "softplus":
        y = np.logaddexp(0, pre)
    else:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if out is None:
        return y
    out[...] = y
    return out


def activation_derivative_from_output(y: np.ndarray, activation: str,
                                      slope: float = 0.01) -> np.ndarray:
    """act'(pre) written in terms of the output y = act(pre), so pre need not be kept.

    Math: identity 1; relu [y > 0]; leaky_relu [y > 0] + slope·[y ≤ 0] (y has pre's sign for
    slope > 0); tanh 1 − y²; sigmoid y(1 − y); softplus σ(pre) = 1 − e^(−y) = −expm1(−y).
    """
    if activation == "identity":
        return np.ones_like(y)
    if activation == "relu":
        return (y > 0).astype(y.dtype)
    if activation == "leaky_relu":
        return np.where(y > 0, 1, slope).astype(y.dtype)
    if activation == "tanh":
        return 1 - y * y
    if activation == "sigmoid":
        return y * (1 - y)
    if activation == "softplus":
        return -np.expm1(-y)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def bias_act_backward(y: np.ndarray, grad_y: np.ndarray, activation: str,
                      slope: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of y = act(h + b): dh = grad_y · act'(·) and db = Σ_rows dh.

    Verified by: tests/test_kernels.py::test_bias_act_backward_matches_reference
    """
    grad_h = grad_y * activation_derivative_from_output(y, activation, slope)
    return grad_h, grad_h.sum(axis=0)


# -- 3. Gaussian reparameterization fused with the KL to N(0, I) ----------------------------
def reparameterize_kl_forward(loc: np.ndarray, log_var: np.ndarray,
                              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z = μ + σ ε with σ = exp(½ log σ²), and KL(N(μ, σ²) ‖ N(0, I)) per row, in one pass.

    Math: KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).  Returns (z (B, L), kl (B,), σ (B, L)); σ is
    returned so the backward pass need not recompute it.

    Verified by: tests/test_kernels.py::test_reparameterize_kl_matches_reference
    """
    std = np.exp(0.5 * log_var)
    z = loc + std * eps
    kl = 0.5 * (loc * loc + std * std - 1 - log_var).sum(axis=1)
    return z, kl, std


def reparameterize_kl_backward(loc: np.ndarray, eps: np.ndarray, std: np.ndarray,
                               grad_z: np.ndarray | None,
                               grad_kl: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients with respect to (μ, log σ²) from upstream gradients of z (B, L) and kl (B,).

    Math: ∂z/∂μ = 1, ∂z/∂log σ² = ½ σ ε;  ∂KL/∂μ = μ, ∂KL/∂log σ² = ½ (σ² − 1).
    A missing upstream gradient (None) counts as zero.

    Verified by: tests/test_kernels.py::test_reparameterize_kl_backward_matches_reference
    """
    grad_loc = np.zeros_like(loc)
    grad_log_var = np.zeros_like(loc)
    if grad_z is not None:
        grad_loc += grad_z
        grad_log_var += 0.5 * grad_z * eps * std
    if grad_kl is not None:
        grad_loc += grad_kl[:, None] * loc
        grad_log_var += 0.5 * grad_kl[:, None] * (std * std - 1)
    return grad_loc, grad_log_var


# -- 4. optimizer updates over one flat buffer ----------------------------------------------
def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
              beta1: float, beta2: float, eps: float, step: int) -> None:
    """One Adam update, in place, of 1-D buffers param, m and v (Kingma & Ba 2015, PyTorch's form).

    Math: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
          θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).

    Verified by: tests/test_kernels.py::test_adam_step_matches_reference
    """
    step_size = lr / (1 - beta1**step)
    root_correction = float(np.sqrt(1 - beta2**step))  # a Python float: keeps float32 float32
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    param -= step_size * m / (np.sqrt(v) / root_correction + eps)


def sgd_step(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float,
             momentum: float, first_step: bool) -> None:
    """One SGD update with heavy-ball momentum, in place.

    Math: b ← g on the first step, else b ← μ b + g;  θ ← θ − lr · b.  (μ = 0: θ ← θ − lr · g.)

    Verified by: tests/test_kernels.py::test_sgd_step_matches_reference
    """
    if first_step or momentum == 0:
        buf[...] = grad
    else:
        buf *= momentum
        buf += grad
    param -= lr * buf


# -- 5. row-wise log-sum-exp ---------------------------------------------------------------
def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_j exp(a_ij) for each row i, shifted by the row maximum (no overflow).

    A row of all −∞ gives −∞; a row containing +∞ gives +∞; NaN propagates.  Rows with no
    columns raise ValueError (every backend does): there is no maximum to shift by.

    Verified by: tests/test_kernels.py::test_logsumexp_rows_matches_reference,
    tests/test_extremes_engine.py::test_logsumexp_rows_without_columns_raises_on_every_backend
    """
    if a.ndim == 2 and a.shape[1] == 0:
        raise ValueError(f"a must have at least one column to take a row maximum, got {a.shape}")
    m = a.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(a.dtype)
    with np.errstate(divide="ignore"):
        out = np.log(np.exp(a - m).sum(axis=1)) + m[:, 0]
    # a row holding +inf: exp(inf - 0) = inf, log(inf) = inf; the right answer already
    return out


# -- 6. teaching kernels: matmul without BLAS -----------------------------------------------
def matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A B by the definition C_ij = Σ_k A_ik B_kj (here via NumPy; the loops are in C/numba).

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    return a @ b


def matmul_blocked(a: np.ndarray, b: np.ndarray, block: int = 64) -> np.ndarray:
    """C = A B computed tile by tile (block × block), so each tile stays in cache.

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    n, k = a.shape
    m = b.shape[1]
    c = np.zeros((n, m), dtype=np.result_type(a, b))
    for i in range(0, n, block):
        for p in range(0, k, block):
            for j in range(0, m, block):
                tile_a, tile_b = a[i:i + block, p:p + block], b[p:p + block, j:j + block]
                c[i:i + block, j:j + block] += tile_a @ tile_b
    return c

"""The kernels' loops: one element at a time, in plain Python that numba also compiles.

Each function here is the loop behind the public kernel of the same name in
``minivae.kernels``: the arithmetic of csrc/kernels.c, statement for statement.  ``jit.py``
compiles these very functions with numba; the C file is their twin.  Read them to see what a
fused kernel does in one pass; read the call sites (``nn.Linear``, ``DiagonalNormal``,
``BernoulliLogits``, ``optim``) for the same math as whole-array NumPy.

The loop contract (``minivae.kernels`` checks it once, for every backend, before calling):

* arrays are C-contiguous and share one float dtype, float32 or float64; outputs are
  preallocated and written in place; absent optional arrays are empty stand-ins with a flag;
* activations are integer codes (``ACTIVATIONS`` order), scalars have the arrays' dtype;
* arithmetic stays in that dtype: constants are made as ``dtype.type(0.5)`` because numba,
  unlike NumPy, would promote ``float32 * 0.5`` to float64;
* NaN in an input reaches every output it touches; nothing raises on extreme values.

No loop calls a Python helper (numba could not compile the call): shared pieces such as
σ(l) = 1/(1 + a) or a/(1 + a) with a = e^(−|l|) are written out where they are used.

Verified by: tests/kernels/ (every backend against a NumPy oracle)
"""
from __future__ import annotations

import numpy as np

ACTIVATIONS = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "softplus")
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS = range(6)  # csrc/kernels.h's enum

KERNELS = (
    "bernoulli_log_prob", "bias_act_forward", "bias_act_backward",
    "reparameterize_kl_forward", "reparameterize_kl_backward",
    "adam_step", "sgd_step", "logsumexp_rows", "matmul_naive", "matmul_blocked",
)


# -- 1. Bernoulli log-likelihood from logits ------------------------------------------------
def bernoulli_log_prob(logits, x, want_grad, grad_logits, row_sums):
    """row_sums_i = Σ_j x_tj l_ij − softplus(l_ij); grad_logits_ij = x_tj − σ(l_ij) if
    want_grad; t = i mod R for targets x of R rows (R divides the logits' rows: an image's
    targets repeat under each of its samples, and are not copied for them).

    Math: log Bernoulli(x; σ(l)) = x·l − softplus(l) with softplus(l) = max(l, 0) +
    log1p(a), a = e^(−|l|) (never overflows); σ(l) = 1/(1 + a) for l ≥ 0, a/(1 + a) otherwise.

    Verified by: tests/kernels/test_bernoulli_log_prob.py::test_bernoulli_log_prob_matches_reference
    """
    zero, one = logits.dtype.type(0), logits.dtype.type(1)
    for i in range(logits.shape[0]):
        t = i % x.shape[0]
        total = zero
        for j in range(logits.shape[1]):
            l = logits[i, j]
            a = np.exp(-abs(l))
            total += x[t, j] * l - ((l if l > zero else zero) + np.log1p(a))
            if want_grad:
                inverse = one / (one + a)
                grad_logits[i, j] = x[t, j] - (inverse if l >= zero else a * inverse)
        row_sums[i] = total


# -- 2. bias + activation epilogue after a matmul -------------------------------------------
def bias_act_forward(h, bias, code, slope, out):
    """out_ij = act(h_ij + b_j); ``out`` may be ``h`` itself.

    Math: relu(p) = p·[p > 0] (NaN stays NaN); leaky_relu(p) = p·(1 if p > 0 else slope);
    σ(p) = 1/(1 + a) or a/(1 + a), a = e^(−|p|); softplus(p) = max(p, 0) + log1p(e^(−|p|)).
    One loop per activation, chosen once per row, so the compiled loops stay branch-free.

    Verified by: tests/kernels/test_bias_act.py::test_bias_act_matches_reference
    """
    zero, one = h.dtype.type(0), h.dtype.type(1)
    for i in range(h.shape[0]):
        if code == IDENTITY:
            for j in range(h.shape[1]):
                out[i, j] = h[i, j] + bias[j]
        elif code == RELU:
            for j in range(h.shape[1]):
                pre = h[i, j] + bias[j]
                out[i, j] = pre * (one if pre > zero else zero)
        elif code == LEAKY_RELU:
            for j in range(h.shape[1]):
                pre = h[i, j] + bias[j]
                out[i, j] = pre * (one if pre > zero else slope)
        elif code == TANH:
            for j in range(h.shape[1]):
                out[i, j] = np.tanh(h[i, j] + bias[j])
        elif code == SIGMOID:
            for j in range(h.shape[1]):
                pre = h[i, j] + bias[j]
                a = np.exp(-abs(pre))
                inverse = one / (one + a)
                out[i, j] = inverse if pre >= zero else a * inverse
        elif code == SOFTPLUS:
            for j in range(h.shape[1]):
                pre = h[i, j] + bias[j]
                out[i, j] = (pre if pre > zero else zero) + np.log1p(np.exp(-abs(pre)))


def bias_act_backward(y, grad_y, code, slope, grad_h, grad_bias):
    """grad_h = grad_y · act′, with act′ written in the output y; grad_bias = Σ_rows grad_h.

    Math: identity 1; relu [y > 0]; leaky_relu 1 or slope (y has the sign of the
    pre-activation); tanh 1 − y²; sigmoid y(1 − y); softplus σ(pre) = 1 − e^(−y) = −expm1(−y).
    The derivative multiplies rather than selects, so a NaN upstream gradient stays NaN.

    Verified by: tests/kernels/test_bias_act.py::test_bias_act_backward_matches_reference
    """
    zero, one = y.dtype.type(0), y.dtype.type(1)
    for j in range(y.shape[1]):
        grad_bias[j] = zero
    for i in range(y.shape[0]):
        if code == IDENTITY:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j]
        elif code == RELU:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j] * (one if y[i, j] > zero else zero)
        elif code == LEAKY_RELU:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j] * (one if y[i, j] > zero else slope)
        elif code == TANH:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j] * (one - y[i, j] * y[i, j])
        elif code == SIGMOID:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j] * (y[i, j] * (one - y[i, j]))
        elif code == SOFTPLUS:
            for j in range(y.shape[1]):
                grad_h[i, j] = grad_y[i, j] * -np.expm1(-y[i, j])
        for j in range(y.shape[1]):  # one row at a time, as NumPy's sum(axis=0) does
            grad_bias[j] += grad_h[i, j]


# -- 3. Gaussian reparameterization fused with the KL to N(0, I) ----------------------------
def reparameterize_kl_forward(loc, log_var, eps, z, kl, std):
    """σ = exp(½ log σ²), z = μ + σ ε, kl_i = ½ Σ_j (μ_ij² + σ_ij² − 1 − log σ_ij²).

    Math: the reparameterization trick and the closed-form KL(N(μ, σ²) ‖ N(0, I)) (Kingma &
    Welling 2014, appendix B) in one pass; σ is kept for the backward pass.

    Verified by: tests/kernels/test_reparameterize_kl.py::test_reparameterize_kl_matches_reference
    """
    zero, half, one = loc.dtype.type(0), loc.dtype.type(0.5), loc.dtype.type(1)
    for i in range(loc.shape[0]):
        total = zero
        for j in range(loc.shape[1]):
            mu, lv = loc[i, j], log_var[i, j]
            sigma = np.exp(half * lv)
            std[i, j] = sigma
            z[i, j] = mu + sigma * eps[i, j]
            total += mu * mu + sigma * sigma - one - lv
        kl[i] = half * total


def reparameterize_kl_backward(loc, eps, std, has_grad_z, grad_z, has_grad_kl, grad_kl,
                               grad_loc, grad_log_var):
    """Gradients with respect to (μ, log σ²) from the upstream gradients of z and kl.

    Math: ∂z/∂μ = 1, ∂z/∂log σ² = ½ σ ε;  ∂KL/∂μ = μ, ∂KL/∂log σ² = ½ (σ² − 1).  A missing
    upstream gradient (flag False) is zero and its arrays are not read (0 · ∞ would be NaN).

    Verified by:
    tests/kernels/test_reparameterize_kl.py::test_reparameterize_kl_backward_matches_reference
    """
    zero, half, one = loc.dtype.type(0), loc.dtype.type(0.5), loc.dtype.type(1)
    for i in range(loc.shape[0]):
        for j in range(loc.shape[1]):
            d_loc, d_log_var = zero, zero
            if has_grad_z:
                d_loc += grad_z[i, j]
                d_log_var += half * grad_z[i, j] * eps[i, j] * std[i, j]
            if has_grad_kl:
                d_loc += grad_kl[i] * loc[i, j]
                d_log_var += half * grad_kl[i] * (std[i, j] * std[i, j] - one)
            grad_loc[i, j] = d_loc
            grad_log_var[i, j] = d_log_var


# -- 4. optimizer updates over one flat buffer ----------------------------------------------
def adam_step(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
              step_size, root_correction):
    """One Adam update of the 1-D buffers param, m, v, in place (PyTorch's arithmetic).

    Math: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
          θ ← θ − step_size · m / (√v / root_correction + ε),
    with step_size = lr / (1 − β₁ᵗ) and root_correction = √(1 − β₂ᵗ): the same as
    θ − lr · m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ).

    Verified by: tests/kernels/test_optimizers.py::test_adam_step_matches_reference
    """
    for k in range(param.shape[0]):
        m_new = beta1 * m[k] + one_minus_beta1 * grad[k]
        v_new = beta2 * v[k] + one_minus_beta2 * grad[k] * grad[k]
        m[k] = m_new
        v[k] = v_new
        param[k] -= step_size * m_new / (np.sqrt(v_new) / root_correction + eps)


def sgd_step(param, grad, buf, lr, momentum, restart):
    """One SGD update with heavy-ball momentum, in place.

    Math: b ← g when ``restart`` (the first step, or μ = 0), else b ← μ b + g;  θ ← θ − lr · b.

    Verified by: tests/kernels/test_optimizers.py::test_sgd_step_matches_reference
    """
    if restart:
        for k in range(param.shape[0]):
            buf[k] = grad[k]
            param[k] -= lr * grad[k]
    else:
        for k in range(param.shape[0]):
            b = momentum * buf[k] + grad[k]
            buf[k] = b
            param[k] -= lr * b


# -- 5. row-wise log-sum-exp ---------------------------------------------------------------
def logsumexp_rows(a, out):
    """out_i = m_i + log Σ_j exp(a_ij − m_i), m_i the row maximum (0 when it is not finite).

    Math: shifting by the maximum keeps every exponent ≤ 0, so nothing overflows.  A row of
    all −∞ gives log 0 = −∞, a row holding +∞ gives +∞, and a NaN reaches the sum.  Rows have
    at least one column (the contract).

    Verified by: tests/kernels/test_logsumexp_rows.py::test_logsumexp_rows_matches_reference,
    ::test_logsumexp_rows_special_rows
    """
    zero, minus_infinity = a.dtype.type(0), a.dtype.type(-np.inf)
    for i in range(a.shape[0]):
        top = minus_infinity
        for j in range(a.shape[1]):
            top = a[i, j] if a[i, j] > top else top
        if not np.isfinite(top):
            top = zero
        total = zero
        for j in range(a.shape[1]):
            total += np.exp(a[i, j] - top)
        out[i] = np.log(total) + top


# -- 6. teaching kernels: matmul without BLAS -----------------------------------------------
def matmul_naive(a, b, c):
    """c = a b by the definition c_ij = Σ_k a_ik b_kj: loops i, j, k.

    The k loop walks a column of b, with a stride of a whole row: what matmul_blocked fixes.

    Verified by: tests/kernels/test_matmul.py::test_matmul_teaching_kernels_match_numpy
    """
    zero = c.dtype.type(0)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            total = zero
            for k in range(a.shape[1]):
                total += a[i, k] * b[k, j]
            c[i, j] = total


def matmul_blocked(a, b, block, c):
    """c = a b tile by tile (block × block), loops i, k, j inside a tile.

    Math: c_ij = Σ_tiles Σ_(k in tile) a_ik b_kj, the definition's sum reordered.  The
    innermost loop runs along rows of b and c, both contiguous, while the tiles stay in cache.

    Verified by: tests/kernels/test_matmul.py::test_matmul_teaching_kernels_match_numpy,
    ::test_matmul_blocked_default_block_covers_ragged_edges
    """
    n, inner, m = a.shape[0], a.shape[1], b.shape[1]
    zero = c.dtype.type(0)
    for i in range(n):
        for j in range(m):
            c[i, j] = zero
    for i0 in range(0, n, block):
        for k0 in range(0, inner, block):
            for j0 in range(0, m, block):
                for i in range(i0, min(i0 + block, n)):
                    for k in range(k0, min(k0 + block, inner)):
                        a_ik = a[i, k]
                        for j in range(j0, min(j0 + block, m)):
                            c[i, j] += a_ik * b[k, j]

"""The reference kernels as explicit loops, compiled to machine code by numba.

``reference.py`` states each kernel as a few whole-array NumPy expressions; every expression is a
separate pass over memory with its own temporary array.  Here each kernel is written the way a C
programmer would write it, one pass over the rows and columns that does all the arithmetic for an
element while it is in a register, and numba (an LLVM-based compiler for a subset of Python and
NumPy) turns the loops into machine code the first time a kernel sees a new dtype.  The
functions with the reference's names are thin Python wrappers: they allocate the outputs, turn
the activation name into an integer code and call the compiled loop.

What to expect from the compiler (measured on a 2-core AVX-512 x86-64 machine, float32):

* Loops made only of ``+ − × ÷`` and ``sqrt`` are vectorized by LLVM: Adam, SGD, the activation
  derivatives, relu and leaky_relu, the matmuls.  That needs ``error_model="numpy"`` (see
  ``_compile``); with numba's default every division tests for zero and nothing vectorizes.
  Adam over 652,824 parameters takes about 0.45 ms here against about 7 ms for the NumPy chain.
* The optimizer loops are serial on purpose.  ``prange`` with ``parallel=True`` halves Adam's
  time on an idle machine, but in a training step, right after an OpenBLAS matmul whose threads
  are still spinning, the two thread pools fight over the cores and Adam took 8 ms instead.
* Loops that call ``exp``, ``log1p``, ``tanh`` or ``expm1`` (Bernoulli, tanh/sigmoid/softplus,
  the reparameterization, logsumexp) run one element at a time through the C library's scalar
  functions: LLVM can only vectorize those calls with a vector math library (Intel's SVML), and
  the numba wheels on PyPI are built without one.  NumPy's own SIMD ``exp``/``log1p``/``tanh``
  are several times faster per element, so for these kernels the reference is as fast as this
  module or faster, and the C backend (vectorized through glibc's libmvec) is faster than both.
* ``fastmath=False`` everywhere: fast-math lets LLVM assume there are no NaNs or infinities, and
  the contract says NaN inputs propagate.

Arithmetic happens in the inputs' dtype, as in the reference: float32 arrays are computed in
float32 (constants are made with ``dtype.type(...)``, because numba, unlike NumPy, would promote
``float32 × 0.5`` to float64), and sums accumulate in float32 too, one term at a time, where NumPy
sums pairwise; the two agree to the rounding of the sum.

``cache=True`` stores the machine code next to this file (in ``__pycache__``), so only the
first process to call a kernel with a given dtype pays for compiling it.  Without numba the
module still imports (the loops then run as plain, very slow Python) and ``check_available``
raises ``ImportError``, which the dispatcher in ``minivae.kernels`` turns into a fallback.

Verified by: tests/test_kernels.py (every kernel against reference.py, for float32 and float64)
"""
from __future__ import annotations

import math

import numpy as np

from minivae.kernels.reference import ACTIVATIONS

try:
    import numba
except ImportError:  # an optional dependency: check_available() reports it
    numba = None


def _compile():
    if numba is None:
        return lambda function: function
    # error_model="numpy": x/0 gives ±inf or NaN as in NumPy instead of raising
    # ZeroDivisionError; without it every division carries a zero test, which stops LLVM from
    # vectorizing the loop.
    return numba.njit(cache=True, fastmath=False, error_model="numpy")


# Integer codes for the activations, in the order of reference.ACTIVATIONS.
IDENTITY, RELU, LEAKY_RELU, TANH, SIGMOID, SOFTPLUS = range(6)
_ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}


def check_available() -> None:
    """Raise ``ImportError`` when numba is not installed."""
    if numba is None:
        raise ImportError("numba is not installed (pip install 'numba>=0.60')")


# -- helpers for the wrappers ---------------------------------------------------------------
def _common_dtype(**arrays) -> np.dtype:
    """The one dtype, float32 or float64, that all the named arrays share.

    ``TypeError`` otherwise, as in the C backend: the engine never mixes dtypes, and promoting
    here would silently compute float32 work in float64.
    """
    (first_name, first), *rest = arrays.items()
    dtype = np.asarray(first).dtype
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{first_name} must be a float32 or float64 array, got dtype {dtype}")
    for name, array in rest:
        if np.asarray(array).dtype != dtype:
            raise TypeError(f"{name} must have the dtype of {first_name} ({dtype}), "
                            f"got {np.asarray(array).dtype}")
    return dtype


def _contiguous(array, dtype: np.dtype) -> np.ndarray:
    # One compiled layout per kernel: a strided input is copied once rather than compiled for.
    return np.ascontiguousarray(array, dtype=dtype)


def _require_shape(name: str, array: np.ndarray, shape: tuple) -> None:
    # The compiled loops do not check bounds, so a wrong shape would read or write out of bounds.
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")


def _require_2d(name: str, array: np.ndarray) -> None:
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {array.shape}")


def _activation_code(activation: str) -> int:
    try:
        return _ACTIVATION_CODES[activation]
    except (KeyError, TypeError):
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}") from None


def _no_array(dtype: np.dtype, ndim: int) -> np.ndarray:
    # Stands in for an absent optional array, so that one compiled version serves both cases.
    return np.empty((0,) * ndim, dtype=dtype)


# -- 1. Bernoulli log-likelihood from logits ------------------------------------------------
@_compile()
def _bernoulli_rows(logits, x, want_grad, grad_logits, sums):
    zero, one = logits.dtype.type(0), logits.dtype.type(1)
    for i in range(logits.shape[0]):
        total = zero
        for j in range(logits.shape[1]):
            logit = logits[i, j]
            a = math.exp(-abs(logit))
            softplus = (logit if logit > zero else zero) + math.log1p(a)
            if want_grad:
                sigmoid = one / (one + a) if logit >= zero else a / (one + a)
                grad_logits[i, j] = x[i, j] - sigmoid
            total += x[i, j] * logit - softplus
        sums[i] = total


def bernoulli_log_prob(logits: np.ndarray, x: np.ndarray,
                       grad_logits: np.ndarray | None = None) -> np.ndarray:
    """Row sums of x·l − softplus(l), and optionally x − σ(l) into ``grad_logits``; one pass.

    Math: log Bernoulli(x; σ(l)) = x·l − softplus(l), softplus(l) = max(l, 0) + log1p(e^(−|l|)),
    d/dl = x − σ(l) with σ(l) = 1/(1 + a) for l ≥ 0 and a/(1 + a) otherwise, a = e^(−|l|).

    Verified by: tests/test_kernels.py::test_bernoulli_log_prob_matches_reference
    """
    dtype = _common_dtype(logits=logits, x=x)
    logits, x = _contiguous(logits, dtype), _contiguous(x, dtype)
    _require_2d("logits", logits)
    _require_shape("x", x, logits.shape)
    want_grad = grad_logits is not None
    if want_grad:
        _common_dtype(logits=logits, grad_logits=grad_logits)
        _require_shape("grad_logits", grad_logits, logits.shape)
    else:
        grad_logits = _no_array(dtype, 2)
    sums = np.empty(logits.shape[0], dtype=dtype)
    _bernoulli_rows(logits, x, want_grad, grad_logits, sums)
    return sums


# -- 2. bias + activation epilogue after a matmul -------------------------------------------
@_compile()
def _activate_in_place(row, code, slope):
    # One loop per activation rather than a test per element: with the choice made outside the
    # loop, LLVM vectorizes the arithmetic ones (identity, relu, leaky_relu).
    zero, one = row.dtype.type(0), row.dtype.type(1)
    if code == RELU:
        for j in range(row.shape[0]):
            row[j] = row[j] * (one if row[j] > zero else zero)  # NaN · 0 stays NaN
    elif code == LEAKY_RELU:
        for j in range(row.shape[0]):
            row[j] = row[j] * (one if row[j] > zero else slope)
    elif code == TANH:
        for j in range(row.shape[0]):
            row[j] = math.tanh(row[j])
    elif code == SIGMOID:
        for j in range(row.shape[0]):
            a = math.exp(-abs(row[j]))
            row[j] = one / (one + a) if row[j] >= zero else a / (one + a)
    elif code == SOFTPLUS:
        for j in range(row.shape[0]):
            pre = row[j]
            row[j] = (pre if pre > zero else zero) + math.log1p(math.exp(-abs(pre)))


@_compile()
def _bias_act_rows(h, bias, code, slope, out):
    for i in range(h.shape[0]):
        for j in range(h.shape[1]):
            out[i, j] = h[i, j] + bias[j]
        _activate_in_place(out[i], code, slope)  # the row is still in cache


def bias_act_forward(h: np.ndarray, bias: np.ndarray, activation: str, slope: float = 0.01,
                     out: np.ndarray | None = None) -> np.ndarray:
    """y = act(h + b) for a (B, N) matmul output h and a bias b of shape (N,); ``out`` may be h.

    Math: relu(p) = p·[p > 0]; leaky_relu(p) = p·(1 if p > 0 else slope); sigmoid(p) = 1/(1 + a)
    for p ≥ 0 and a/(1 + a) otherwise, a = e^(−|p|); softplus(p) = max(p, 0) + log1p(e^(−|p|)).

    Verified by: tests/test_kernels.py::test_bias_act_matches_reference
    """
    code = _activation_code(activation)
    dtype = _common_dtype(h=h, bias=bias)
    h_in, bias = _contiguous(h, dtype), _contiguous(bias, dtype)
    _require_2d("h", h_in)
    _require_shape("bias", bias, h_in.shape[1:])
    if out is None:
        target = np.empty(h_in.shape, dtype=dtype)
    else:
        _require_shape("out", out, h_in.shape)
        # A strided or differently typed ``out`` is filled from a fresh array, as in the reference.
        direct = out.dtype == dtype and out.flags.c_contiguous and out.flags.writeable
        target = out if direct else np.empty(h_in.shape, dtype=dtype)
    _bias_act_rows(h_in, bias, code, dtype.type(slope), target)
    if out is None:
        return target
    if target is not out:
        out[...] = target
    return out


@_compile()
def _derivative_from_output(y_row, code, slope, derivative):
    # One loop per activation, as in _activate_in_place; all but softplus's vectorize.
    zero, one = y_row.dtype.type(0), y_row.dtype.type(1)
    if code == RELU:
        for j in range(y_row.shape[0]):
            derivative[j] = one if y_row[j] > zero else zero
    elif code == LEAKY_RELU:
        for j in range(y_row.shape[0]):
            derivative[j] = one if y_row[j] > zero else slope
    elif code == TANH:
        for j in range(y_row.shape[0]):
            derivative[j] = one - y_row[j] * y_row[j]
    elif code == SIGMOID:
        for j in range(y_row.shape[0]):
            derivative[j] = y_row[j] * (one - y_row[j])
    elif code == SOFTPLUS:
        for j in range(y_row.shape[0]):
            derivative[j] = -math.expm1(-y_row[j])
    else:
        for j in range(y_row.shape[0]):
            derivative[j] = one


@_compile()
def _bias_act_backward_rows(y, grad_y, code, slope, grad_h, grad_bias):
    derivative = np.empty(y.shape[1], dtype=y.dtype)  # one row of act'(·), reused
    for j in range(y.shape[1]):
        grad_bias[j] = y.dtype.type(0)
    for i in range(y.shape[0]):
        _derivative_from_output(y[i], code, slope, derivative)
        for j in range(y.shape[1]):
            g = grad_y[i, j] * derivative[j]
            grad_h[i, j] = g
            grad_bias[j] += g


def bias_act_backward(y: np.ndarray, grad_y: np.ndarray, activation: str,
                      slope: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of y = act(h + b): dh = grad_y · act'(·) and db = Σ_rows dh, in one pass.

    Math: act' from the output y: identity 1; relu [y > 0]; leaky_relu 1 or slope; tanh 1 − y²;
    sigmoid y(1 − y); softplus −expm1(−y).

    Verified by: tests/test_kernels.py::test_bias_act_backward_matches_reference
    """
    code = _activation_code(activation)
    dtype = _common_dtype(y=y, grad_y=grad_y)
    y, grad_y = _contiguous(y, dtype), _contiguous(grad_y, dtype)
    _require_2d("y", y)
    _require_shape("grad_y", grad_y, y.shape)
    grad_h = np.empty(y.shape, dtype=dtype)
    grad_bias = np.empty(y.shape[1], dtype=dtype)
    _bias_act_backward_rows(y, grad_y, code, dtype.type(slope), grad_h, grad_bias)
    return grad_h, grad_bias


# -- 3. Gaussian reparameterization fused with the KL to N(0, I) ----------------------------
@_compile()
def _reparameterize_kl_rows(loc, log_var, eps, z, kl, std):
    zero, half, one = loc.dtype.type(0), loc.dtype.type(0.5), loc.dtype.type(1)
    for i in range(loc.shape[0]):
        total = zero
        for j in range(loc.shape[1]):
            mu, lv = loc[i, j], log_var[i, j]
            sigma = math.exp(half * lv)
            std[i, j] = sigma
            z[i, j] = mu + sigma * eps[i, j]
            total += mu * mu + sigma * sigma - one - lv
        kl[i] = half * total


def reparameterize_kl_forward(loc: np.ndarray, log_var: np.ndarray,
                              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z = μ + σ ε with σ = exp(½ log σ²), and KL(N(μ, σ²) ‖ N(0, I)) per row, in one pass.

    Math: KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).  Returns (z (B, L), kl (B,), σ (B, L)).

    Verified by: tests/test_kernels.py::test_reparameterize_kl_matches_reference
    """
    dtype = _common_dtype(loc=loc, log_var=log_var, eps=eps)
    loc, log_var, eps = (_contiguous(a, dtype) for a in (loc, log_var, eps))
    _require_2d("loc", loc)
    _require_shape("log_var", log_var, loc.shape)
    _require_shape("eps", eps, loc.shape)
    z = np.empty(loc.shape, dtype=dtype)
    std = np.empty(loc.shape, dtype=dtype)
    kl = np.empty(loc.shape[0], dtype=dtype)
    _reparameterize_kl_rows(loc, log_var, eps, z, kl, std)
    return z, kl, std


@_compile()
def _reparameterize_kl_backward_rows(loc, eps, std, has_grad_z, grad_z, has_grad_kl, grad_kl,
                                     grad_loc, grad_log_var):
    zero, half, one = loc.dtype.type(0), loc.dtype.type(0.5), loc.dtype.type(1)
    for i in range(loc.shape[0]):
        for j in range(loc.shape[1]):
            d_loc, d_log_var = zero, zero
            if has_grad_z:
                g = grad_z[i, j]
                d_loc += g
                d_log_var += half * g * eps[i, j] * std[i, j]
            if has_grad_kl:
                g = grad_kl[i]
                sigma = std[i, j]
                d_loc += g * loc[i, j]
                d_log_var += half * g * (sigma * sigma - one)
            grad_loc[i, j] = d_loc
            grad_log_var[i, j] = d_log_var


def reparameterize_kl_backward(loc: np.ndarray, eps: np.ndarray, std: np.ndarray,
                               grad_z: np.ndarray | None,
                               grad_kl: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Gradients with respect to (μ, log σ²) from upstream gradients of z (B, L) and kl (B,).

    Math: ∂z/∂μ = 1, ∂z/∂log σ² = ½ σ ε;  ∂KL/∂μ = μ, ∂KL/∂log σ² = ½ (σ² − 1).
    A missing upstream gradient (None) counts as zero.

    Verified by: tests/test_kernels.py::test_reparameterize_kl_backward_matches_reference
    """
    present = {"loc": loc, "eps": eps, "std": std, "grad_z": grad_z, "grad_kl": grad_kl}
    dtype = _common_dtype(**{name: a for name, a in present.items() if a is not None})
    loc, eps, std = (_contiguous(a, dtype) for a in (loc, eps, std))
    _require_2d("loc", loc)
    _require_shape("eps", eps, loc.shape)
    _require_shape("std", std, loc.shape)
    has_grad_z, has_grad_kl = grad_z is not None, grad_kl is not None
    if grad_z is None:
        grad_z = _no_array(dtype, 2)
    else:
        grad_z = _contiguous(grad_z, dtype)
        _require_shape("grad_z", grad_z, loc.shape)
    if grad_kl is None:
        grad_kl = _no_array(dtype, 1)
    else:
        grad_kl = _contiguous(grad_kl, dtype)
        _require_shape("grad_kl", grad_kl, loc.shape[:1])
    grad_loc = np.empty(loc.shape, dtype=dtype)
    grad_log_var = np.empty(loc.shape, dtype=dtype)
    _reparameterize_kl_backward_rows(loc, eps, std, has_grad_z, grad_z, has_grad_kl, grad_kl,
                                     grad_loc, grad_log_var)
    return grad_loc, grad_log_var


# -- 4. optimizer updates over one flat buffer ----------------------------------------------
@_compile()
def _adam_update(param, grad, m, v, step_size, root_correction, beta1, one_minus_beta1,
                 beta2, one_minus_beta2, eps):
    for i in range(param.shape[0]):
        g = grad[i]
        m_i = m[i] * beta1 + one_minus_beta1 * g
        v_i = v[i] * beta2 + one_minus_beta2 * g * g
        m[i] = m_i
        v[i] = v_i
        param[i] -= step_size * m_i / (math.sqrt(v_i) / root_correction + eps)


def _require_buffers(param: np.ndarray, **others: np.ndarray) -> None:
    _common_dtype(param=param, **others)
    _require_shape("param", param, param.shape[:1])
    for name, array in others.items():
        _require_shape(name, array, param.shape)


def adam_step(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float,
              beta1: float, beta2: float, eps: float, step: int) -> None:
    """One Adam update, in place, of 1-D buffers param, m and v (Kingma & Ba 2015, PyTorch's form).

    Math: m ← β₁m + (1 − β₁)g;  v ← β₂v + (1 − β₂)g²;
          θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε).

    Verified by: tests/test_kernels.py::test_adam_step_matches_reference
    """
    _require_buffers(param, grad=grad, m=m, v=v)
    scalar = param.dtype.type
    _adam_update(param, grad, m, v, scalar(lr / (1 - beta1**step)),
                 scalar(math.sqrt(1 - beta2**step)), scalar(beta1), scalar(1 - beta1),
                 scalar(beta2), scalar(1 - beta2), scalar(eps))


@_compile()
def _sgd_update(param, grad, buf, lr, momentum, restart):
    for i in range(param.shape[0]):
        b = grad[i] if restart else buf[i] * momentum + grad[i]
        buf[i] = b
        param[i] -= lr * b


def sgd_step(param: np.ndarray, grad: np.ndarray, buf: np.ndarray, lr: float,
             momentum: float, first_step: bool) -> None:
    """One SGD update with heavy-ball momentum, in place.

    Math: b ← g on the first step, else b ← μ b + g;  θ ← θ − lr · b.  (μ = 0: θ ← θ − lr · g.)

    Verified by: tests/test_kernels.py::test_sgd_step_matches_reference
    """
    _require_buffers(param, grad=grad, buf=buf)
    scalar = param.dtype.type
    _sgd_update(param, grad, buf, scalar(lr), scalar(momentum),
                bool(first_step or momentum == 0))


# -- 5. row-wise log-sum-exp ---------------------------------------------------------------
@_compile()
def _logsumexp_rows(a, out):
    zero = a.dtype.type(0)
    for i in range(a.shape[0]):
        # The row maximum, NaN-propagating like np.max: once NaN, `value > nan` never replaces it.
        shift = a[i, 0]
        for j in range(1, a.shape[1]):
            value = a[i, j]
            if value > shift or value != value:
                shift = value
        if not math.isfinite(shift):
            shift = zero
        total = zero
        for j in range(a.shape[1]):
            total += math.exp(a[i, j] - shift)
        out[i] = math.log(total) + shift


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_j exp(a_ij) for each row i, shifted by the row maximum (no overflow).

    Math: lse(a) = m + log Σ_j exp(a_j − m) with m = max_j a_j (m = 0 when it is ±∞ or NaN).
    A row of all −∞ gives −∞; a row containing +∞ gives +∞; NaN propagates.

    Verified by: tests/test_kernels.py::test_logsumexp_rows_matches_reference
    """
    a = _contiguous(a, _common_dtype(a=a))
    _require_2d("a", a)
    if a.shape[1] == 0:
        raise ValueError(f"a must have at least one column to take a row maximum, got {a.shape}")
    out = np.empty(a.shape[0], dtype=a.dtype)
    _logsumexp_rows(a, out)
    return out


# -- 6. teaching kernels: matmul without BLAS -----------------------------------------------
@_compile()
def _matmul_naive(a, b, c):
    zero = c.dtype.type(0)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            total = zero
            for p in range(a.shape[1]):
                total += a[i, p] * b[p, j]
            c[i, j] = total


@_compile()
def _matmul_blocked(a, b, block, c):
    n, k, m = a.shape[0], a.shape[1], b.shape[1]
    zero = c.dtype.type(0)
    for i in range(n):
        for j in range(m):
            c[i, j] = zero
    for i0 in range(0, n, block):
        for p0 in range(0, k, block):
            for j0 in range(0, m, block):
                # One tile: row i of A's tile times B's tile, accumulated into C's tile; the
                # innermost loop walks rows of B and C contiguously, so it vectorizes.
                for i in range(i0, min(i0 + block, n)):
                    for p in range(p0, min(p0 + block, k)):
                        a_ip = a[i, p]
                        for j in range(j0, min(j0 + block, m)):
                            c[i, j] += a_ip * b[p, j]


def _matmul_operands(a, b) -> tuple[np.ndarray, np.ndarray]:
    dtype = _common_dtype(a=a, b=b)
    a, b = _contiguous(a, dtype), _contiguous(b, dtype)
    _require_2d("a", a)
    _require_2d("b", b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"b must have {a.shape[1]} rows (a's columns), got shape {b.shape}")
    return a, b


def matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C = A B by the definition C_ij = Σ_k A_ik B_kj, one dot product per entry.

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    a, b = _matmul_operands(a, b)
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _matmul_naive(a, b, c)
    return c


def matmul_blocked(a: np.ndarray, b: np.ndarray, block: int = 64) -> np.ndarray:
    """C = A B computed tile by tile (block × block), so each tile stays in cache.

    Math: C_ij = Σ_tiles Σ_(k in tile) A_ik B_kj; the same sum as the definition, reordered.

    Verified by: tests/test_kernels.py::test_matmul_teaching_kernels_match_numpy
    """
    if int(block) != block or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    a, b = _matmul_operands(a, b)
    c = np.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
    _matmul_blocked(a, b, int(block), c)
    return c

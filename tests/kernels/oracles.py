"""What the tests of every kernel share: a NumPy oracle for each kernel, comparison up to
rounding, and inputs in three memory layouts.

The backends ("python", "numba", "c") come from conftest's ``every_backend`` fixture (through
``backend``) and are skipped, not dropped, where they cannot load, so the test ids are the same
everywhere.  The oracle is written here as whole-array NumPy, independently of the loops it
checks.  The Python loops take about a microsecond per element, so their tests draw smaller
buffers and matrices.

Tolerances.  Loops and oracle evaluate the same formulas in the same dtype, but not in the
same order (NumPy sums pairwise, loops sum one term at a time; NumPy's SIMD exp/tanh and
libm's differ in the last bits), so results are compared up to rounding:
|actual − expected| ≤ rtol·|expected| + 4·n·ε·scale, where ε is the dtype's machine epsilon,
``scale`` the magnitude of what was added up (Σ|terms| for a sum) and n the number of terms
(the classical bound for summing n terms one after the other is (n − 1)·ε·Σ|terms|).
"""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
from hypothesis import HealthCheck, settings

from minivae.kernels import reference

DTYPES = (np.float32, np.float64)
ACTIVATIONS = reference.ACTIVATIONS
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}  # 1e-10: exp, log1p, tanh
RTOL_ARITHMETIC = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}  # + − × ÷ √ only


# The backend is set once per test (a function-scoped fixture) and serves all its examples.
per_backend = settings(suppress_health_check=[HealthCheck.too_slow,
                                              HealthCheck.function_scoped_fixture])


# -- the oracle: each kernel as whole-array NumPy ----------------------------------------------


def oracle_bernoulli_log_prob(logits, x):
    """(Σ_j x·l − softplus(l), x − σ(l)), softplus(l) = max(l, 0) + log1p(e^(−|l|))."""
    a = np.exp(-np.abs(logits))
    softplus = np.maximum(logits, 0) + np.log1p(a)
    sigmoid = np.where(logits >= 0, 1 / (1 + a), a / (1 + a))
    return (x * logits - softplus).sum(axis=1), x - sigmoid


def oracle_bias_act_forward(h, bias, activation, slope=0.01):
    pre = h + bias
    with np.errstate(over="ignore"):
        return {
            "identity": lambda: pre,
            "relu": lambda: np.maximum(pre, 0),
            "leaky_relu": lambda: np.where(pre > 0, pre, pre * pre.dtype.type(slope)),
            "tanh": lambda: np.tanh(pre),
            "sigmoid": lambda: np.exp(-np.logaddexp(0, -pre)),
            "softplus": lambda: np.logaddexp(0, pre),
        }[activation]()


def oracle_derivative_from_output(y, activation, slope=0.01):
    """act′(pre) in terms of y = act(pre): 1, [y > 0], 1 or slope, 1 − y², y(1 − y), −expm1(−y)."""
    return {
        "identity": lambda: np.ones_like(y),
        "relu": lambda: (y > 0).astype(y.dtype),
        "leaky_relu": lambda: np.where(y > 0, 1, slope).astype(y.dtype),
        "tanh": lambda: 1 - y * y,
        "sigmoid": lambda: y * (1 - y),
        "softplus": lambda: -np.expm1(-y),
    }[activation]()


def oracle_bias_act_backward(y, grad_y, activation, slope=0.01):
    grad_h = grad_y * oracle_derivative_from_output(y, activation, slope)
    return grad_h, grad_h.sum(axis=0)


def oracle_reparameterize_kl_forward(loc, log_var, eps):
    std = np.exp(0.5 * log_var)
    return loc + std * eps, 0.5 * (loc * loc + std * std - 1 - log_var).sum(axis=1), std


def oracle_reparameterize_kl_backward(loc, eps, std, grad_z, grad_kl):
    grad_loc, grad_log_var = np.zeros_like(loc), np.zeros_like(loc)
    if grad_z is not None:
        grad_loc += grad_z
        grad_log_var += 0.5 * grad_z * eps * std
    if grad_kl is not None:
        grad_loc += grad_kl[:, None] * loc
        grad_log_var += 0.5 * grad_kl[:, None] * (std * std - 1)
    return grad_loc, grad_log_var


def oracle_adam_step(param, grad, m, v, lr, beta1, beta2, eps, step):
    """In place: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², θ ← θ − lr m̂ / (√v̂ + ε)."""
    step_size = lr / (1 - beta1**step)
    root_correction = float(np.sqrt(1 - beta2**step))  # a Python float: keeps float32 float32
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    param -= step_size * m / (np.sqrt(v) / root_correction + eps)


def oracle_sgd_step(param, grad, buf, lr, momentum, first_step):
    if first_step or momentum == 0:
        buf[...] = grad
    else:
        buf *= momentum
        buf += grad
    param -= lr * buf


def oracle_logsumexp_rows(a):
    m = a.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(a.dtype)
    with np.errstate(divide="ignore", over="ignore"):  # exp(+∞ − 0) and log 0: the answers
        return np.log(np.exp(a - m).sum(axis=1)) + m[:, 0]


# -- comparing up to rounding ------------------------------------------------------------------


def assert_matches(actual, expected, scale=None, terms: int = 1, rtol=None) -> None:
    """``actual`` is ``expected`` up to rounding, with the same dtype, NaNs and infinities.

    The tolerance is rtol·|expected| + 4·terms·ε·scale + 16·tiny (``scale`` defaults to
    |expected|; ``tiny``, the smallest normal number, covers subnormal results).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    info = np.finfo(expected.dtype)
    rtol = RTOL[expected.dtype] if rtol is None else rtol[expected.dtype]
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN in different places")
    infinite = np.isinf(e)
    np.testing.assert_array_equal(a[infinite], e[infinite], err_msg="infinities differ")
    finite = np.isfinite(e)
    scale = np.abs(e) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), e.shape)
    tolerance = rtol * np.abs(e) + 4 * terms * float(info.eps) * scale + 16 * float(info.tiny)
    with np.errstate(invalid="ignore"):  # inf − inf where both are infinite: checked above
        excess = np.where(finite, np.abs(a - e) - tolerance, -np.inf)
    if excess.size and excess.max() > 0:
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise AssertionError(f"mismatch at {worst}: {a[worst]!r} vs expected {e[worst]!r} "
                             f"(tolerance {tolerance[worst]:.3g})")


def assert_fresh_output(array: np.ndarray, dtype) -> None:
    assert array.dtype == np.dtype(dtype), f"dtype {array.dtype}, expected {np.dtype(dtype)}"
    assert array.flags.c_contiguous, "outputs must be C-contiguous"


# -- inputs: random shapes, both dtypes, three memory layouts ----------------------------------

LAYOUTS = ("contiguous", "every_other_column", "transposed")


def in_layout(array: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout: a strided view or a transposed (F-order) one."""
    if layout == "every_other_column":
        wide = np.full((array.shape[0], 2 * array.shape[-1]), np.nan, dtype=array.dtype)
        wide[:, ::2] = array
        view = wide[:, ::2]
        return view if array.ndim == 2 else view[0]
    if layout == "transposed" and array.ndim == 2:
        return np.ascontiguousarray(array.T).T
    return array.copy()


@st.composite
def arrays(draw, dtype, shape, low: float, high: float, layout: bool = True):
    """A float array of ``dtype`` with entries in [low, high], in a drawn memory layout."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    elements = st.floats(low, high, width=width, allow_nan=False, allow_infinity=False)
    values = draw(hnp.arrays(dtype, shape, elements=elements))
    if not layout:
        return values
    if values.ndim == 1:
        values = values[None, :]
        return in_layout(values, draw(st.sampled_from(LAYOUTS[:2])))[0]
    return in_layout(values, draw(st.sampled_from(LAYOUTS)))


dtypes = st.sampled_from(DTYPES)


rows = st.integers(1, 17)


cols = st.integers(1, 33)

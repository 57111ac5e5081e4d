"""Every kernel backend, driven through ``minivae.kernels``, against a NumPy oracle; the
contract its dispatcher checks; and the dispatcher itself (backends, ``enabled``, ``composed``).

The backends ("python", "numba", "c") come from conftest's ``every_backend`` fixture and are
skipped, not dropped, where they cannot load, so the test ids are the same everywhere.  The
oracle is written here as whole-array NumPy, independently of the loops it checks.  The Python
loops take about a microsecond per element, so their tests draw smaller buffers and matrices.

Tolerances.  Loops and oracle evaluate the same formulas in the same dtype, but not in the
same order (NumPy sums pairwise, loops sum one term at a time; NumPy's SIMD exp/tanh and
libm's differ in the last bits), so results are compared up to rounding:
|actual − expected| ≤ rtol·|expected| + 4·n·ε·scale, where ε is the dtype's machine epsilon,
``scale`` the magnitude of what was added up (Σ|terms| for a sum) and n the number of terms
(the classical bound for summing n terms one after the other is (n − 1)·ε·Σ|terms|).
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from minivae import kernels
from minivae.engine.gradcheck import gradcheck
from minivae.engine.tensor import Tensor
from minivae.kernels import reference

DTYPES = (np.float32, np.float64)
ACTIVATIONS = reference.ACTIVATIONS
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}  # 1e-10: exp, log1p, tanh
RTOL_ARITHMETIC = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}  # + − × ÷ √ only
# The backend is set once per test (a function-scoped fixture) and serves all its examples.
per_backend = settings(suppress_health_check=[HealthCheck.too_slow,
                                              HealthCheck.function_scoped_fixture])


@pytest.fixture
def backend(every_backend):
    """The name of the backend every kernel call of the test runs on."""
    return every_backend


@pytest.fixture
def restore_dispatch():
    """Put the dispatcher back as it was (modules, caches, "auto") after the test."""
    saved = [dict(table) for table in (kernels._MODULES, kernels._loaded, kernels._failed)]
    yield
    for table, copy in zip((kernels._MODULES, kernels._loaded, kernels._failed), saved):
        table.clear()
        table.update(copy)
    kernels.set_backend("auto")


# -- the oracle: each kernel as whole-array NumPy ---------------------------------------------
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


# -- comparing up to rounding ---------------------------------------------------------------
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


# -- inputs: random shapes, both dtypes, three memory layouts --------------------------------
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


# -- 1. Bernoulli log-likelihood ------------------------------------------------------------
@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols, want_grad=st.booleans())
def test_bernoulli_log_prob_matches_reference(backend, data, dtype, n_rows, n_cols, want_grad):
    logits = data.draw(arrays(dtype, (n_rows, n_cols), -1e4, 1e4), label="logits")
    x = data.draw(arrays(dtype, (n_rows, n_cols), 0.0, 1.0), label="x")
    grad = np.empty((n_rows, n_cols), dtype) if want_grad else None
    result = kernels.bernoulli_log_prob(logits, x, grad)
    expected, expected_grad = oracle_bernoulli_log_prob(logits, x)

    assert_fresh_output(result, dtype)
    l64, x64 = logits.astype(np.float64), x.astype(np.float64)
    magnitude = (np.abs(x64 * l64) + np.maximum(l64, 0) + np.log1p(np.exp(-np.abs(l64)))).sum(1)
    assert_matches(result, expected, scale=magnitude, terms=n_cols)
    assert np.all(np.isfinite(result))
    if want_grad:
        assert_matches(grad, expected_grad, scale=np.abs(x64) + 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bernoulli_log_prob_extremes_and_nan(backend, dtype):
    logits = np.array([[1e4, -1e4, 0.0, 30.0], [-1e4, 1e4, -30.0, 0.5], [np.nan, 1.0, 2.0, 3.0],
                       [1.0, 2.0, 3.0, -4.0], [-30.0, -40.0, -50.0, -60.0]], dtype=dtype)
    x = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]],
                 dtype=dtype)
    grad = np.empty_like(logits)
    sums = kernels.bernoulli_log_prob(logits, x, grad)

    # Row 0: x = 1 at l = 1e4 and x = 0 at l = −1e4 are certain, which leaves
    # log σ(0) + log(1 − σ(30)) = −log 2 − softplus(30).  Row 1 has the two impossible
    # outcomes, −1e4 each, then log(1 − σ(−30)) and log σ(0.5).
    assert np.isclose(sums[0], -np.log(2) - 30 - np.log1p(np.exp(-30.0)), rtol=1e-6)
    assert np.isclose(sums[1], -2e4 - np.log1p(np.exp(-30.0)) + 0.5 - np.logaddexp(0, 0.5),
                      rtol=1e-6)
    # Row 4: near-certain zeros; log1p keeps the tiny −Σ e^l that log(1 + e^l) would round to 0.
    assert np.isclose(sums[4], -np.exp([-30.0, -40.0, -50.0, -60.0]).sum(), rtol=1e-6, atol=0)
    assert np.isnan(sums[2]) and np.all(np.isfinite(sums[[0, 1, 3, 4]]))
    assert np.isnan(grad[2, 0]) and np.all(np.isfinite(np.delete(grad.ravel(), 8)))
    np.testing.assert_array_equal(grad[0, :2], [0, 0])
    np.testing.assert_array_equal(grad[1, :2], [1, -1])
    expected, expected_grad = oracle_bernoulli_log_prob(logits, x)
    assert_matches(sums[:4], expected[:4], scale=4e4, terms=4)
    assert_matches(sums[4:], expected[4:])
    assert_matches(grad, expected_grad, scale=1)


# -- 2. bias + activation ---------------------------------------------------------------------
@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols,
       activation=st.sampled_from(ACTIVATIONS), slope=st.floats(0.001, 0.5),
       out_mode=st.sampled_from(["new", "out", "in_place"]))
def test_bias_act_matches_reference(backend, data, dtype, n_rows, n_cols, activation, slope,
                                    out_mode):
    h = data.draw(arrays(dtype, (n_rows, n_cols), -100.0, 100.0), label="h")
    bias = data.draw(arrays(dtype, (n_cols,), -10.0, 10.0), label="bias")
    expected = oracle_bias_act_forward(h, bias, activation, slope)
    if out_mode == "new":
        result = kernels.bias_act_forward(h, bias, activation, slope)
        assert_fresh_output(result, dtype)
    else:
        out = h if out_mode == "in_place" else in_layout(np.zeros_like(expected), "transposed")
        result = kernels.bias_act_forward(h, bias, activation, slope, out=out)
        assert result is out
    # h + b rounds the same way everywhere; tanh, σ and softplus must keep their relative
    # accuracy even where they are tiny (log1p, not log(1 + ·)).
    assert_matches(result, expected)


@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols,
       activation=st.sampled_from(ACTIVATIONS), slope=st.floats(0.001, 0.5))
def test_bias_act_backward_matches_reference(backend, data, dtype, n_rows, n_cols, activation,
                                             slope):
    pre = data.draw(arrays(dtype, (n_rows, n_cols), -20.0, 20.0, layout=False), label="pre")
    y = in_layout(oracle_bias_act_forward(pre, np.zeros(n_cols, dtype), activation, slope),
                  data.draw(st.sampled_from(LAYOUTS), label="layout of y"))
    grad_y = data.draw(arrays(dtype, (n_rows, n_cols), -5.0, 5.0), label="grad_y")
    grad_h, grad_bias = kernels.bias_act_backward(y, grad_y, activation, slope)
    expected_h, expected_bias = oracle_bias_act_backward(y, grad_y, activation, slope)

    assert_fresh_output(grad_h, dtype)
    assert_fresh_output(grad_bias, dtype)
    # 1 − y² and y(1 − y) cancel near |y| = 1, where a fused multiply-add (allowed) rounds
    # differently: scale by their operands.  The other derivatives are accurate to ε relative.
    y64, g64 = y.astype(np.float64), np.abs(grad_y.astype(np.float64))
    operand_scale = g64 * {
        "tanh": 1 + y64 * y64, "sigmoid": np.abs(y64) + y64 * y64,
    }.get(activation, np.abs(oracle_derivative_from_output(y64, activation, slope)))
    assert_matches(grad_h, expected_h, scale=operand_scale)
    assert_matches(grad_bias, expected_bias, scale=operand_scale.sum(0), terms=n_rows)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_nan_stays_in_its_row(backend, dtype, activation):
    rng = np.random.default_rng(1)
    h = rng.standard_normal((4, 5)).astype(dtype)
    h[2, 3] = np.nan
    y = kernels.bias_act_forward(h, rng.standard_normal(5).astype(dtype), activation)
    assert np.isnan(y[2, 3])
    assert np.isfinite(np.delete(y.ravel(), 13)).all()

    grad_y = rng.standard_normal((4, 5)).astype(dtype)
    grad_y[1, 0] = np.nan
    grad_h, grad_bias = kernels.bias_act_backward(np.tanh(h), grad_y, activation)
    assert np.isnan(grad_h[1, 0]) and np.isnan(grad_bias[0])
    assert np.isfinite(grad_h[[0, 3]]).all() and np.isfinite(grad_bias[[1, 2, 4]]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_act_extremes(backend, dtype):
    # e^(−100) is subnormal in float32 and e^(−740) in float64: σ must not compute 1/(1 + e^(−p)),
    # whose e^(100) (float32) or e^(740) (float64) overflows to give exactly 0.
    far = 100.0 if dtype == np.float32 else 740.0
    pre = np.array([[1e4, -1e4, far, -far]], dtype=dtype)
    zero_bias = np.zeros(4, dtype=dtype)
    expected = {
        "sigmoid": [1, 0, 1, np.exp(-far)], "softplus": [1e4, 0, far, np.exp(-far)],
        "tanh": [1, -1, 1, -1], "relu": [1e4, 0, far, 0], "identity": [1e4, -1e4, far, -far],
        "leaky_relu": [1e4, -1e2, far, -far / 100],
    }
    for activation, values in expected.items():
        result = kernels.bias_act_forward(pre, zero_bias, activation)
        assert_matches(result, np.array([values], dtype=dtype), rtol={np.dtype(dtype): 1e-2})
        assert np.all(np.isfinite(result)), activation
    assert kernels.bias_act_forward(pre, zero_bias, "sigmoid")[0, 3] > 0


def test_bias_act_rejects_an_unknown_activation(backend):
    with pytest.raises(ValueError, match="activation"):
        kernels.bias_act_forward(np.ones((2, 2)), np.ones(2), "gelu")


# -- 3. reparameterization + KL -----------------------------------------------------------------
@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols)
def test_reparameterize_kl_matches_reference(backend, data, dtype, n_rows, n_cols):
    shape = (n_rows, n_cols)
    loc = data.draw(arrays(dtype, shape, -1e3, 1e3), label="loc")
    log_var = data.draw(arrays(dtype, shape, -50.0, 50.0), label="log_var")
    eps = data.draw(arrays(dtype, shape, -5.0, 5.0), label="eps")
    z, kl, std = kernels.reparameterize_kl_forward(loc, log_var, eps)
    expected_z, expected_kl, expected_std = oracle_reparameterize_kl_forward(loc, log_var, eps)

    for output in (z, kl, std):
        assert_fresh_output(output, dtype)
        assert np.all(np.isfinite(output))
    sigma, mu = expected_std.astype(np.float64), loc.astype(np.float64)
    assert_matches(std, expected_std)
    assert_matches(z, expected_z, scale=np.abs(mu) + np.abs(sigma * eps))
    terms = mu * mu + sigma * sigma + 1 + np.abs(log_var.astype(np.float64))
    assert_matches(kl, expected_kl, scale=terms.sum(1), terms=n_cols)


@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols,
       upstream=st.sampled_from(["both", "z only", "kl only", "none"]))
def test_reparameterize_kl_backward_matches_reference(backend, data, dtype, n_rows, n_cols,
                                                      upstream):
    shape = (n_rows, n_cols)
    loc = data.draw(arrays(dtype, shape, -100.0, 100.0), label="loc")
    log_var = data.draw(arrays(dtype, shape, -50.0, 50.0, layout=False), label="log_var")
    eps = data.draw(arrays(dtype, shape, -5.0, 5.0), label="eps")
    std = in_layout(np.exp(log_var / 2), data.draw(st.sampled_from(LAYOUTS), label="std layout"))
    grad_z = data.draw(arrays(dtype, shape, -5.0, 5.0), label="grad_z")
    grad_kl = data.draw(arrays(dtype, (n_rows,), -5.0, 5.0), label="grad_kl")
    grad_z = grad_z if upstream in ("both", "z only") else None
    grad_kl = grad_kl if upstream in ("both", "kl only") else None
    grad_loc, grad_log_var = kernels.reparameterize_kl_backward(loc, eps, std, grad_z, grad_kl)
    expected_loc, expected_log_var = oracle_reparameterize_kl_backward(loc, eps, std, grad_z,
                                                                       grad_kl)

    assert_fresh_output(grad_loc, dtype)
    assert_fresh_output(grad_log_var, dtype)
    s64, gz = std.astype(np.float64), 0.0 if grad_z is None else np.abs(grad_z.astype(np.float64))
    gk = 0.0 if grad_kl is None else np.abs(grad_kl.astype(np.float64))[:, None]
    assert_matches(grad_loc, expected_loc, scale=gz + gk * np.abs(loc.astype(np.float64)))
    assert_matches(grad_log_var, expected_log_var,
                   scale=gz * np.abs(eps.astype(np.float64)) * s64 + gk * (s64 * s64 + 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reparameterize_kl_extremes_and_nan(backend, dtype):
    loc = np.array([[0.0, 1.0], [2.0, -1.0], [np.nan, 0.5]], dtype=dtype)
    log_var = np.array([[50.0, -50.0], [0.0, 0.0], [1.0, 1.0]], dtype=dtype)
    eps = np.ones((3, 2), dtype=dtype)
    z, kl, std = kernels.reparameterize_kl_forward(loc, log_var, eps)
    assert np.isfinite(z[:2]).all() and np.isfinite(kl[:2]).all() and np.isfinite(std).all()
    # KL of row 1 by hand: ½ ((4 + 1 − 1 − 0) + (1 + 1 − 1 − 0)) = 2.5.
    assert kl[1] == pytest.approx(2.5, rel=1e-6)
    assert np.isnan(z[2, 0]) and np.isnan(kl[2]) and np.isfinite(z[2, 1])
    grad_loc, grad_log_var = kernels.reparameterize_kl_backward(loc, eps, std, np.ones_like(z),
                                                                np.ones_like(kl))
    assert np.isfinite(grad_loc[:2]).all() and np.isfinite(grad_log_var[:2]).all()
    assert np.isnan(grad_loc[2, 0]) and np.isfinite(grad_log_var[2]).all()


# -- 4. optimizer updates -----------------------------------------------------------------------
def flat_buffers(dtype, size: int, seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(size) * 10.0 ** rng.uniform(-3, 1)).astype(dtype)
            for _ in range(n)]


def buffer_sizes(backend: str):
    return st.integers(1, 200 if backend == "python" else 2000)


@per_backend
@given(data=st.data(), dtype=dtypes, seed=st.integers(0, 2**16), steps=st.integers(1, 6),
       lr=st.floats(1e-4, 1e-1), beta1=st.floats(0.0, 0.99), beta2=st.floats(0.5, 0.9999),
       eps=st.sampled_from([1e-8, 1e-3]))
def test_adam_step_matches_reference(backend, data, dtype, seed, steps, lr, beta1, beta2, eps):
    size = data.draw(buffer_sizes(backend), label="size")
    param, *grads = flat_buffers(dtype, size, seed, steps + 1)
    param_m_v = [param.copy(), np.zeros_like(param), np.zeros_like(param)]
    expected = [param.copy(), np.zeros_like(param), np.zeros_like(param)]
    moves = np.zeros(size)  # Σ_t |θ_t − θ_(t−1)|: each step's rounding is relative to its move
    for step, grad in enumerate(grads, start=1):
        theta, m, v = param_m_v
        assert kernels.adam_step(theta, grad, m, v, lr, beta1, beta2, eps, step) is None
        before = expected[0].astype(np.float64)
        oracle_adam_step(expected[0], grad, expected[1], expected[2], lr, beta1, beta2, eps,
                         step)
        moves += np.abs(expected[0] - before)
    for array in param_m_v:
        assert array.dtype == np.dtype(dtype)
    abs_grads = np.abs(np.array(grads, dtype=np.float64))
    assert_matches(param_m_v[0], expected[0], scale=np.abs(param.astype(np.float64)) + moves,
                   terms=steps, rtol=RTOL_ARITHMETIC)
    assert_matches(param_m_v[1], expected[1], scale=abs_grads.sum(0), terms=steps,
                   rtol=RTOL_ARITHMETIC)
    assert_matches(param_m_v[2], expected[2], scale=(abs_grads**2).sum(0), terms=steps,
                   rtol=RTOL_ARITHMETIC)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step_zero_over_zero_is_nan_not_an_error(backend, dtype):
    # ε = 0 with a zero gradient: m/(√v + ε) = 0/0.  NumPy gives NaN; so must every backend.
    param, zeros = np.ones(5, dtype=dtype), np.zeros(5, dtype=dtype)
    kernels.adam_step(param, zeros, zeros.copy(), zeros.copy(), 0.1, 0.9, 0.999, 0.0, 1)
    assert np.isnan(param).all()


@per_backend
@given(data=st.data(), dtype=dtypes, seed=st.integers(0, 2**16), steps=st.integers(1, 6),
       lr=st.floats(1e-4, 1.0), momentum=st.sampled_from([0.0, 0.5, 0.9, 0.99]))
def test_sgd_step_matches_reference(backend, data, dtype, seed, steps, lr, momentum):
    size = data.draw(buffer_sizes(backend), label="size")
    param, *grads = flat_buffers(dtype, size, seed, steps + 1)
    mine = [param.copy(), np.full_like(param, np.nan)]  # the first step must ignore the buffer
    theirs = [param.copy(), np.full_like(param, np.nan)]
    for step, grad in enumerate(grads):
        assert kernels.sgd_step(mine[0], grad, mine[1], lr, momentum, step == 0) is None
        oracle_sgd_step(theirs[0], grad, theirs[1], lr, momentum, step == 0)
    for array in mine:
        assert array.dtype == np.dtype(dtype) and np.isfinite(array).all()
    grad_scale = sum(np.abs(g.astype(np.float64)) for g in grads)
    assert_matches(mine[1], theirs[1], scale=grad_scale, terms=steps, rtol=RTOL_ARITHMETIC)
    assert_matches(mine[0], theirs[0], scale=np.abs(param) + lr * steps * grad_scale,
                   terms=steps, rtol=RTOL_ARITHMETIC)


# -- 5. logsumexp ---------------------------------------------------------------------------------
@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols)
def test_logsumexp_rows_matches_reference(backend, data, dtype, n_rows, n_cols):
    width = 32 if dtype == np.float32 else 64
    elements = st.one_of(st.floats(-1e4, 1e4, width=width),
                         st.sampled_from([-np.inf, np.inf, np.nan]))
    values = data.draw(hnp.arrays(dtype, (n_rows, n_cols), elements=elements), label="a")
    a = in_layout(values, data.draw(st.sampled_from(LAYOUTS), label="layout"))
    expected = oracle_logsumexp_rows(a)
    result = kernels.logsumexp_rows(a)

    assert_fresh_output(result, dtype)
    finite = np.where(np.isfinite(values), np.abs(values.astype(np.float64)), 0)
    assert_matches(result, expected, scale=finite.max(1) + 1, terms=n_cols)
    # The documented special cases, checked on their own.
    has_nan = np.isnan(values).any(1)
    np.testing.assert_array_equal(np.isnan(result), has_nan)
    plus_inf = (values == np.inf).any(1) & ~has_nan
    assert np.all(result[plus_inf] == np.inf)
    all_minus_inf = (values == -np.inf).all(1)
    assert np.all(result[all_minus_inf] == -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_rows_special_rows(backend, dtype):
    inf, nan = np.inf, np.nan
    a = np.array([[-inf, -inf, -inf], [0.0, inf, 1.0], [inf, -inf, 2.0], [nan, 1.0, 2.0],
                  [inf, nan, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -inf], [0.0, 0.0, 0.0]],
                 dtype=dtype)
    result = kernels.logsumexp_rows(a)
    assert result[0] == -inf and result[1] == inf and result[2] == inf
    assert np.isnan(result[3]) and np.isnan(result[4])
    np.testing.assert_allclose(result[5:], [1e4 + np.log(2), -1e4 + np.log(2), np.log(3)],
                               rtol=1e-6)


# -- 6. teaching matmuls --------------------------------------------------------------------------
@settings(per_backend, max_examples=25)
@given(data=st.data(), dtype=dtypes, block=st.sampled_from([1, 3, 8, 16, 64]),
       seed=st.integers(0, 2**16),
       layouts=st.tuples(st.sampled_from(LAYOUTS), st.sampled_from(LAYOUTS)))
def test_matmul_teaching_kernels_match_numpy(backend, data, dtype, block, seed, layouts):
    # Values from a seeded generator: hypothesis would be slow to draw 70 × 70 arrays entry by
    # entry, and the shapes and the block (ragged edges) are what matter here.
    side = st.integers(1, 12 if backend == "python" else 70)
    n, k, m = (data.draw(side, label=name) for name in "nkm")
    rng = np.random.default_rng(seed)
    a = in_layout(rng.uniform(-10, 10, (n, k)).astype(dtype), layouts[0])
    b = in_layout(rng.uniform(-10, 10, (k, m)).astype(dtype), layouts[1])
    expected = a @ b
    scale = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    for result in (kernels.matmul_naive(a, b), kernels.matmul_blocked(a, b, block)):
        assert_fresh_output(result, dtype)
        assert_matches(result, expected, scale=scale, terms=k, rtol=RTOL_ARITHMETIC)


def test_matmul_blocked_default_block_covers_ragged_edges(backend, rng):
    # Two full 64-tiles and a ragged one in every direction (one full tile for the Python loops).
    n, k, m = (66, 65, 67) if backend == "python" else (130, 67, 129)
    a, b = rng.standard_normal((n, k)), rng.standard_normal((k, m))
    np.testing.assert_allclose(kernels.matmul_blocked(a, b), a @ b, rtol=1e-12, atol=1e-12)


# -- fused backward passes against central differences (float64) -----------------------------
def bias_act_op(activation: str, slope: float):
    def f(h: Tensor, bias: Tensor) -> Tensor:
        y = kernels.bias_act_forward(h.data, bias.data, activation, slope)
        return Tensor.from_op(y, (h, bias),
                              lambda g: kernels.bias_act_backward(y, g, activation, slope),
                              "bias_act")
    return f


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_bias_act_backward_passes_gradcheck(backend, activation, rng):
    bias = rng.standard_normal(4)
    pre = rng.uniform(0.2, 2.0, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))  # away from the kink
    assert gradcheck(bias_act_op(activation, 0.1), pre - bias, bias)


def bernoulli_op(x: np.ndarray):
    def f(logits: Tensor) -> Tensor:
        grad_logits = np.empty_like(logits.data)
        sums = kernels.bernoulli_log_prob(logits.data, x, grad_logits)
        return Tensor.from_op(sums, (logits,), lambda g: (g[:, None] * grad_logits,),
                              "bernoulli_log_prob")
    return f


def test_bernoulli_gradient_passes_gradcheck(backend, rng):
    x = rng.uniform(0, 1, (4, 6))
    x[:2] = x[:2] > 0.5
    assert gradcheck(bernoulli_op(x), rng.normal(0, 4, (4, 6)))


def reparameterize_kl_op(eps: np.ndarray, outputs: str):
    def f(loc: Tensor, log_var: Tensor) -> Tensor:
        z, kl, std = kernels.reparameterize_kl_forward(loc.data, log_var.data, eps)
        n_latent = z.shape[1]

        def vjp(g):
            if outputs == "z":
                return kernels.reparameterize_kl_backward(loc.data, eps, std, g, None)
            if outputs == "kl":
                return kernels.reparameterize_kl_backward(loc.data, eps, std, None, g)
            return kernels.reparameterize_kl_backward(loc.data, eps, std,
                                                      g[:, :n_latent], g[:, n_latent])

        value = {"z": z, "kl": kl, "both": np.concatenate([z, kl[:, None]], axis=1)}[outputs]
        return Tensor.from_op(value, (loc, log_var), vjp, "reparameterize_kl")
    return f


@pytest.mark.parametrize("outputs", ["z", "kl", "both"])
def test_reparameterize_kl_backward_passes_gradcheck(backend, outputs, rng):
    loc, log_var, eps = rng.standard_normal((3, 4)), rng.uniform(-2, 2, (3, 4)), \
        rng.standard_normal((3, 4))
    assert gradcheck(reparameterize_kl_op(eps, outputs), loc, log_var)


# -- the contract, checked once by the dispatcher, the same on every backend -----------------
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, bool])
def test_dtypes_other_than_float32_and_float64_are_rejected(backend, dtype):
    values = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError, match="logits must be a float32 or float64 array"):
        kernels.bernoulli_log_prob(values, values)
    with pytest.raises(TypeError, match="a must be a float32 or float64 array"):
        kernels.logsumexp_rows(values)


def test_mixed_dtypes_are_rejected_not_promoted(backend):
    single, double = np.zeros((2, 3), np.float32), np.zeros((2, 3))
    with pytest.raises(TypeError, match="x must have the dtype of logits"):
        kernels.bernoulli_log_prob(single, double)
    with pytest.raises(TypeError, match="bias must have the dtype of h"):
        kernels.bias_act_forward(single, np.zeros(3), "relu")
    with pytest.raises(TypeError, match="grad_logits must have dtype float32"):
        kernels.bernoulli_log_prob(single, single, grad_logits=double)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        kernels.bias_act_forward(single, single[0], "relu", out=double)
    with pytest.raises(TypeError, match="grad_kl must have the dtype of loc"):
        kernels.reparameterize_kl_backward(single, single, single, None, np.zeros(2))
    flat32, flat64 = np.zeros(4, np.float32), np.zeros(4)
    with pytest.raises(TypeError, match="v must have the dtype of param"):
        kernels.adam_step(flat32, flat32.copy(), flat32.copy(), flat64, 0.1, 0.9, 0.99, 1e-8, 1)
    with pytest.raises(TypeError, match="b must have the dtype of a"):
        kernels.matmul_naive(single, double.T)


def test_shapes_are_checked(backend):
    with pytest.raises(ValueError, match="x must have shape"):
        kernels.bernoulli_log_prob(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        kernels.bernoulli_log_prob(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="bias must have shape"):
        kernels.bias_act_forward(np.zeros((2, 3)), np.zeros((1, 3)), "tanh")
    with pytest.raises(ValueError, match="out must have shape"):
        kernels.bias_act_forward(np.zeros((2, 3)), np.zeros(3), "tanh", out=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="grad_kl must have shape"):
        kernels.reparameterize_kl_backward(*np.zeros((3, 2, 3)), None, np.zeros(3))
    with pytest.raises(ValueError, match="a's columns must match b's rows"):
        kernels.matmul_naive(np.zeros((2, 3)), np.zeros((2, 3)))
    for block in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="block must be a positive integer"):
            kernels.matmul_blocked(np.zeros((2, 2)), np.zeros((2, 2)), block=block)
    with pytest.raises(ValueError, match="activation must be one of"):
        kernels.bias_act_backward(np.zeros((2, 3)), np.zeros((2, 3)), "gelu")
    with pytest.raises(ValueError, match="a must have at least one column"):
        kernels.logsumexp_rows(np.zeros((3, 0)))


def adam(param, grad, m, v):
    kernels.adam_step(param, grad, m, v, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=1)


@pytest.mark.parametrize("bad_buffer", ["2-D", "strided", "read-only", "wrong size", "list"])
def test_optimizer_buffers_must_be_flat_contiguous_and_writable(backend, bad_buffer):
    param, grad = np.zeros(6), np.ones(6)
    bad = {"2-D": np.zeros((2, 3)), "strided": np.zeros(12)[::2], "read-only": np.zeros(6),
           "wrong size": np.zeros(5), "list": [0.0] * 6}[bad_buffer]
    if bad_buffer == "read-only":
        bad.flags.writeable = False
    error = TypeError if bad_buffer == "list" else ValueError
    with pytest.raises(error, match="m must"):
        adam(param, grad, bad, np.zeros(6))
    with pytest.raises(error, match="buf must"):
        kernels.sgd_step(param, grad, bad, lr=0.1, momentum=0.9, first_step=False)


def test_optimizer_buffers_must_not_overlap(backend):
    param, grad = np.zeros(6), np.ones(6)
    with pytest.raises(ValueError, match="must not share memory"):
        adam(param, grad, param, np.zeros(6))


def test_outputs_that_overlap_or_are_strided_get_a_scratch_array(backend, rng):
    h = rng.standard_normal((3, 4))
    bias = rng.standard_normal(4)
    expected = oracle_bias_act_forward(h, bias, "tanh")
    strided = np.zeros((3, 8))[:, ::2]
    assert kernels.bias_act_forward(h, bias, "tanh", out=strided) is strided
    np.testing.assert_allclose(strided, expected, rtol=1e-12)
    wide = np.concatenate([h, h], axis=1)  # out shifted by one column against h: they overlap
    shifted_h, out = wide[:, :4], wide[:, 1:5]
    kernels.bias_act_forward(shifted_h, bias, "tanh", out=out)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    read_only = np.zeros((3, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        kernels.bias_act_forward(h, bias, "tanh", out=read_only)


# -- the backends: one loop source, compiled by numba, twinned in C ----------------------------
def test_every_backend_runs_the_reference_loops_with_their_signatures():
    from minivae.kernels import c_backend, jit

    for kernel in kernels.KERNELS:
        loop = getattr(reference, kernel)
        compiled = getattr(jit, kernel)
        assert getattr(compiled, "py_func", compiled) is loop, kernel  # the same source
        twin = inspect.signature(getattr(c_backend, kernel))
        assert list(twin.parameters) == list(inspect.signature(loop).parameters), kernel


def test_numba_module_without_numba_reports_it_and_its_loops_still_run(monkeypatch):
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    path = Path(reference.__file__).with_name("jit.py")
    spec = importlib.util.spec_from_file_location("jit_without_numba", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError, match="numba"):
        module.check_available()
    logits, x = np.array([[-2.0, 0.5, 3.0]]), np.array([[0.0, 1.0, 1.0]])
    grad, sums = np.empty_like(logits), np.empty(1)
    module.bernoulli_log_prob(logits, x, True, grad, sums)
    expected, expected_grad = oracle_bernoulli_log_prob(logits, x)
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


# -- the dispatcher ----------------------------------------------------------------------------
def small_call(kernel: str):
    """Call the dispatched ``kernel`` once on tiny float64 inputs."""
    x = np.full((2, 3), 0.5)
    call = getattr(kernels, kernel)
    if kernel == "bernoulli_log_prob":
        return call(x, x, np.empty_like(x))
    if kernel == "bias_act_forward":
        return call(x, x[0], "tanh")
    if kernel == "bias_act_backward":
        return call(x, x, "sigmoid")
    if kernel == "reparameterize_kl_forward":
        return call(x, x, x)
    if kernel == "reparameterize_kl_backward":
        return call(x, x, x, x, x[:, 0])
    if kernel == "adam_step":
        return call(x[0].copy(), x[0], x[0].copy(), x[0].copy(), 0.1, 0.9, 0.999, 1e-8, 1)
    if kernel == "sgd_step":
        return call(x[0].copy(), x[0], x[0].copy(), 0.1, 0.9, True)
    if kernel == "logsumexp_rows":
        return call(x)
    if kernel in ("matmul_naive", "matmul_blocked"):
        return call(x, x.T)
    raise AssertionError(f"no small call written for {kernel}")


def test_set_backend_python_and_auto_round_trip(restore_dispatch):
    kernels.set_backend("python")
    assert kernels.get_backend() == "python" and kernels.active_backend() == "python"
    assert {kernels.backend_of(k) for k in kernels.KERNELS} == {"python"}

    kernels.set_backend("auto")
    available = kernels.available_backends()
    first = next(b for b in ("c", "numba", "python") if b in available)
    assert kernels.get_backend() == "auto" and kernels.active_backend() == first
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == first, kernel
        small_call(kernel)

    with pytest.raises(ValueError, match="bogus"):
        kernels.set_backend("bogus")
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.backend_of("bogus")
    assert kernels.get_backend() == "auto"


@pytest.mark.parametrize("name", kernels.BACKENDS)
def test_set_backend_routes_every_kernel_to_that_backend(name, restore_dispatch):
    if name not in kernels.available_backends():
        pytest.skip(f"the {name!r} kernel backend is unavailable: {kernels._failed.get(name)}")
    kernels.set_backend(name)
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == name
    logits = np.linspace(-3, 3, 12).reshape(3, 4)
    x = (logits > 0).astype(np.float64)
    sums = np.empty(3)
    kernels._loaded[name].bernoulli_log_prob(logits, x, False, np.empty((0, 0)), sums)
    np.testing.assert_array_equal(kernels.bernoulli_log_prob(logits, x), sums)


def make_unavailable(*names: str) -> None:
    """Point the named backends at a module that does not exist (restore_dispatch undoes it)."""
    kernels.available_backends()  # settle the real backends first: their warnings are not ours
    for name in names:
        kernels._MODULES[name] = "minivae.kernels.no_such_module"
        kernels._loaded.pop(name, None)
        kernels._failed.pop(name, None)
    kernels._active.clear()


def test_missing_backend_falls_back_with_one_warning(restore_dispatch):
    make_unavailable("c")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernels.set_backend("auto")
        for _ in range(3):
            for kernel in kernels.KERNELS:
                small_call(kernel)
        kernels.available_backends()
        kernels.set_backend("auto")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "'c'" in messages[0] and "no_such_module" in messages[0]

    available = kernels.available_backends()
    assert "c" not in available
    fallback = "numba" if "numba" in available else "python"
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == fallback
    with pytest.raises(ValueError, match="'c'.*unavailable.*no_such_module"):
        kernels.set_backend("c")


# -- which call sites run a kernel: enabled() and composed() ----------------------------------
def test_an_explicit_backend_enables_every_family_and_composed_none(backend):
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)
    with kernels.composed():
        assert not any(kernels.enabled(family) for family in kernels.FAMILIES)
        with kernels.composed():
            assert not kernels.enabled("adam_step")
        assert not kernels.enabled("adam_step")  # the inner block restored the outer state
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)
    with pytest.raises(RuntimeError), kernels.composed():
        raise RuntimeError("left by an exception")
    assert kernels.enabled("bias_act")
    with pytest.raises(ValueError, match="family must be one of"):
        kernels.enabled("bias_act_forward")


def test_auto_enables_only_the_families_its_backend_runs_faster(restore_dispatch):
    kernels.set_backend("auto")
    active = kernels.active_backend()
    for family in kernels.FAMILIES:
        assert kernels.enabled(family) == (family in kernels.AUTO_FUSED[active]), family
    assert kernels.AUTO_FUSED["c"] == frozenset(kernels.FAMILIES)
    assert kernels.AUTO_FUSED["python"] == frozenset()
    # numba's scalar libm loses to NumPy's SIMD tanh and exp: those call sites stay composed
    assert {"bias_act", "logsumexp_rows"}.isdisjoint(kernels.AUTO_FUSED["numba"])
    assert {"adam_step", "sgd_step"} <= kernels.AUTO_FUSED["numba"]


@pytest.mark.parametrize("missing", [("c",), ("c", "numba")])
def test_auto_falls_back_to_numba_then_to_the_compositions(missing, restore_dispatch):
    make_unavailable(*missing)
    with pytest.warns(RuntimeWarning, match="unavailable"):
        kernels.set_backend("auto")
    active = kernels.active_backend()
    assert active == ("python" if "numba" in missing or "numba" in kernels._failed else "numba")
    assert {f for f in kernels.FAMILIES if kernels.enabled(f)} == kernels.AUTO_FUSED[active]
    kernels.set_backend("python")  # named explicitly: every family runs its kernel
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)

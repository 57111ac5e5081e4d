"""The in-place Adam and SGD kernels over a flat buffer, on every backend against the NumPy
oracle, and the buffers they accept."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from minivae import kernels
from tests.engine.ops.helpers import finite
from tests.kernels.oracles import (
    DTYPES,
    RTOL_ARITHMETIC,
    assert_matches,
    dtypes,
    oracle_adam_step,
    oracle_sgd_step,
    per_backend,
)


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
def test_adam_step_keeps_ieee_semantics_and_refuses_eps_zero(backend, dtype):
    # A NaN gradient gives a NaN parameter on every backend, as in NumPy: no backend may
    # drop IEEE rules for speed (a fast-math build would).  ε = 0 would make m/(√v + ε) = 0/0
    # for a zero gradient, so the kernel refuses it as Adam does.
    param, zeros = np.ones(5, dtype=dtype), np.zeros(5, dtype=dtype)
    kernels.adam_step(param, np.full(5, np.nan, dtype), zeros.copy(), zeros.copy(), 0.1, 0.9,
                      0.999, 1e-8, 1)
    assert np.isnan(param).all()
    with pytest.raises(ValueError, match="eps must be"):
        kernels.adam_step(param, zeros, zeros.copy(), zeros.copy(), 0.1, 0.9, 0.999, 0.0, 1)
    for name, settings in (("step", (0.1, 0.9, 0.999, 1e-8, 0)),
                           ("beta2", (0.1, 0.9, 1.0, 1e-8, 1)), ("lr", (0.0, 0.9, 0.9, 1e-8, 1))):
        with pytest.raises(ValueError, match=name):
            kernels.adam_step(param, zeros, zeros.copy(), zeros.copy(), *settings)


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


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_adam_with_extreme_gradients_stays_finite(backend, dtype):
    grad = np.array([1e4, -1e4, 50.0, -50.0, 0.0, 1e-30], dtype=dtype)
    param = np.zeros_like(grad)
    m, v = np.zeros_like(grad), np.zeros_like(grad)
    for step in range(1, 4):
        kernels.adam_step(param, grad, m, v, 1e-3, 0.9, 0.999, 1e-8, step)
    assert finite(param) and finite(m) and finite(v)
    # With a constant gradient, m̂/√v̂ = sign(g) exactly: each step moves lr against the sign.
    moved = np.abs(grad) >= 1
    np.testing.assert_allclose(param[moved], -3e-3 * np.sign(grad[moved]), rtol=1e-4)


# -- the buffers -------------------------------------------------------------------------------


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

"""The Bernoulli log-likelihood kernel, Σ_j x·l − softplus(l) per row with its gradient
x − σ(l), on every backend against the NumPy oracle."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from minivae import kernels
from minivae.engine.gradcheck import gradcheck
from minivae.engine.tensor import Tensor
from tests.kernels.oracles import (
    DTYPES,
    arrays,
    assert_fresh_output,
    assert_matches,
    cols,
    dtypes,
    oracle_bernoulli_log_prob,
    per_backend,
    rows,
)


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


# -- the backward pass against central differences (float64) -----------------------------------


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


@per_backend
@given(data=st.data(), dtype=dtypes, n_rows=rows, n_cols=cols, samples=st.integers(1, 4))
def test_repeated_target_rows_are_the_tiled_targets(backend, data, dtype, n_rows, n_cols,
                                                    samples):
    """Targets of R rows under S·R rows of logits (S samples of R images) score exactly as the
    targets copied S times: the same loop reads the same numbers."""
    logits = data.draw(arrays(dtype, (samples * n_rows, n_cols), -50.0, 50.0), label="logits")
    x = (data.draw(arrays(dtype, (n_rows, n_cols), 0.0, 1.0), label="x") > 0.5).astype(dtype)
    grad, grad_tiled = np.empty_like(logits), np.empty_like(logits)
    sums = kernels.bernoulli_log_prob(logits, x, grad)
    tiled = kernels.bernoulli_log_prob(logits, np.tile(x, (samples, 1)), grad_tiled)
    np.testing.assert_array_equal(sums, tiled)
    np.testing.assert_array_equal(grad, grad_tiled)


@pytest.mark.parametrize("x_shape", [(4, 4), (0, 4), (6, 5), (4,), (12, 4)])
def test_targets_must_divide_the_rows(backend, x_shape):
    logits = np.zeros((6, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(6, 4\), or \(R, 4\) with R "
                                         r"dividing 6"):
        kernels.bernoulli_log_prob(logits, np.zeros(x_shape))

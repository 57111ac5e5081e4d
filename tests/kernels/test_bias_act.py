"""The bias + activation kernels (forward, and backward from the output) on every backend
against the NumPy oracle."""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given

from minivae import kernels
from minivae.engine.gradcheck import gradcheck
from minivae.engine.tensor import Tensor
from tests.kernels.oracles import (
    ACTIVATIONS,
    DTYPES,
    LAYOUTS,
    arrays,
    assert_fresh_output,
    assert_matches,
    cols,
    dtypes,
    in_layout,
    oracle_bias_act_backward,
    oracle_bias_act_forward,
    oracle_derivative_from_output,
    per_backend,
    rows,
)


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


# -- the backward pass against central differences (float64) -----------------------------------


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

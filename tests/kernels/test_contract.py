"""The contract, checked once by the dispatcher, the same on every backend: dtypes, shapes
and the arrays a kernel may write."""
from __future__ import annotations

import numpy as np
import pytest

from minivae import kernels


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


def test_every_backend_rejects_mixed_dtypes_with_type_error(backend):
    f32, f64 = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64)
    with pytest.raises(TypeError, match="x must have the dtype of logits"):
        kernels.bernoulli_log_prob(f32, f64)
    with pytest.raises(TypeError, match="bias must have the dtype of h"):
        kernels.bias_act_forward(f32, np.zeros(3), "tanh")
    with pytest.raises(TypeError, match="eps must have the dtype of loc"):
        kernels.reparameterize_kl_forward(f32, f32, f64)
    with pytest.raises(TypeError, match="a must be a float32 or float64 array"):
        kernels.logsumexp_rows(np.zeros((2, 3), np.int64))
    flat32, flat64 = np.zeros(4, np.float32), np.zeros(4, np.float64)
    with pytest.raises(TypeError, match="must have the dtype of param"):
        kernels.adam_step(flat32, flat32.copy(), flat32.copy(), flat64, 1e-3, 0.9, 0.999,
                          1e-8, 1)


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

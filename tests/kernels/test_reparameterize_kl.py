"""The reparameterization + KL kernels, z = μ + σε and ½ Σ (μ² + σ² − 1 − log σ²) in one
pass with their backward pass, on every backend against the NumPy oracle."""
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
    LAYOUTS,
    arrays,
    assert_fresh_output,
    assert_matches,
    cols,
    dtypes,
    in_layout,
    oracle_reparameterize_kl_backward,
    oracle_reparameterize_kl_forward,
    per_backend,
    rows,
)


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


# -- the backward pass against central differences (float64) -----------------------------------


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

"""The fuzz contract for the kernels' public functions, on every backend: whatever arrives in
place of an array or a setting (a wrong kind, shape or dtype, an aliased or read-only buffer),
the dispatcher's contract answers with a ValueError/TypeError before any loop runs: the loops
read and write without bounds checks, so a call that slipped through could crash the process.

The loops take finite numbers (the library checks values before it calls them), so the wild
arrays here hold ordinary values; results may overflow to ±inf but never hold NaN."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae import kernels
from tests.fuzzing import Entry, anything, arrays, check_entry, check_valid_entry, variants
from tests.kernels.oracles import per_backend

rng = np.random.default_rng(0)
B, D, N = 3, 4, 6


def matrix(rows=B, cols=D, dtype=np.float64, scale=1.0):
    return (scale * rng.standard_normal((rows, cols))).astype(dtype)


def structure():
    """Wrong structure with ordinary values: other shapes, dtypes and kinds."""
    ordinary = st.one_of(
        arrays(max_dims=3, allow_non_finite=False).map(lambda a: np.clip(a, -10, 10)),
        st.sampled_from([np.zeros((B, D), np.int64), np.zeros((B, D), np.float16),
                         np.zeros((D, B)), np.zeros((B, D), np.float32), np.zeros(0),
                         np.zeros((B, D))[:, ::2], np.zeros((B, D, 1))]))
    return st.one_of(anything(), ordinary)


def step_buffers(dtype=np.float64):
    return {name: rng.standard_normal(N).astype(dtype) for name in ("param", "grad", "m")}


ENTRIES = [
    Entry("kernels.bernoulli_log_prob", kernels.bernoulli_log_prob,
          dict(logits=matrix(), x=(matrix() > 0).astype(np.float64), grad_logits=None),
          wild=dict(logits=structure(), x=structure(), grad_logits=structure())),
    Entry("kernels.bias_act_forward", kernels.bias_act_forward,
          dict(h=matrix(), bias=matrix(1, D)[0], activation="tanh", slope=0.01, out=None),
          wild=dict(h=structure(), bias=structure(), out=structure())),
    Entry("kernels.bias_act_backward", kernels.bias_act_backward,
          dict(y=np.tanh(matrix()), grad_y=matrix(), activation="tanh", slope=0.01),
          wild=dict(y=structure(), grad_y=structure())),
    Entry("kernels.reparameterize_kl_forward", kernels.reparameterize_kl_forward,
          dict(loc=matrix(), log_var=matrix(), eps=matrix()),
          wild=dict(loc=structure(), log_var=structure(), eps=structure()), allow_inf=True),
    Entry("kernels.reparameterize_kl_backward", kernels.reparameterize_kl_backward,
          dict(loc=matrix(), eps=matrix(), std=np.exp(matrix()), grad_z=matrix(),
               grad_kl=matrix(1, B)[0]),
          wild=dict(loc=structure(), eps=structure(), std=structure(), grad_z=structure(),
                    grad_kl=structure()), allow_inf=True),
    Entry("kernels.adam_step", kernels.adam_step,
          dict(**step_buffers(), v=np.abs(rng.standard_normal(N)), lr=1e-3, beta1=0.9,
               beta2=0.999, eps=1e-8, step=1),
          wild=dict(param=structure(), grad=structure(), m=structure(), v=structure())),
    Entry("kernels.sgd_step", kernels.sgd_step,
          dict(param=step_buffers()["param"], grad=step_buffers()["grad"],
               buf=np.zeros(N), lr=0.1, momentum=0.9, first_step=True),
          wild=dict(param=structure(), grad=structure(), buf=structure())),
    Entry("kernels.logsumexp_rows", kernels.logsumexp_rows, dict(a=matrix()),
          wild=dict(a=structure()), allow_inf=True),
    Entry("kernels.matmul_naive", kernels.matmul_naive, dict(a=matrix(), b=matrix(D, 2)),
          wild=dict(a=structure(), b=structure()), allow_inf=True),
    Entry("kernels.matmul_blocked", kernels.matmul_blocked,
          dict(a=matrix(), b=matrix(D, 2), block=2),
          wild=dict(a=structure(), b=structure()), allow_inf=True),
    Entry("kernels.set_backend", lambda name: kernels.set_backend(name) or kernels.active_backend(),
          dict(name="auto")),
    Entry("kernels.backend_of", kernels.backend_of, dict(kernel="adam_step")),
    Entry("kernels.enabled", kernels.enabled, dict(family="adam_step")),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
def test_valid_calls_return_values(backend, entry):
    check_valid_entry(entry)


@settings(per_backend, max_examples=50)
@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
@given(data=st.data())
def test_every_kernel_keeps_the_contract(backend, entry, data):
    try:
        check_entry(entry, data.draw(variants(entry)))
    finally:
        kernels.set_backend(backend)  # set_backend is among the entries

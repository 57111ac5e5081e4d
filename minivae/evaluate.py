"""Evaluating a trained VAE: test ELBO and an importance-sampled estimate of log p(x).

Math: with weights w_i = p(x, z_i) / q(z_i | x), z_i ~ q(z | x),
    log p̂_k(x) = log (1/k) Σ_i w_i = logsumexp_i(log w_i) − log k.
E[log p̂_k] is the IWAE bound L_k: L_1 = ELBO ≤ L_k ≤ L_{k+1} ≤ log p(x) (Burda et al. 2016),
so the estimate approaches log p(x) from below as k grows.

Verified by: tests/test_vae.py::test_importance_sampling_bounds,
tests/test_objectives_likelihood.py::test_evaluate_wrapper_matches_the_estimator
"""
from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

from minivae.models import VAE
from minivae.objectives.likelihood import importance_sampling_log_likelihood

ROWS_PER_CHUNK = 20_000  # decoder rows evaluated at once (samples × examples): bounds memory


def importance_sampled_log_likelihood(model: VAE, x: np.ndarray, k: int,
                                      rng: np.random.Generator, batch_size: int = 100,
                                      progress: bool = False) -> np.ndarray:
    """Per-example log p̂_k(x) = log-mean-exp of k importance weights; shape (N,), float64.

    The examples go ``batch_size`` at a time through
    ``minivae.objectives.likelihood.importance_sampling_log_likelihood``, whose k draws are taken
    in chunks and combined with a running log-sum-exp, so memory stays bounded for any k.
    (That function also returns each estimate's standard error.)
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    result = np.empty(len(x), dtype=np.float64)
    chunk = max(1, ROWS_PER_CHUNK // batch_size)
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc=f"log p(x), k={k}", disable=not progress, leave=False):
        xb = x[start:start + batch_size]
        estimate, _ = importance_sampling_log_likelihood(model, xb, int(k), rng, chunk=chunk)
        result[start:start + len(xb)] = estimate
    return result


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: s / √n."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")

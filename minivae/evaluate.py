"""Evaluating a trained VAE: test ELBO and an importance-sampled estimate of log p(x).

Math: with weights w_i = p(x, z_i) / q(z_i | x), z_i ~ q(z | x),
    log p̂_k(x) = log (1/k) Σ_i w_i = logsumexp_i(log w_i) − log k.
E[log p̂_k] is the IWAE bound L_k: L_1 = ELBO ≤ L_k ≤ L_{k+1} ≤ log p(x) (Burda et al. 2016),
so the estimate approaches log p(x) from below as k grows.

Verified by: tests/test_vae.py::test_importance_sampling_bounds
"""
from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

from minivae.models import VAE

ROWS_PER_CHUNK = 20_000  # decoder rows evaluated at once (samples × examples): bounds memory


def importance_sampled_log_likelihood(model: VAE, x: np.ndarray, k: int,
                                      rng: np.random.Generator, batch_size: int = 100,
                                      progress: bool = False) -> np.ndarray:
    """Per-example log p̂_k(x) = log-mean-exp of k importance weights; shape (N,), float64.

    The k samples are drawn in chunks and combined with a running log-sum-exp, so memory stays
    bounded for any k.
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
        running_max = np.full(len(xb), -np.inf)
        running_sum = np.zeros(len(xb))  # Σ exp(log w − running_max)
        for done in range(0, k, chunk):
            log_w = model.log_importance_weights(xb, min(chunk, k - done), rng).astype(np.float64)
            new_max = np.maximum(running_max, log_w.max(axis=0))
            running_sum = (running_sum * np.exp(running_max - new_max)
                           + np.exp(log_w - new_max).sum(axis=0))
            running_max = new_max
        result[start:start + len(xb)] = running_max + np.log(running_sum) - math.log(k)
    return result


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: s / √n."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")

"""Estimating log p(x) by averaging weights in log space, with a standard error.

Both estimators average n positive weights whose expectation is p(x):

    prior sampling:       w_i = p(x | z_i),             z_i ~ p(z)     (E_p(z)[p(x|z)] = p(x))
    importance sampling:  w_i = p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)   (E_q[p(x,z)/q] = p(x))

so p̂ = (1/n) Σ w_i is unbiased for p(x).  log p̂ is not unbiased for log p(x): by Jensen
E[log p̂] ≤ log p(x) (for importance sampling E[log p̂] is the IWAE bound L_n), with a bias of
order Var(w)/(2 n p(x)²) that vanishes as n grows.

Prior sampling is the naive estimator: in high dimensions almost every z ~ p(z) explains x
poorly, so a few huge weights dominate and the variance is enormous.  Importance sampling
draws z where the posterior puts its mass; with q = p(z|x) every weight equals p(x) and the
variance is zero.

Standard error, by the delta method: log p̂ ≈ log μ + (p̂ − μ)/μ with μ = E[w], so

    se(log p̂) ≈ sd(w) / (√n · mean(w)),

and this ratio does not change when every weight is multiplied by the same constant.  So the
weights are kept relative to the largest log-weight seen so far (u_i = exp(log w_i − m) ∈ (0, 1]):
nothing overflows or underflows to an all-zero sum, whatever the scale of p(x).

Memory: the examples go ``batch_size`` at a time through the encoder (all at once by
default), and for each batch the n draws are taken ``chunk`` at a time; each chunk's mean and
sum of squared deviations are merged into running ones (the pairwise update of Chan, Golub &
LeVeque 1979, which avoids the cancellation of Σu² − (Σu)²/n), rescaled whenever the running
maximum grows.
Only a (chunk, B) array of log-weights exists at a time, for any n (k = 5000 on MNIST included).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.engine.tensor import Tensor, no_grad
from minivae.objectives.iwae import log_importance_weights

ROWS_PER_CHUNK = 20_000  # (sample, example) pairs evaluated at once: bounds the memory


def log_mean_exp_with_standard_error(log_weight_chunks: Iterable[np.ndarray]
                                     ) -> tuple[np.ndarray, np.ndarray]:
    """(log p̂, se(log p̂)) from log-weights given in chunks of shape (c, B), per column:

        log p̂ = m + log ū,   se = sd(u) / (√n · ū),   u_i = exp(log w_i − m),  m = max_i log w_i,

    where ū and sd(u) (with n − 1) are merged chunk by chunk.  A column whose weights are all 0
    (log w = −∞) gets log p̂ = −∞.  Where the spread cannot be estimated (one weight, n = 1, or
    all weights 0) the standard error is +∞: no finite error bar is claimed, and no NaN arrives.

    Verified by: tests/objectives/test_likelihood.py::test_chunked_statistics_match_one_pass,
    ::test_no_overflow_for_tiny_likelihoods
    """
    count = 0
    running_max = mean = m2 = None  # per column: max log w, mean of u, Σ (u − ū)²
    for log_w in log_weight_chunks:
        log_w = np.asarray(log_w, dtype=np.float64)
        if running_max is None:
            running_max = np.full(log_w.shape[1:], -np.inf)
            mean, m2 = np.zeros(log_w.shape[1:]), np.zeros(log_w.shape[1:])
        new_max = np.maximum(running_max, log_w.max(axis=0))
        shift = np.where(np.isneginf(new_max), 0.0, new_max)  # all weights 0 so far: no shift
        with np.errstate(invalid="ignore"):  # −∞ − (−∞) where the old maximum was −∞
            rescale = np.where(np.isneginf(running_max), 0.0, np.exp(running_max - shift))
        u = np.exp(log_w - shift)
        chunk_count, chunk_mean = len(u), u.mean(axis=0)
        chunk_m2 = ((u - chunk_mean) ** 2).sum(axis=0)
        mean, m2 = mean * rescale, m2 * rescale * rescale  # same weights, relative to new max
        total = count + chunk_count
        delta = chunk_mean - mean
        mean = mean + delta * (chunk_count / total)
        m2 = m2 + chunk_m2 + delta * delta * (count * chunk_count / total)
        count, running_max = total, new_max
    if count == 0:
        raise ValueError("log_weight_chunks must hold at least one chunk of weights, got none")
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero weights: log 0 = −∞
        estimate = np.where(np.isneginf(running_max), -np.inf, running_max + np.log(mean))
        spread = np.sqrt(m2 / (count - 1)) if count > 1 else np.full(mean.shape, np.inf)
        standard_error = spread / (math.sqrt(count) * mean)
    return estimate, np.where(mean > 0, standard_error, np.inf)


def _batch_and_chunk(x, chunk) -> tuple[int, int]:
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(shape) != 2:
        raise ValueError(f"x must have shape (batch, x_dim), got {shape}")
    if chunk is None:
        return shape[0], max(1, ROWS_PER_CHUNK // max(1, shape[0]))
    return shape[0], checks.positive_int(chunk, "chunk")


def prior_sampling_log_likelihood(model, x, n: int, rng: np.random.Generator,
                                  chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """log p̂(x) = log (1/n) Σ_i p(x | z_i), z_i ~ p(z), and its delta-method standard error.

    p̂ is unbiased for p(x) but has high variance (most prior draws explain x poorly).
    Returns two float64 arrays of shape (B,); no graph is recorded.
    chunk : draws per chunk (default: about 20,000 / B), which bounds the memory.

    Verified by: tests/objectives/test_likelihood.py::test_prior_sampling_is_unbiased_for_evidence,
    ::test_prior_sampling_has_more_variance_than_importance_sampling,
    ::test_reported_standard_errors_are_honest
    """
    n, rng, (batch, chunk) = checks.positive_int(n, "n"), checks.generator(rng), \
        _batch_and_chunk(x, chunk)
    checks.has_methods(model, ("prior", "log_likelihood"))

    def chunks():
        prior = model.prior()
        for done in range(0, n, chunk):
            z = prior.sample(rng, (min(chunk, n - done), batch))  # (c, B, d)
            yield model.log_likelihood(x, z).data

    with no_grad():
        return log_mean_exp_with_standard_error(chunks())


def importance_sampling_log_likelihood(model, x, k: int, rng: np.random.Generator,
                                       chunk: int | None = None, batch_size: int | None = None,
                                       progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """log p̂(x) = log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x), and its standard error.

    p̂ is unbiased for p(x); E[log p̂] = L_k, the IWAE bound, which rises to log p(x) as k grows.
    Returns two float64 arrays of shape (B,); no graph is recorded.
    chunk : draws per chunk (default: about 20,000 / batch), which bounds the memory.  The
        draws come from ``rng`` in order, so the result does not depend on ``chunk``.
    batch_size : examples per encoder pass (default: all of x); ``progress`` shows a bar over
        the batches (the full MNIST test set with k = 5000 takes minutes).
    A model with its own ``log_importance_weights(x, k, rng)`` (e.g. discrete latents) supplies
    the weights; otherwise they are log p(x, z) − log q(z|x) with z ~ model.encode(x).

    Verified by:
    tests/objectives/test_likelihood.py::test_importance_sampling_is_unbiased_for_evidence,
    ::test_chunked_statistics_match_one_pass, ::test_reported_standard_errors_are_honest,
    ::test_batches_give_the_estimates_of_separate_calls
    """
    k, rng = checks.positive_int(k, "k"), checks.generator(rng)
    rows = _batch_and_chunk(x, chunk)[0]
    batch_size = checks.positive_int(batch_size, "batch_size", optional=True) or max(rows, 1)
    if not callable(getattr(model, "log_importance_weights", None)):
        checks.has_methods(model, ("encode", "log_joint"))
    estimates, errors = [], []
    for start in tqdm(range(0, rows, batch_size) or [0], desc=f"log p(x), k={k}",
                      total=-(-rows // batch_size) or 1, disable=not progress, leave=False):
        xb = x[start:start + batch_size]
        size = _batch_and_chunk(xb, chunk)[1]
        with no_grad():
            # threads.adaptive times the equal chunks, not the batches, to pick BLAS's thread
            # count (minivae.threads): a batch of k = 5000 draws takes seconds, and a trial
            # of several steps per count would spend a good part of a run on the slower count
            estimate, error = log_mean_exp_with_standard_error(
                threads.adaptive(_importance_weight_chunks(model, xb, k, rng, size)))
        estimates.append(estimate)
        errors.append(error)
    return np.concatenate(estimates), np.concatenate(errors)


def _importance_weight_chunks(model, x, k: int, rng, chunk: int):
    """log w for k draws, ``chunk`` draws at a time: arrays of shape (≤ chunk, B).

    A model may compute the chunks itself (``VAE.log_importance_weight_chunks``: the same
    weights from the same draws, without the engine's graph); the readable form below is what
    it is tested against.
    """
    if callable(getattr(model, "log_importance_weight_chunks", None)):
        yield from model.log_importance_weight_chunks(x, k, rng, chunk)
        return
    if hasattr(model, "log_importance_weights"):  # a model with its own proposal/latents
        for done in range(0, k, chunk):
            yield np.asarray(model.log_importance_weights(x, min(chunk, k - done), rng))
        return
    q = model.encode(x)  # one encoder pass for all k draws
    for done in range(0, k, chunk):
        yield log_importance_weights(model, x, min(chunk, k - done), rng, q=q).data


def standard_error(values) -> float:
    """Standard error of the mean of ``values``: s / √n, with s the sample standard deviation
    (n − 1); +∞ for a single value or an infinite one, whose spread cannot be estimated (no
    finite error bar is claimed, as in ``log_mean_exp_with_standard_error``).

    Verified by: tests/objectives/test_likelihood.py::test_standard_error_of_the_mean
    """
    values = checks.values(values)
    if values.dtype.kind not in "fiu":
        raise TypeError(f"values must be real numbers, got {checks.describe(values)}")
    values = values.astype(np.float64).ravel()
    checks.require(values.size > 0 and not np.isnan(values).any(), "values",
                   "one or more numbers, none NaN", values)
    if len(values) < 2 or not np.isfinite(values).all():  # an infinite value: no finite spread
        return math.inf
    return float(values.std(ddof=1) / math.sqrt(len(values)))

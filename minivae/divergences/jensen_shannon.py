"""The Jensen–Shannon divergence, for probability vectors and for 1-D densities.

With the mixture r = (p + q)/2,

    JSD(p‖q) = ½ KL(p‖r) + ½ KL(q‖r) = ½ Σ p log(p/r) + ½ Σ q log(q/r).

Why it is bounded: p ≤ 2r and q ≤ 2r pointwise, so each log ratio is at most log 2 and
JSD ≤ ½ log 2 + ½ log 2 = log 2; each KL is ≥ 0, so JSD ≥ 0.  The upper bound is reached exactly
when p log(p/r) = p log 2 wherever p > 0, i.e. q = 0 wherever p > 0 (and the other way round):
disjoint supports.  JSD = 0 iff KL(p‖r) = KL(q‖r) = 0 iff p = r = q.  Swapping p and q swaps the
two halves, so JSD is symmetric.

Zeros: a term 0 · log(0/r) is 0 (its limit), so points where p = 0 contribute nothing to
KL(p‖r); wherever p > 0 the mixture r ≥ p/2 > 0, so no log of zero is ever taken.  For
densities given by their logs the mixture's log is log r = logaddexp(log p, log q) − log 2,
finite wherever either density is positive, even when the other's log is −∞.
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.divergences.quadrature import trapezoid

LOG_2 = float(np.log(2.0))


def _float_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in "biu":
        array = array.astype(np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must be a float (or integer) array, got dtype {array.dtype}")
    return array


def _common_dtype(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.dtype != b.dtype:
        raise TypeError(f"{names} must share one dtype, got {a.dtype} and {b.dtype}; convert one "
                        "explicitly (minivae never upcasts float32 silently)")


def _check_probability_vectors(p: np.ndarray, name: str) -> None:
    if p.ndim < 1 or p.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one entry on its last axis, got shape "
                         f"{p.shape}")
    checks.finite(p, name)
    checks.require(p >= 0, name, "non-negative", p)
    # the rounding of a sum of K terms grows like K·eps; √eps leaves room for it
    tolerance = max(np.sqrt(np.finfo(p.dtype).eps), p.shape[-1] * np.finfo(p.dtype).eps)
    totals = p.sum(axis=-1)
    if np.any(np.abs(totals - 1) > tolerance):
        worst = totals.flat[np.argmax(np.abs(totals - 1))]
        raise ValueError(f"{name} must sum to 1 along its last axis (within {tolerance:.1e}), "
                         f"got a sum of {worst}")


def _check_probability_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    """p and q as float probability vectors of one shape and dtype."""
    p, q = _float_array(p, "p"), _float_array(q, "q")
    _common_dtype(p, q, "p and q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    _check_probability_vectors(p, "p")
    _check_probability_vectors(q, "q")
    return p, q


def _kl_to_mixture_terms(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p log(p/r) = p log(2p/(p + q)) entry by entry, with 0 · log(0/r) = 0 exactly.

    The ratio 2p/(p + q) is formed before the log: it lies in [p, 2] for p, q ≤ 1, so it
    neither underflows when p is tiny (r = p/2 would, for a subnormal p) nor differs from 1
    when q = p (p + p and 2p are exact), which makes JSD(p‖p) exactly 0.
    """
    positive = p > 0
    safe_p = np.where(positive, p, 1)
    ratio = (safe_p + safe_p) / (safe_p + np.where(positive, q, 0))
    return np.where(positive, p * np.log(ratio), 0)


def jensen_shannon_discrete(p, q) -> np.ndarray:
    """JSD(p‖q) = ½ Σₖ pₖ log(pₖ/rₖ) + ½ Σₖ qₖ log(qₖ/rₖ), r = (p + q)/2, in nats.

    p, q : (..., K) probability vectors (non-negative, finite, summing to 1 along the last axis),
        of one shape; leading axes are a batch.  Zeros are allowed: 0 · log 0 = 0.
    Returns an array of shape (...) with 0 ≤ JSD ≤ log 2 (up to rounding); float32 in, float32
    out.  JSD(p‖p) is exactly 0: each log ratio is log(2p/(p + p)) = log 1.

    Verified by: tests/divergences/test_jensen_shannon.py::test_discrete_agrees_with_scipy,
    ::test_discrete_disjoint_supports_give_log_2,
    ::test_discrete_is_bounded_symmetric_and_zero_on_the_diagonal
    """
    p, q = _check_probability_pair(p, q)
    half = p.dtype.type(0.5)
    kl_p = _kl_to_mixture_terms(p, q).sum(axis=-1)
    kl_q = _kl_to_mixture_terms(q, p).sum(axis=-1)
    return half * kl_p + half * kl_q


def _log_density_on_grid(log_density, grid: np.ndarray, name: str) -> np.ndarray:
    values = log_density(grid) if callable(log_density) else log_density
    values = _float_array(values, name)
    if values.shape[-1:] != grid.shape:
        raise ValueError(f"{name} must give one value per grid point (last axis of length "
                         f"{grid.shape[0]}), got shape {values.shape}")
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError(f"{name} must be finite or −inf (a zero density), got NaN or +inf")
    return values


def _kl_to_mixture_integrand(log_p: np.ndarray, log_r: np.ndarray) -> np.ndarray:
    """p (log p − log r), and 0 where p = 0 (log p = −∞)."""
    positive = log_p > -np.inf
    safe_log_p = np.where(positive, log_p, 0)
    safe_log_r = np.where(positive, log_r, 0)  # finite wherever p > 0
    return np.where(positive, np.exp(safe_log_p) * (safe_log_p - safe_log_r), 0)


def jensen_shannon_1d(log_p, log_q, grid, mass_tolerance: float = 1e-3) -> np.ndarray:
    """JSD(p‖q) = ½ ∫ p log(p/r) dx + ½ ∫ q log(q/r) dx for 1-D densities, by the trapezoid rule.

    log_p, log_q : the log densities, either callables evaluated on ``grid`` or arrays of values
        on it (shape (..., n); leading axes are a batch).  −∞ marks a zero density.
    grid : (n,) strictly increasing points covering (nearly all of) both densities' mass, e.g.
        ``minivae.divergences.quadrature.uniform_grid(low, high)``.
    mass_tolerance : how far ∫p and ∫q on the grid may be from 1 before a ValueError; catches
        unnormalized densities and grids that cut off mass.

    Inside the integrals log r = logaddexp(log p, log q) − log 2, finite wherever p or q is
    positive, so disjoint supports (one log −∞ where the other is finite) give no NaN.
    Returns 0 ≤ JSD ≤ log 2 up to the quadrature error.

    Verified by: tests/divergences/test_jensen_shannon.py::test_continuous_agrees_with_scipy_quad,
    ::test_continuous_disjoint_supports_give_log_2
    """
    grid = _float_array(grid, "grid")
    if grid.ndim != 1 or grid.shape[0] < 3:
        raise ValueError(f"grid must be a 1-D array of at least 3 points, got shape {grid.shape}")
    checks.positive(mass_tolerance, "mass_tolerance", number=True)
    log_p = _log_density_on_grid(log_p, grid, "log_p")
    log_q = _log_density_on_grid(log_q, grid, "log_q")
    _common_dtype(log_p, log_q, "log_p and log_q")
    log_p, log_q = np.broadcast_arrays(log_p, log_q)
    for name, values in (("log_p", log_p), ("log_q", log_q)):
        mass = trapezoid(np.exp(values), grid.astype(values.dtype))
        if np.any(np.abs(mass - 1) > mass_tolerance):
            worst = np.ravel(mass)[np.argmax(np.abs(np.ravel(mass) - 1))]
            raise ValueError(f"exp({name}) must integrate to 1 on the grid (within "
                             f"{mass_tolerance}), got {worst:.6g}: is it normalized "
                             "and does the grid cover its mass?")
    log_r = np.logaddexp(log_p, log_q) - log_p.dtype.type(LOG_2)
    integrand = (_kl_to_mixture_integrand(log_p, log_r)
                 + _kl_to_mixture_integrand(log_q, log_r)) / 2
    return trapezoid(integrand, grid.astype(integrand.dtype))

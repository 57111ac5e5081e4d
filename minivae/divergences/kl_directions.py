"""Which way round to take KL(·‖·) when fitting a Gaussian q to a target p, and what each costs.

    forward KL(p‖q) = E_p[log p − log q] = −H(p) − E_p[log q]
    reverse KL(q‖p) = E_q[log q − log p] = E_q[log q − log p̃] + log Z,   p̃ = Z p

Forward KL is an average over p: its q-dependent part −E_p[log q] is the cross-entropy, which
samples of p estimate, so minimizing it is maximum likelihood.  It punishes q for missing any
mass of p (log q → −∞ there), so q spreads over every mode: *mode covering*.  Reverse KL is an
average over q, which we sample ourselves; it needs log p only up to the constant log Z.  It
punishes q for putting mass where p has none, so q may sit on one mode and ignore the rest:
*mode seeking*, with one local minimum per mode.  On ½N(−m, s²) + ½N(m, s²) with m ≳ 2.5 s
there is also a higher local minimum at μ = 0 with a wide σ, between the modes' basins.

Verified by:
tests/divergences/test_kl_directions.py::test_reverse_kl_fit_goes_to_the_mode_on_its_side,
::test_forward_kl_landscape_has_one_minimum_at_the_moments
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.divergences.quadrature import trapezoid
from minivae.engine.tensor import Tensor
from minivae.optim import Adam

LOG_2PI = math.log(2.0 * math.pi)
MASS_TOLERANCE = 1e-6  # how far from 1 a density may integrate on the grid before we refuse it


@dataclass
class GaussianFit:
    """q = N(loc, diag scale²), with what the fit recorded along the way (empty if nothing).

    losses : (steps,) the objective estimate at each step.
    locs, scales : (steps + 1, d) the parameters before the first and after every step.
    """
    loc: np.ndarray
    scale: np.ndarray
    losses: np.ndarray = field(default_factory=lambda: np.empty(0))
    locs: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    scales: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def _gaussian_parameters(loc, scale) -> tuple[np.ndarray, np.ndarray]:
    """loc and scale as float arrays of one shape (d,) (a scalar means d = 1)."""
    arrays = []
    for name, value in (("loc", loc), ("scale", scale)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real number or array, got dtype {array.dtype}")
        arrays.append(array)
    dtype = next((a.dtype for a in arrays if a.dtype.kind == "f"), np.dtype(np.float64))
    if {a.dtype for a in arrays if a.dtype.kind == "f"} - {dtype}:
        raise TypeError(f"loc and scale must share one float dtype, got {arrays[0].dtype} and "
                        f"{arrays[1].dtype}")
    loc, scale = (np.atleast_1d(a).astype(dtype) for a in arrays)
    if loc.ndim != 1 or loc.shape != scale.shape:
        raise ValueError(f"loc and scale must be scalars or 1-D arrays of one shape (d,), got "
                         f"{loc.shape} and {scale.shape}")
    checks.finite(loc, "loc")
    checks.positive(scale, "scale")
    return loc, scale


def _check_log_density(log_density, points_shape: tuple) -> Tensor:
    if not isinstance(log_density, Tensor) or log_density.shape != points_shape[:1]:
        raise ValueError(f"log_target must map points of shape {points_shape} to a Tensor of "
                         f"shape ({points_shape[0]},), got "
                         f"{getattr(log_density, 'shape', type(log_density).__name__)}")
    return log_density


def reverse_kl_estimate(log_target, loc: Tensor, log_scale: Tensor, noise: np.ndarray) -> Tensor:
    """Monte Carlo estimate of E_q[log q(z) − log p̃(z)] = KL(q‖p) − log Z, q = N(μ, diag σ²):

        −Σⱼ log σⱼ − (d/2)(1 + log 2π) − (1/n) Σᵢ log p̃(μ + σ ⊙ εᵢ),   εᵢ ~ N(0, I).

    E_q[log q] = −H(q) is taken in closed form (it is exact, so only the target term is noisy);
    z = μ + σ ⊙ ε is a differentiable function of (μ, log σ), so backward() gives the
    reparameterized gradient.  noise : (n, d) the εᵢ; log_target maps (n, d) → (n,).
    Verified by:
    tests/divergences/test_kl_directions.py::test_reverse_kl_estimate_matches_quadrature,
    ::test_reverse_kl_objective_shifts_by_log_normalizer
    """
    scale = log_scale.exp()
    points = loc + scale * Tensor(noise)
    log_density = _check_log_density(log_target(points), noise.shape)
    negative_entropy = -log_scale.sum() - 0.5 * loc.shape[0] * (1.0 + LOG_2PI)
    return negative_entropy - log_density.mean()


def fit_reverse_kl(log_target, loc, scale, *, steps: int = 1000, samples: int = 256,
                   lr: float = 0.05, rng: np.random.Generator,
                   progress: bool = False) -> GaussianFit:
    """Minimize KL(q‖p) over q = N(μ, diag σ²) by Adam on (μ, log σ), from (loc, scale).

    Each step draws n = ``samples`` fresh εᵢ ~ N(0, I) and descends the reparameterized
    gradient of ``reverse_kl_estimate`` (E_q[log q − log p̃], equal to KL(q‖p) − log Z, so only
    p̃ up to its constant is needed).  Optimizing log σ keeps σ positive.  The fit lands on a
    local minimum near its start: on a well-separated mixture, the mode on the side it starts.

    log_target : callable, Tensor (n, d) → Tensor (n,) of log p̃ with gradients.
    loc, scale : starting point, scalars (d = 1) or (d,) arrays; float32 stays float32.
    Verified by:
    tests/divergences/test_kl_directions.py::test_reverse_kl_fit_goes_to_the_mode_on_its_side,
    ::test_reverse_kl_fits_from_both_sides_are_mirror_images
    """
    log_target, rng = checks.function(log_target, "log_target"), checks.generator(rng)
    lr = checks.real(lr, "lr", 0.0, low_open=True)
    steps, samples = checks.positive_int(steps, "steps"), checks.positive_int(samples, "samples")
    loc, scale = _gaussian_parameters(loc, scale)
    mean = Tensor(loc.copy(), requires_grad=True)
    log_scale = Tensor(np.log(scale), requires_grad=True)
    optimizer = Adam([mean, log_scale], lr=lr)
    losses = np.empty(steps, dtype=loc.dtype)
    locs, log_scales = [mean.data.copy()], [log_scale.data.copy()]
    for step in tqdm(range(steps), desc="reverse KL", disable=not progress):
        optimizer.zero_grad()
        noise = rng.standard_normal((samples, loc.shape[0])).astype(loc.dtype)
        loss = reverse_kl_estimate(log_target, mean, log_scale, noise)
        loss.backward()
        optimizer.step()
        losses[step] = loss.data
        locs.append(mean.data.copy())
        log_scales.append(log_scale.data.copy())
    return GaussianFit(mean.data.copy(), np.exp(log_scale.data), losses, np.array(locs),
                       np.exp(np.array(log_scales)))


def fit_forward_kl(samples) -> GaussianFit:
    """argmin over q = N(μ, diag σ²) of KL(p‖q), from samples x₁…xₙ of p: moment matching.

    KL(p‖q) = −H(p) + Σⱼ [½ log 2πσⱼ² + E_p[(xⱼ − μⱼ)²] / (2σⱼ²)], and
    E_p[(xⱼ − μⱼ)²] = Varⱼ + (E_p[xⱼ] − μⱼ)².  Setting ∂/∂μⱼ = 0 gives μⱼ = E_p[xⱼ]; then
    ∂/∂σⱼ = 1/σⱼ − Varⱼ/σⱼ³ = 0 gives σⱼ² = Varⱼ.  With the sample average in place of E_p this
    is maximum likelihood: the sample mean and the biased (1/n) variance of each coordinate,
    i.e. the diagonal of the biased sample covariance (q is diagonal).

    samples : (n,) for d = 1, or (n, d); n ≥ 2, finite, not all equal in any coordinate.
    Verified by:
    tests/divergences/test_kl_directions.py::test_forward_kl_fit_maximizes_the_likelihood,
    ::test_forward_kl_fit_matches_the_mixture_moments
    """
    array = _check_samples(samples)  # (n, d)
    # in units of each coordinate's largest |x|, so no sum or square overflows or underflows
    size = np.max(np.abs(array), axis=0)
    size = np.where(size > 0, size, 1).astype(array.dtype)
    unit = array / size
    unit_loc = unit.mean(axis=0)
    loc, scale = size * unit_loc, size * np.sqrt(np.mean((unit - unit_loc) ** 2, axis=0))
    if not np.all(scale > 0):
        raise ValueError("samples must not be constant in any coordinate (σ would be 0)")
    return GaussianFit(loc, scale)


def _check_samples(samples) -> np.ndarray:
    """``samples`` as a finite float (n, d) array, n ≥ 2 ((n,) means d = 1)."""
    array = np.asarray(samples)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"samples must be a real array, got dtype {array.dtype}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"samples must have shape (n,) or (n, d) with n ≥ 2, got {array.shape}")
    checks.finite(array, "samples")
    return array


def cross_entropy_from_samples(samples, loc, scale) -> float:
    """−(1/n) Σᵢ log N(xᵢ; μ, diag σ²), an unbiased estimate of E_p[−log q] = KL(p‖q) + H(p)
    from samples xᵢ of p alone.  samples : (n,) for d = 1, or (n, d).

    Verified by:
    tests/divergences/test_kl_directions.py::test_forward_kl_from_samples_is_quadrature_plus_entropy
    """
    loc, scale = _gaussian_parameters(loc, scale)
    array = np.asarray(samples, dtype=loc.dtype)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != loc.shape[0] or array.shape[0] < 1:
        raise ValueError(f"samples must have shape (n, {loc.shape[0]}), got {array.shape}")
    standardized = (array - loc) / scale
    log_q = np.sum(-0.5 * LOG_2PI - np.log(scale) - 0.5 * standardized**2, axis=1)
    return float(-np.mean(log_q))


def _landscape_inputs(log_p, loc, scale, grid):
    grid = np.asarray(grid, dtype=np.float64)
    log_p = checks.log_density(log_p, "log_p")
    if grid.ndim != 1 or log_p.shape != grid.shape:
        raise ValueError(f"log_p must hold log p on the grid, shape {grid.shape}, got "
                         f"{log_p.shape}")
    mass = trapezoid(np.exp(log_p), grid)
    if abs(mass - 1.0) > MASS_TOLERANCE:
        raise ValueError(f"log_p must be a normalized density covered by the grid: ∫p = {mass}")
    loc, scale = np.broadcast_arrays(np.asarray(loc, dtype=np.float64),
                                     np.asarray(scale, dtype=np.float64))
    checks.finite(loc, "loc")
    checks.positive(scale, "scale")
    return log_p, loc, scale, grid


def _kl_1d(log_p, loc, scale, grid, reverse: bool) -> np.ndarray:
    log_p, loc, scale, grid = _landscape_inputs(log_p, loc, scale, grid)
    flat_loc, flat_scale = loc.reshape(-1), scale.reshape(-1)
    out = np.empty(flat_loc.shape)
    chunk = max(1, 2**21 // grid.shape[0])  # keep the (chunk, n) temporaries near 16 MB
    for start in range(0, flat_loc.shape[0], chunk):
        mu, sigma = flat_loc[start:start + chunk, None], flat_scale[start:start + chunk, None]
        log_q = -0.5 * LOG_2PI - np.log(sigma) - 0.5 * ((grid - mu) / sigma) ** 2
        if reverse:
            q = np.exp(log_q)
            mass = trapezoid(q, grid)
            if np.any(np.abs(mass - 1.0) > MASS_TOLERANCE):
                raise ValueError("grid must cover the mass of every q = N(loc, scale²) "
                                 f"(∫q on the grid ranges over [{mass.min()}, {mass.max()}])")
            # q = 0 where it underflows: the term is 0 there even if log p = −∞
            integrand = np.where(q > 0, q * (log_q - np.where(q > 0, log_p, 0.0)), 0.0)
        else:
            p = np.exp(log_p)
            integrand = np.where(p > 0, p * (np.where(p > 0, log_p, 0.0) - log_q), 0.0)
        out[start:start + chunk] = trapezoid(integrand, grid)
    return out.reshape(loc.shape)


def reverse_kl_1d(log_p, loc, scale, grid) -> np.ndarray:
    """KL(q‖p) = ∫ q(x) (log q(x) − log p(x)) dx for q = N(loc, scale²), by the trapezoid rule.

    log_p : (n,) log p on ``grid`` (normalized: ∫p = 1 on the grid, else ValueError).
    loc, scale : arrays broadcast together; the result has their shape, so a whole
    (μ, log σ) landscape is one call.  Terms with q = 0 count 0 (xlogy convention); the grid
    must hold every q's mass.  Verified by:
    tests/divergences/test_kl_directions.py::test_exact_kl_1d_matches_closed_form_between_gaussians,
    ::test_reverse_kl_landscape_has_two_mirror_global_minima
    """
    return _kl_1d(log_p, loc, scale, grid, reverse=True)


def forward_kl_1d(log_p, loc, scale, grid) -> np.ndarray:
    """KL(p‖q) = ∫ p(x) (log p(x) − log q(x)) dx for q = N(loc, scale²), by the trapezoid rule.

    Same arguments and shapes as ``reverse_kl_1d``; terms with p = 0 count 0.
    Verified by:
    tests/divergences/test_kl_directions.py::test_exact_kl_1d_matches_closed_form_between_gaussians,
    ::test_forward_kl_landscape_has_one_minimum_at_the_moments
    """
    return _kl_1d(log_p, loc, scale, grid, reverse=False)


def local_minima(landscape: np.ndarray) -> list[tuple[int, int]]:
    """The interior points (i, j) of a 2-D grid of values strictly below all eight neighbours:
    the local minima of a (μ, log σ) landscape from ``reverse_kl_1d`` or ``forward_kl_1d``."""
    landscape = checks.values(landscape)
    checks.shape(landscape.ndim == 2 and landscape.dtype.kind in "fiu", "landscape",
                 "a 2-D grid of numbers", f"{landscape.dtype} of shape {landscape.shape}")
    found = []
    for i in range(1, landscape.shape[0] - 1):
        for j in range(1, landscape.shape[1] - 1):
            block = landscape[i - 1:i + 2, j - 1:j + 2]
            if landscape[i, j] == block.min() and np.sum(block == landscape[i, j]) == 1:
                found.append((i, j))
    return found

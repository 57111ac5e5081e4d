"""Integrals of 1-D densities on a grid: the exact reference for divergences in one dimension.

A divergence between 1-D densities is an integral ∫ f(x) dx of a smooth, quickly decaying
integrand.  On a uniform grid x_0 < … < x_{n−1} with spacing h, the trapezoid rule

    ∫ f ≈ h (f_0/2 + f_1 + … + f_{n−2} + f_{n−1}/2)

is exact for the integrand up to O(h²) f'' and the tails cut off beyond the grid.  For the
Gaussian-like integrands here, a few thousand points over ±12 standard deviations leave an
error far below 1e-8.

Verified by: tests/divergences/test_quadrature.py::test_trapezoid_integrates_a_gaussian_density
"""
from __future__ import annotations

import numpy as np

from minivae import checks


def uniform_grid(low: float, high: float, n: int = 4001) -> np.ndarray:
    """n equally spaced points from ``low`` to ``high`` inclusive (float64)."""
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"low and high must be finite with low < high, got low={low!r}, "
                         f"high={high!r}")
    return np.linspace(low, high, checks.integer(n, "n", 3))


def _check_grid(grid, values: np.ndarray) -> np.ndarray:
    """``grid`` as an increasing 1-D array in the values' float dtype, one point per value."""
    grid = np.asarray(grid, dtype=values.dtype if values.dtype.kind == "f" else np.float64)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"grid must be a 1-D array of at least 2 points, got shape {grid.shape}")
    if values.shape[-1:] != grid.shape:
        raise ValueError(f"values must have the grid's length {grid.shape[0]} on its last axis, "
                         f"got shape {values.shape}")
    if not np.all(np.diff(grid) > 0):
        raise ValueError("grid must be strictly increasing")
    return grid


def trapezoid(values, grid) -> np.ndarray:
    """∫ f(x) dx ≈ Σ_i (x_{i+1} − x_i)(f_i + f_{i+1})/2 along the last axis of ``values``.

    values : (..., n) the integrand on the grid; finite.
    grid : (n,) increasing points.
    Verified by: tests/divergences/test_quadrature.py::test_trapezoid_integrates_a_gaussian_density
    """
    values = np.asarray(values)
    grid = _check_grid(grid, values)
    widths = np.diff(grid)
    return np.sum(widths * (values[..., 1:] + values[..., :-1]), axis=-1) / 2

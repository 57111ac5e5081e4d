"""f-divergence generators and their convex conjugates f*(t) = sup_{u ≥ 0} (t u − f(u)).

D_f(p‖q) = E_q[f(p/q)] for a convex f on u ≥ 0 with f(1) = 0; R1 of ``bounds`` is the case
f(u) = u log u.  Each generator below is read as an extended-value function: f(u) = +∞ for u < 0
(a density ratio is never negative), f(0) its limit, and f*(t) = +∞ where the supremum is.
Where f is differentiable the supremum is at f′(u) = t; where it is not, at the edge u = 0:

    name             f(u)                                  f*(t)
    kl               u log u                               e^(t−1)
    reverse_kl       −log u                                −1 − log(−t),           t < 0
    pearson          (u − 1)²                              t + t²/4 for t ≥ −2,  −1 below
    hellinger        (√u − 1)²                             t / (1 − t),            t < 1
    total_variation  ½ |u − 1|                             max(t, −½),             t ≤ ½
    jensen_shannon   ½[u log u − (u + 1) log((u + 1)/2)]   −½ log(2 − e^(2t)),     t < ½ log 2

(kl: t − log u − 1 = 0 gives u = e^(t−1), value u; pearson: u = 1 + t/2 ≥ 0 iff t ≥ −2, else
u = 0 gives −f(0) = −1; hellinger: with s = √u, (t − 1)s² + 2s − 1 peaks at s = 1/(1 − t);
total_variation: tu − ½|u − 1| is piecewise linear, largest at u = 1 (value t) or at u = 0
(value −½); jensen_shannon: f′(u) = ½ log(2u/(u + 1)) = t gives u = e^(2t)/(2 − e^(2t)).)

Each f is convex and closed on [0, ∞), so f** = f (Fenchel–Moreau), and the Fenchel–Young
inequality f(u) + f*(t) ≥ t u holds for all u, t, with equality exactly when t ∈ ∂f(u), e.g.
t = f′(u).  Putting u = p(x)/q(x), t = T(x), multiplying by q(x) and integrating gives the
variational bound D_f(p‖q) ≥ E_p[T] − E_q[f*(T)], tight at T = f′(p/q).

Verified by: tests/divergences/test_conjugates.py::test_closed_form_conjugate_is_the_supremum,
::test_biconjugate_is_the_generator, ::test_fenchel_young_inequality_and_its_equality_case
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from minivae import checks

LOG_2 = float(np.log(2.0))


@dataclass(frozen=True)
class Generator:
    """One generator f with its slope f′ (a subgradient at a kink) and conjugate f*, all
    NumPy functions of arrays; ``conjugate_domain`` = (low, high, high included?) of dom f*."""
    name: str
    f: Callable
    slope: Callable
    conjugate: Callable
    conjugate_domain: tuple


def _x_log_x(u):
    return np.where(u > 0, u * np.log(np.where(u > 0, u, 1.0)), 0.0)


def _inside(condition, value):
    """``value`` where ``condition`` holds, +∞ elsewhere (the callers silence the warnings of
    evaluating ``value`` outside)."""
    return np.where(condition, value, np.inf)


GENERATORS = {generator.name: generator for generator in (
    Generator("kl", _x_log_x, lambda u: np.log(u) + 1.0, lambda t: np.exp(t - 1.0),
              (-np.inf, np.inf, False)),
    Generator("reverse_kl", lambda u: _inside(u > 0, -np.log(u)), lambda u: -1.0 / u,
              lambda t: _inside(t < 0, -1.0 - np.log(-t)), (-np.inf, 0.0, False)),
    Generator("pearson", lambda u: (u - 1.0) ** 2, lambda u: 2.0 * (u - 1.0),
              lambda t: np.where(t >= -2.0, t + t * t / 4.0, -1.0), (-np.inf, np.inf, False)),
    Generator("hellinger", lambda u: (np.sqrt(u) - 1.0) ** 2, lambda u: 1.0 - 1.0 / np.sqrt(u),
              lambda t: _inside(t < 1, t / (1.0 - t)), (-np.inf, 1.0, False)),
    Generator("total_variation", lambda u: 0.5 * np.abs(u - 1.0),
              lambda u: 0.5 * np.sign(u - 1.0),
              lambda t: _inside(t <= 0.5, np.maximum(t, -0.5)), (-np.inf, 0.5, True)),
    Generator("jensen_shannon",
              lambda u: 0.5 * (_x_log_x(u) - (u + 1.0) * (np.log1p(u) - LOG_2)),
              lambda u: 0.5 * (LOG_2 + np.log(u) - np.log1p(u)),
              # −½ log(2 − e^(2t)) = −½ log 2 − ½ log1p(−e^(2t)/2): no cancellation as t → −∞
              lambda t: _inside(t < 0.5 * LOG_2,
                                -0.5 * LOG_2 - 0.5 * np.log1p(-0.5 * np.exp(2.0 * t))),
              (-np.inf, 0.5 * LOG_2, False)),
)}


def _points(value, name: str) -> np.ndarray:
    array = checks.values(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real number or array, got dtype {array.dtype}")
    array = array.astype(np.result_type(array.dtype, np.float64))
    if np.any(np.isnan(array)):
        raise ValueError(f"{name} contains NaN")
    return array


def _generator(name: str) -> Generator:
    return GENERATORS[checks.one_of(name, tuple(GENERATORS), "generator")]


def generator_value(name: str, u) -> np.ndarray:
    """f(u) for the generator ``name`` (table of the module docstring); +∞ for u < 0 and
    where f is infinite (reverse_kl at 0); f(1) = 0 for each.

    Verified by: tests/divergences/test_conjugates.py::test_biconjugate_is_the_generator
    """
    u = _points(u, "u")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inside = _generator(name).f(np.where(u >= 0, u, 1.0))
    return np.where(u >= 0, inside, np.inf)


def generator_slope(name: str, u) -> np.ndarray:
    """f′(u) for u > 0 (½ sign(u − 1) for total_variation: a subgradient at its kink u = 1).

    Verified by:
    tests/divergences/test_conjugates.py::test_fenchel_young_inequality_and_its_equality_case
    """
    u = _points(u, "u")
    checks.positive(u, "u")
    return _generator(name).slope(u)


def conjugate(name: str, t) -> np.ndarray:
    """f*(t) = sup_{u ≥ 0} (t u − f(u)) in closed form (table of the module docstring); +∞
    outside dom f*.

    Verified by: tests/divergences/test_conjugates.py::test_closed_form_conjugate_is_the_supremum,
    ::test_fenchel_young_inequality_and_its_equality_case
    """
    t = _points(t, "t")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _generator(name).conjugate(t)

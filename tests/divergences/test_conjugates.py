"""Convex conjugates of the f-divergence generators against a numerical supremum (a grid, then
Brent's method in the best cell), f** = f, Fenchel–Young, and the variational bound they give."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, special, stats

from minivae.divergences.bounds import r1_bound
from minivae.divergences.conjugates import (
    GENERATORS,
    conjugate,
    generator_slope,
    generator_value,
)

# The generators written again, straight from their definitions (u ≥ 0).
GENERATOR_ORACLES = {
    "kl": lambda u: special.xlogy(u, u),
    "reverse_kl": lambda u: np.where(u > 0, -np.log(np.where(u > 0, u, 1.0)), np.inf),
    "pearson": lambda u: (u - 1) ** 2,
    "hellinger": lambda u: (np.sqrt(u) - 1) ** 2,
    "total_variation": lambda u: np.abs(u - 1) / 2,
    "jensen_shannon": lambda u: (special.xlogy(u, u) - (u + 1) * np.log((u + 1) / 2)) / 2,
}
# t ranges (inside dom f*) whose maximizer u* = (f′)⁻¹(t) lies within [e⁻³⁰, e¹²]
T_RANGES = {"kl": (-20, 8), "reverse_kl": (-50, -1e-3), "pearson": (-10, 30),
            "hellinger": (-20, 0.9), "total_variation": (-3, 0.5),
            "jensen_shannon": (-20, 0.5 * np.log(2) - 1e-3)}
NAMES = sorted(GENERATOR_ORACLES)


def numerical_sup(objective, to_point, low, high, edges=()):
    """sup of objective(to_point(v)) over v ∈ [low, high] and the extra points ``edges``: a
    4001-point grid, then bounded Brent in the cells around the best grid point (the objective
    is concave in the point, so unimodal in v)."""
    grid = np.linspace(low, high, 4001)
    values = objective(to_point(grid))
    i = int(np.argmax(values))
    result = optimize.minimize_scalar(lambda v: -float(objective(to_point(v))), method="bounded",
                                      bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 4000)]),
                                      options=dict(xatol=1e-12))
    return max([values[i], -result.fun, *(float(objective(point)) for point in edges)])


def numerical_conjugate(name, t):
    """sup over u ≥ 0 of t u − f(u), u = e^v on v ∈ [−40, 12], and u = 0."""
    f = GENERATOR_ORACLES[name]
    return numerical_sup(lambda u: t * u - f(u), np.exp, -40.0, 12.0, edges=(0.0,))


def numerical_biconjugate(name, u):
    """sup over t ∈ dom f* of u t − f*(t) with the closed-form f*: t = v on [−60, 150] where
    dom f* = ℝ, else t = h − e^v on v ∈ [−40, 40] below the top h of the domain (and t = h);
    at u = 0 the supremum is a limit t → −∞, within e⁻⁴⁰ of it there."""
    low, high, closed = GENERATORS[name].conjugate_domain

    def objective(t):
        return u * t - conjugate(name, t)
    if high == np.inf:
        return numerical_sup(objective, lambda v: v, -60.0, 150.0)
    return numerical_sup(objective, lambda v: high - np.exp(v), -40.0, 40.0,
                         edges=(high,) if closed else ())


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
@settings(max_examples=15)
def test_closed_form_conjugate_is_the_supremum(name, data):
    t = data.draw(st.floats(*T_RANGES[name]), label="t")
    expected = numerical_conjugate(name, t)
    assert conjugate(name, t) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name, t", [("reverse_kl", 0.0), ("reverse_kl", 2.0), ("hellinger", 1.0),
                                     ("total_variation", 0.51),
                                     ("jensen_shannon", 0.5 * np.log(2))])
def test_conjugate_is_infinite_where_the_supremum_is(name, t):
    """Outside dom f*, t u − f(u) grows without bound along u → ∞."""
    f = GENERATOR_ORACLES[name]
    assert conjugate(name, t) == np.inf
    assert t * 1e8 - f(1e8) > t * 1e4 - f(1e4) + 1


@pytest.mark.parametrize("name", NAMES)
@given(u=st.one_of(st.floats(1e-3, 50), st.just(1.0), st.just(0.0)))
@settings(max_examples=15)
def test_biconjugate_is_the_generator(name, u):
    """Fenchel–Moreau: f is convex and closed on [0, ∞), so (f*)* = f there; also f(u) matches
    the generator written from its definition, f(1) = 0, and f = +∞ for u < 0."""
    oracle = GENERATOR_ORACLES[name](u)
    assert generator_value(name, u) == pytest.approx(oracle, rel=1e-12, abs=1e-14)
    biconjugate = numerical_biconjugate(name, u)
    if oracle == np.inf:
        assert biconjugate > 20  # sup over t < 0 of 1 + log(−t): unbounded
    else:
        assert biconjugate == pytest.approx(oracle, rel=1e-8, abs=1e-8)
    assert generator_value(name, 1.0) == 0 and generator_value(name, -u - 1e-3) == np.inf


@pytest.mark.parametrize("name", NAMES)
@given(u=st.floats(0, 100), t=st.floats(-30, 5), touching=st.floats(1e-3, 100))
@settings(max_examples=25)
def test_fenchel_young_inequality_and_its_equality_case(name, u, t, touching):
    """f(u) + f*(t) ≥ t u everywhere, and = at t = f′(u): the line of slope f′(u) with
    intercept −f*(f′(u)) touches f at u."""
    f_u, f_star = float(generator_value(name, u)), float(conjugate(name, t))
    size = abs(f_u) + abs(f_star) + abs(t * u) if np.isfinite(f_u + f_star) else 0.0
    assert f_u + f_star >= t * u - 1e-12 * size
    slope = float(generator_slope(name, touching))
    f_touching, f_star_slope = GENERATOR_ORACLES[name](touching), float(conjugate(name, slope))
    gap = f_touching + f_star_slope - slope * touching
    assert abs(gap) <= 1e-12 * (abs(f_touching) + abs(f_star_slope) + abs(slope * touching))


@pytest.mark.parametrize("name", NAMES)
def test_conjugate_gives_the_variational_bound_tight_at_the_slope(name):
    """D_f(p‖q) = ∫ q f(p/q) ≥ ∫ p T − q f*(T), with equality at T = f′(p/q) and strict
    inequality for a shifted critic; the KL, reverse KL and squared Hellinger values equal
    their Gaussian closed forms (p = N(0.3, 0.8²), q = N(0, 1), trapezoid rule)."""
    x = np.linspace(-12, 12, 24001)
    p, q = stats.norm.pdf(x, 0.3, 0.8), stats.norm.pdf(x, 0.0, 1.0)
    ratio = p / q
    divergence = np.trapezoid(q * GENERATOR_ORACLES[name](ratio), x)
    critic = generator_slope(name, ratio)
    bound = np.trapezoid(p * critic - q * conjugate(name, critic), x)
    assert bound == pytest.approx(divergence, rel=1e-9, abs=1e-12)
    with np.errstate(invalid="ignore"):
        shifted = np.trapezoid(p * (critic - 0.05) - q * conjugate(name, critic - 0.05), x)
    assert shifted < divergence - 1e-6
    closed_forms = {
        "kl": np.log(1 / 0.8) + (0.8**2 + 0.3**2) / 2 - 0.5,
        "reverse_kl": np.log(0.8) + (1 + 0.3**2) / (2 * 0.8**2) - 0.5,
        # ∫(√p − √q)² = 2 − 2 BC, BC = √(2σ₁σ₂/(σ₁² + σ₂²)) exp(−Δ²/(4(σ₁² + σ₂²)))
        "hellinger": 2 - 2 * np.sqrt(2 * 0.8 / (0.8**2 + 1)) * np.exp(-0.3**2 / (4 * 1.64)),
    }
    if name in closed_forms:
        assert divergence == pytest.approx(closed_forms[name], rel=1e-9)


def test_r1_is_the_kl_conjugate_bound():
    """bounds.r1_bound is E_p[T] − E_q[f*(T)] with the kl generator's f*(t) = e^(t−1)."""
    rng = np.random.default_rng(0)
    t_p, t_q = rng.normal(size=50), rng.normal(size=70)
    assert float(r1_bound(t_p, t_q).data) == pytest.approx(
        t_p.mean() - conjugate("kl", t_q).mean(), rel=1e-13)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="generator"):
        conjugate("chi", 0.0)
    with pytest.raises(ValueError, match="t contains NaN"):
        conjugate("kl", np.nan)
    with pytest.raises(TypeError, match="u must be a real"):
        generator_value("kl", "1")
    with pytest.raises(ValueError, match="u"):
        generator_slope("kl", 0.0)

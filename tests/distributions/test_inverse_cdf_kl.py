"""KL divergences of Exponential, Laplace, Uniform and Gumbel (and Uniform against Normal):
quadrature and Monte Carlo with scipy.stats densities, KL ≥ 0, KL(p ‖ p) = 0, the behaviour
near p = q, the pairs whose supports do not nest, and gradients.

scipy is the independent oracle here; the library itself never imports it.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import integrate, stats

from minivae import Tensor, gradcheck
from minivae.distributions.exponential import Exponential
from minivae.distributions.gumbel import EULER_GAMMA, Gumbel
from minivae.distributions.kl import cross_entropy, kl_divergence
from minivae.distributions.laplace import Laplace
from minivae.distributions.normal import Normal
from minivae.distributions.uniform import Uniform
from tests.distributions.helpers import floats


def positive(low, high):
    return floats(np.log(low), np.log(high)).map(np.exp)


def located(scale_low, scale_high):
    return st.tuples(floats(-3, 3), positive(scale_low, scale_high))


uniforms = located(0.2, 5).map(lambda t: (t[0], t[0] + t[1]))


@st.composite
def nested_uniforms(draw, margin: float = 0.0):
    """(p, q) parameters with [a_p, b_p) inside [a_q, b_q), at least ``margin`` of q's width
    from its ends (a gradient check steps both ways, so it needs p strictly inside)."""
    low, high = draw(uniforms)
    first = draw(floats(margin, 0.9))
    last = draw(floats(first + 0.05, 1 - margin))
    return (low + first * (high - low), low + last * (high - low)), (low, high)


def pair(p_strategy, q_strategy):
    return st.tuples(p_strategy, q_strategy)


# (type of p, type of q, strategy for (p's, q's) parameters), with ranges where quad is reliable
PAIRS = {
    "exponential-exponential": (Exponential, Exponential,
                                pair(st.tuples(positive(0.2, 5)), st.tuples(positive(0.2, 5)))),
    "laplace-laplace": (Laplace, Laplace, pair(located(0.3, 3), located(0.3, 3))),
    "gumbel-gumbel": (Gumbel, Gumbel, pair(located(0.5, 2), located(0.5, 2))),
    "uniform-uniform": (Uniform, Uniform, nested_uniforms()),
    "uniform-normal": (Uniform, Normal, pair(uniforms, located(0.3, 3))),
    "uniform-laplace": (Uniform, Laplace, pair(uniforms, located(0.3, 3))),
    "uniform-gumbel": (Uniform, Gumbel, pair(uniforms, located(0.3, 3))),
    "uniform-exponential": (Uniform, Exponential,
                            pair(located(0.2, 5).map(lambda t: (abs(t[0]), abs(t[0]) + t[1])),
                                 st.tuples(positive(0.2, 5)))),
}


def oracle(cls, *params):
    """The same distribution as a scipy.stats frozen distribution."""
    if cls is Exponential:
        return stats.expon(scale=1 / params[0])
    if cls is Uniform:
        return stats.uniform(params[0], params[1] - params[0])
    return {Laplace: stats.laplace, Gumbel: stats.gumbel_r, Normal: stats.norm}[cls](*params)


TAIL = 1e-30  # quadrature runs between p's TAIL- and (1 − TAIL)-quantiles


def expectation(p, function, kinks=()):
    """∫ p(x) function(x) dx between p's quantiles TAIL and 1 − TAIL, split at the kinks.

    The 2e-30 of mass left out is far below the tolerances, and far tails are where scipy's
    logpdf underflows to −∞ (its Laplace logpdf is log(pdf)).  The absolute floor 1e-14 lets
    quad stop when the integral is ≈ 0 (p ≈ q), where no relative accuracy is reachable.
    """
    low, high = p.ppf(TAIL), p.isf(TAIL)
    edges = [low, *sorted(k for k in kinks if low < k < high), high]
    return sum(integrate.quad(lambda x: p.pdf(x) * function(x), a, b, epsabs=1e-14,
                              epsrel=1e-10, limit=500)[0]
               for a, b in zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("name", PAIRS)
@given(data=st.data())
@settings(max_examples=20)
def test_kl_matches_quadrature(name, data):
    cls_p, cls_q, strategy = PAIRS[name]
    params_p, params_q = data.draw(strategy)
    p, q = oracle(cls_p, *params_p), oracle(cls_q, *params_q)
    kinks = [params_p[0], params_q[0]] if cls_q is Laplace else []  # |x − μ| has a corner
    kl = kl_divergence(cls_p(*params_p), cls_q(*params_q)).item()
    expected = expectation(p, lambda x: p.logpdf(x) - q.logpdf(x), kinks)
    # Relative 1e-8; the absolute floor covers KL ≈ 0, where quad's rounding error dominates.
    assert kl == pytest.approx(expected, rel=1e-8, abs=1e-11)
    cross = expectation(p, lambda x: -q.logpdf(x), kinks)
    assert cross_entropy(cls_p(*params_p), cls_q(*params_q)).item() == \
        pytest.approx(cross, rel=1e-8, abs=1e-11)


MONTE_CARLO = {
    "exponential-exponential": (Exponential, (0.7,), Exponential, (1.9,)),
    "laplace-laplace": (Laplace, (0.3, 0.8), Laplace, (-0.5, 1.6)),
    "gumbel-gumbel": (Gumbel, (0.3, 0.8), Gumbel, (-0.5, 1.6)),
    "uniform-uniform": (Uniform, (0.0, 1.0), Uniform, (-0.5, 2.0)),
    "uniform-normal": (Uniform, (-0.2, 1.4), Normal, (0.5, 0.9)),
    "uniform-laplace": (Uniform, (-0.2, 1.4), Laplace, (0.5, 0.9)),
    "uniform-gumbel": (Uniform, (-0.2, 1.4), Gumbel, (0.5, 0.9)),
    "uniform-exponential": (Uniform, (0.2, 1.4), Exponential, (0.9,)),
}


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_kl_matches_monte_carlo(name):
    cls_p, params_p, cls_q, params_q = MONTE_CARLO[name]
    p, q = oracle(cls_p, *params_p), oracle(cls_q, *params_q)
    x = p.rvs(size=100_000, random_state=np.random.default_rng(11))
    terms = p.logpdf(x) - q.logpdf(x)
    standard_error = terms.std(ddof=1) / np.sqrt(x.size)
    kl = kl_divergence(cls_p(*params_p), cls_q(*params_q)).item()
    # the floor covers uniform-uniform, where every term is the same constant
    assert abs(terms.mean() - kl) <= 5 * standard_error + 1e-12


@st.composite
def batch(draw, cls, scales=(0.01, 100.0), locs=(-10.0, 10.0)):
    """Parameters of shape (3,); scales and widths log-uniform in ``scales``."""
    def array(low, high):
        return np.array([draw(floats(low, high)) for _ in range(3)])
    positive = np.exp(array(*np.log(scales)))
    if cls is Exponential:
        return (positive,)
    loc = array(*locs)
    return (loc, loc + positive) if cls is Uniform else (loc, positive)


SAME_FAMILY = [Exponential, Laplace, Uniform, Gumbel]


@pytest.mark.parametrize("cls", SAME_FAMILY, ids=lambda c: c.__name__)
@given(data=st.data())
def test_kl_is_nonnegative_and_zero_on_the_diagonal(cls, data):
    params_p, params_q = data.draw(batch(cls)), data.draw(batch(cls))
    p, q = cls(*params_p), cls(*params_q)
    with np.errstate(over="ignore"):  # far-apart Gumbels: e^c overflows, and KL = +∞ is right
        assert np.all(kl_divergence(p, q).data >= 0)
    assert np.all(kl_divergence(p, p).data == 0)
    # a nudge of about 1e-9 in every parameter (outwards for Uniform, so the supports nest):
    # the KL is tiny, and still not negative
    nudge = [1e-9 * (1 + np.abs(v)) for v in params_p]
    if cls is Uniform:
        width = params_p[1] - params_p[0]
        nudge = [-1e-9 * width, 1e-9 * width]
    kl = kl_divergence(p, cls(*[v + d for v, d in zip(params_p, nudge)])).data
    assert np.all((kl >= 0) & (kl < 1e-7))


@pytest.mark.parametrize("cls", SAME_FAMILY, ids=lambda c: c.__name__)
@given(data=st.data())
@settings(max_examples=20)
def test_kl_is_cross_entropy_minus_entropy(cls, data):
    p, q = cls(*data.draw(batch(cls))), cls(*data.draw(batch(cls)))
    with np.errstate(over="ignore"):  # scales far apart: Γ(β_p/β_q + 1) overflows to +∞
        kl = kl_divergence(p, q).data
        difference = (cross_entropy(p, q) - p.entropy()).data
    finite = np.isfinite(kl)
    np.testing.assert_array_equal(np.isfinite(difference), finite)
    np.testing.assert_allclose(difference[finite], kl[finite], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cross_entropy(p, p).data, p.entropy().data, rtol=1e-12)


def gumbel_scale_fisher_information():
    """β² E[(∂ log p/∂β)²] = E[(y − 1 − y e^(−y))²] for a standard Gumbel y, by quadrature."""
    g = stats.gumbel_r()
    return integrate.quad(lambda y: g.pdf(y) * (y - 1 - y * np.exp(-y)) ** 2, -10, 60,
                          epsabs=0, epsrel=1e-12, limit=200)[0]


def test_gumbel_scale_fisher_information_is_the_known_constant():
    assert gumbel_scale_fisher_information() == \
        pytest.approx((1 - EULER_GAMMA) ** 2 + np.pi**2 / 6, rel=1e-9)


DELTA, B = 1e-7, 1.3


NEAR_DIAGONAL = {  # (p, q, F δ²): q differs from p by δ in one parameter, F its information
    "exponential-rate": (Exponential(B), Exponential(B + DELTA), DELTA**2 / B**2),
    "laplace-loc": (Laplace(0.2, B), Laplace(0.2 + DELTA, B), DELTA**2 / B**2),
    "laplace-scale": (Laplace(0.2, B), Laplace(0.2, B + DELTA), DELTA**2 / B**2),
    "gumbel-loc": (Gumbel(0.2, B), Gumbel(0.2 + DELTA, B), DELTA**2 / B**2),
    "gumbel-scale": (Gumbel(0.2, B), Gumbel(0.2, B + DELTA),
                     ((1 - EULER_GAMMA) ** 2 + np.pi**2 / 6) * DELTA**2 / B**2),
}


@pytest.mark.parametrize("case", NEAR_DIAGONAL)
def test_kl_is_accurate_near_the_diagonal(case):
    """KL(p_θ ‖ p_θ+δ) = ½ F δ² (1 + O(δ)), F the Fisher information of θ.  With δ = 1e-7 the
    KL is ~1e-15, and an evaluation that cancels O(1) terms would be off by several percent."""
    p, q, quadratic_form = NEAR_DIAGONAL[case]
    assert kl_divergence(p, q).item() == pytest.approx(0.5 * quadratic_form, rel=1e-5, abs=0)


def test_kl_support_mismatch_is_infinite():
    q = Uniform(np.array([-1.0, 0.0]), 2.0)
    for p in (Normal(0.0, np.ones((3, 1))), Laplace(0.0, np.ones((3, 1))),
              Gumbel(0.0, np.ones((3, 1))), Exponential(np.ones((3, 1)))):
        kl = kl_divergence(p, q)
        assert kl.shape == (3, 2) and np.all(kl.data == np.inf)
        assert np.all(cross_entropy(p, q).data == np.inf)
    # Uniform ‖ Uniform is finite only where the supports nest, entry by entry ...
    low, high = Tensor([0.0, 0.0, -1.0], requires_grad=True), Tensor([1.0, 2.0, 1.0],
                                                                     requires_grad=True)
    kl = kl_divergence(Uniform(low, high), Uniform(-0.5, 1.5))
    np.testing.assert_array_equal(kl.data, [np.log(2.0), np.inf, np.inf])
    # ... and its gradient stays finite: d/da_p log(w_q/w_p) = 1/w_p, d/db_p = −1/w_p
    kl.backward(np.ones(3))
    np.testing.assert_array_equal(low.grad, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(high.grad, [-1.0, 0.0, 0.0])
    kl = kl_divergence(Uniform(np.array([-0.1, 0.0, 0.1]), 1.0), Exponential(2.0)).data
    assert kl[0] == np.inf and np.all(np.isfinite(kl[1:]))


GRADIENT_PAIRS = [(Exponential, Exponential), (Laplace, Laplace), (Gumbel, Gumbel),
                  (Uniform, Uniform), (Uniform, Normal), (Uniform, Laplace), (Uniform, Gumbel),
                  (Uniform, Exponential)]


@pytest.mark.parametrize("cls_p, cls_q", GRADIENT_PAIRS, ids=lambda c: c.__name__)
@given(data=st.data())
@settings(max_examples=10)
def test_kl_gradients(cls_p, cls_q, data):
    # moderate ranges keep e^((μ_q − μ_p)/β_q) and Γ(1 + β_p/β_q) in the Gumbel KL finite
    params_p = data.draw(batch(cls_p, scales=(0.3, 3.0), locs=(-3.0, 3.0)))
    params_q = data.draw(batch(cls_q, scales=(0.3, 3.0), locs=(-3.0, 3.0)))
    if cls_q is Uniform:  # only nested supports have a finite KL
        params_p, params_q = data.draw(nested_uniforms(margin=0.01))
    if cls_q is Exponential:  # U(a, b) must lie in [0, ∞)
        params_p = tuple(v - params_p[0].min() + 0.1 for v in params_p)
    n_p = len(params_p)

    def kl(*values):
        return kl_divergence(cls_p(*values[:n_p]), cls_q(*values[n_p:]))

    assert gradcheck(kl, *params_p, *params_q)


FLOAT32_PAIRS = [
    (Exponential, (0.7,), Exponential, ([1.9, 0.2],)),
    (Laplace, (0.3, 0.8), Laplace, ([-0.5, 0.1], 1.6)),
    (Gumbel, (0.3, 0.8), Gumbel, ([-0.5, 0.1], 1.6)),
    (Uniform, (0.0, 1.0), Uniform, ([-0.5, 0.5], 2.0)),
    (Uniform, (0.2, 1.4), Normal, ([0.5, 0.1], 0.9)),
    (Uniform, (0.2, 1.4), Laplace, ([0.5, 0.1], 0.9)),
    (Uniform, (0.2, 1.4), Gumbel, ([0.5, 0.1], 0.9)),
    (Uniform, (0.2, 1.4), Exponential, ([0.5, 0.1],)),
    (Normal, (0.0, 1.0), Uniform, ([-1.0, 0.0], 1.0)),
]


@pytest.mark.parametrize("cls_p, params_p, cls_q, params_q", FLOAT32_PAIRS)
def test_kl_preserves_float32(cls_p, params_p, cls_q, params_q):
    def build(dtype):
        return (cls_p(*[np.asarray(v, dtype) for v in params_p]),
                cls_q(*[np.asarray(v, dtype) for v in params_q]))

    p, q = build(np.float32)
    kl, cross = kl_divergence(p, q), cross_entropy(p, q)
    assert kl.dtype == cross.dtype == np.float32 and kl.shape == (2,)
    # and float32 arithmetic loses no more than float32 rounding against float64
    np.testing.assert_allclose(kl.data, kl_divergence(*build(np.float64)).data, rtol=1e-5)

"""Every registered closed-form KL over the whole float range, against mpmath.

For each pair in the registry of ``minivae.distributions.kl`` (enumerated, so that a pair
registered later fails ``test_every_registered_pair_is_covered`` until it has a case here),
hypothesis draws parameters log-uniformly over the dtype's range (magnitudes 1e-300 … 1e308 in
float64, 1e-37 … 1e38 in float32, either sign for locations; a parameter of q is now and then
the same as p's) and the KL must be

* never NaN and never negative;
* +∞ where the exact value exceeds the largest float, and finite where it is below an eighth
  of it (in between, an intermediate of the stable form may overflow first: within a factor
  8 of the largest float either is accepted);
* equal to an mpmath oracle, written from the textbook formula and evaluated with enough
  digits for its cancellations (60 plus twice the largest decimal exponent among the
  parameters), within RTOL of its dtype.

RTOL is 1e-11 in float64: where e^x enters with |x| up to 709 its relative error is up to
|x| ε ≈ 8e-14, and log Γ carries a few 1e-15 of absolute error; in float32 it is 1e-4 for the
same reasons at ε = 6e-8 and |x| ≤ 89, and because the special functions round to float32.

The defects these pin down: NaN where a ratio of scales overflowed (∞ − ∞), and Beta, Dirichlet
and Gamma KLs that subtracted log Γ values of size a log a (Beta(1e15, 1) ‖ Beta(1, 1) was 32.0,
Beta(1e17, 1) ‖ Beta(1, 1) was 0.0, a Dirichlet KL was −691).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import hypothesis.strategies as st
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, note, settings

from minivae import Tensor, ops
from minivae.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Dirichlet,
    Exponential,
    Gamma,
    Gumbel,
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    Poisson,
    Uniform,
    kl_divergence,
)
from minivae.distributions.kl import _KL

DTYPES = [np.float64, np.float32]
EXPONENTS = {np.float64: (-300.0, 308.0), np.float32: (-37.0, 38.0)}
# the constructors refuse concentrations whose log Γ could overflow (6e304, 9e35)
CONCENTRATION_EXPONENT = {np.float64: 304.0, np.float32: 35.0}
RTOL = {np.float64: 1e-11, np.float32: 1e-4}
BAND = 8.0  # within this factor of the largest float, +∞ or the exact value are both right


# -- drawing parameters ------------------------------------------------------------------------

@dataclass
class Draw:
    """Parameters for one example: log-uniform magnitudes over the dtype's range (or up to
    10^±``limit``)."""
    data: st.DataObject
    dtype: type
    limit: float = np.inf
    perturbed: bool = False  # whether a parameter of q is already one of p's moved by 1 + δ

    def positive(self, high: float | None = None) -> np.floating:
        low, top = EXPONENTS[self.dtype]
        top = top if high is None else high
        exponent = self.data.draw(st.floats(max(low, -self.limit), min(top, self.limit)))
        return self.dtype(10.0 ** exponent)

    def real(self) -> np.floating:
        sign = self.data.draw(st.sampled_from([1.0, -1.0]))
        return self.dtype(sign) * self.positive()

    def or_same(self, value, draw):
        """``value`` (a parameter of p) now and then, or value (1 + δ) with δ log-uniform in
        1e-15 … 0.1 of either sign (near p = q, where a KL of order δ² must keep its relative
        accuracy), else a fresh draw.

        At most one parameter per example is moved: two moved in proportion (Gamma's shape
        and rate) leave a ratio near 1 of two rounded ratios, off by the rounding itself."""
        choice = self.data.draw(st.integers(0, 4))
        if choice == 0:
            return value
        if choice == 1 and not self.perturbed:
            self.perturbed = True
            sign = self.data.draw(st.sampled_from([1.0, -1.0]))
            delta = sign * 10.0 ** self.data.draw(st.floats(-15, -1))
            with np.errstate(over="ignore"):
                moved = self.dtype(float(value) * (1 + delta))
            return moved if np.isfinite(moved) else value
        return draw()

    def array(self, draw, n: int) -> np.ndarray:
        return np.array([draw() for _ in range(n)], dtype=self.dtype)


def mpf(x) -> mp.mpf:
    return mp.mpf(float(x))  # exact: every float32 and float64 is a binary64 number


def digits(*parameters) -> int:
    """Working digits for the oracle: enough for cancellations among terms of the size of
    products of the parameters and their logarithms."""
    values = np.abs(np.array([float(v) for v in parameters]))
    values = values[(values > 0) & np.isfinite(values)]
    largest = float(np.max(np.abs(np.log10(values)))) if values.size else 0.0
    return int(60 + 2 * largest)


# -- the oracles: textbook formulas in mpmath --------------------------------------------------

def normal(mu_p, s_p, mu_q, s_q):
    return mp.log(s_q / s_p) + (s_p**2 + (mu_p - mu_q) ** 2) / (2 * s_q**2) - mp.mpf(1) / 2


def exponential(l_p, l_q):
    return mp.log(l_p / l_q) + l_q / l_p - 1


def laplace(mu_p, b_p, mu_q, b_q):
    d = abs(mu_p - mu_q)
    return mp.log(b_q / b_p) + d / b_q + (b_p / b_q) * mp.exp(-d / b_p) - 1


def gumbel(mu_p, b_p, mu_q, b_q):
    r = b_p / b_q
    return (mp.log(b_q / b_p) + (mu_p - mu_q) / b_q + mp.euler * (r - 1)
            + mp.exp((mu_q - mu_p) / b_q + mp.loggamma(1 + r)) - 1)


def gamma(a_p, r_p, a_q, r_q):
    return ((a_p - a_q) * mp.digamma(a_p) - mp.loggamma(a_p) + mp.loggamma(a_q)
            + a_q * (mp.log(r_p) - mp.log(r_q)) + a_p * (r_q - r_p) / r_p)


def dirichlet(a, b):
    a0, b0 = mp.fsum(a), mp.fsum(b)
    return (mp.loggamma(a0) - mp.fsum(mp.loggamma(x) for x in a) - mp.loggamma(b0)
            + mp.fsum(mp.loggamma(x) for x in b)
            + mp.fsum((x - y) * (mp.digamma(x) - mp.digamma(a0)) for x, y in zip(a, b)))


def uniform_uniform(a_p, b_p, a_q, b_q):
    return mp.log((b_q - a_q) / (b_p - a_p)) if a_q <= a_p and b_p <= b_q else mp.inf


def uniform_normal(a, b, mu, s):
    w, m = b - a, (a + b) / 2
    return -mp.log(w) + mp.log(2 * mp.pi) / 2 + mp.log(s) + (w**2 / 12 + (m - mu) ** 2) / (2 * s**2)


def uniform_laplace(a, b, mu, s):
    w, m = b - a, (a + b) / 2
    if mu <= a or mu >= b:
        mean_distance = abs(m - mu)
    else:
        mean_distance = ((b - mu) ** 2 + (mu - a) ** 2) / (2 * w)
    return mp.log(2 * s / w) + mean_distance / s


def uniform_gumbel(a, b, mu, beta):
    w, m = b - a, (a + b) / 2
    s = w / beta
    return (mp.log(beta / w) + (m - mu) / beta
            + mp.exp(-(a - mu) / beta) * -mp.expm1(-s) / s)


def uniform_exponential(a, b, rate):
    return -mp.log((b - a) * rate) + rate * (a + b) / 2 if a >= 0 else mp.inf


def log_sigmoid(logit):
    return -mp.log1p(mp.exp(-logit)) if logit > 0 else logit - mp.log1p(mp.exp(logit))


def bernoulli(log_p1, log_p0, log_q1, log_q0):
    return (mp.exp(log_p1) * (log_p1 - log_q1) if log_p1 > -mp.inf else 0) + \
        (mp.exp(log_p0) * (log_p0 - log_q0) if log_p0 > -mp.inf else 0)


def log_softmax(logits):
    total = mp.log(mp.fsum(mp.exp(v) for v in logits))
    return [v - total for v in logits]


def categorical(lp, lq):
    log_p, log_q = log_softmax(lp), log_softmax(lq)
    return mp.fsum(mp.exp(a) * (a - b) for a, b in zip(log_p, log_q))


def mvn(mu_p, l_p, mu_q, l_q):
    """½ [tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀ Σ_q⁻¹ (μ_q − μ_p) − 2 + log |Σ_q| − log |Σ_p|] in two
    dimensions, from the means and the entries (L₀₀, L₁₀, L₁₁) of the Cholesky factors:
    Σ = L Lᵀ, inverted by its adjugate."""
    def covariance(l00, l10, l11):
        return l00 * l00, l00 * l10, l10 * l10 + l11 * l11  # (Σ₀₀, Σ₀₁, Σ₁₁)

    p00, p01, p11 = covariance(*l_p)
    q00, q01, q11 = covariance(*l_q)
    det_q = q00 * q11 - q01 * q01
    i00, i01, i11 = q11 / det_q, -q01 / det_q, q00 / det_q  # Σ_q⁻¹
    trace = i00 * p00 + 2 * i01 * p01 + i11 * p11
    d0, d1 = mu_q[0] - mu_p[0], mu_q[1] - mu_p[1]
    mahalanobis = i00 * d0 * d0 + 2 * i01 * d0 * d1 + i11 * d1 * d1
    log_det = mp.log(det_q) - mp.log(p00 * p11 - p01 * p01)
    return (trace + mahalanobis - 2 + log_det) / 2


# -- one case per registered pair ------------------------------------------------------------

@dataclass
class Case:
    """Parameters (scalars of the dtype, in one list), how to build p and q from them (numbers
    or Tensors, in the same order), the exact KL as a function of them (mpf), and the indices
    of parameters at the edge of their domain (no two-sided derivative there)."""
    parameters: list
    build: Callable
    oracle: Callable
    one_sided: tuple = ()


def location_scale(family, oracle):
    def case(d: Draw):
        mu_p, s_p = d.real(), d.positive()
        mu_q, s_q = d.or_same(mu_p, d.real), d.or_same(s_p, d.positive)
        return Case([mu_p, s_p, mu_q, s_q],
                    lambda mu_p, s_p, mu_q, s_q: (family(mu_p, s_p), family(mu_q, s_q)), oracle)
    return case


def rates(family, oracle):
    def case(d: Draw):
        l_p = d.positive()
        return Case([l_p, d.or_same(l_p, d.positive)],
                    lambda l_p, l_q: (family(l_p), family(l_q)), oracle)
    return case


def shape(d: Draw, total_of: int = 1):
    return d.positive(CONCENTRATION_EXPONENT[d.dtype] - np.log10(total_of))


def gamma_case(d: Draw):
    a_p, r_p = shape(d), d.positive()
    a_q, r_q = d.or_same(a_p, lambda: shape(d)), d.or_same(r_p, d.positive)
    return Case([a_p, r_p, a_q, r_q],
                lambda a_p, r_p, a_q, r_q: (Gamma(a_p, r_p), Gamma(a_q, r_q)), gamma)


def exponential_gamma_case(d: Draw):
    return Case([d.positive(), shape(d), d.positive()],
                lambda l_p, a_q, r_q: (Exponential(l_p), Gamma(a_q, r_q)),
                lambda l_p, a_q, r_q: gamma(1, l_p, a_q, r_q))


def gamma_exponential_case(d: Draw):
    return Case([shape(d), d.positive(), d.positive()],
                lambda a_p, r_p, l_q: (Gamma(a_p, r_p), Exponential(l_q)),
                lambda a_p, r_p, l_q: gamma(a_p, r_p, 1, l_q))


def beta_case(d: Draw):
    a = [shape(d, 2), shape(d, 2)]
    b = [d.or_same(v, lambda: shape(d, 2)) for v in a]
    return Case(a + b, lambda a1, a0, b1, b0: (Beta(a1, a0), Beta(b1, b0)),
                lambda a1, a0, b1, b0: dirichlet([a1, a0], [b1, b0]))


def dirichlet_case(d: Draw):
    a = [shape(d, 3) for _ in range(3)]
    b = [d.or_same(v, lambda: shape(d, 3)) for v in a]
    return Case(a + b, lambda *v: (Dirichlet(stack(v[:3])), Dirichlet(stack(v[3:]))),
                lambda *v: dirichlet(v[:3], v[3:]))


def stack(values) -> Tensor:
    return ops.stack([v if isinstance(v, Tensor) else Tensor(np.asarray(v)) for v in values])


def bounds(d: Draw):
    low, high = sorted([d.real(), d.real()])
    return low, (high if low < high else np.nextafter(low, d.dtype(np.inf)))


def uniform_uniform_case(d: Draw):
    (a_p, b_p), (a_q, b_q) = bounds(d), bounds(d)
    if d.data.draw(st.booleans()):  # nested supports, the finite case
        a_q, b_q = min(a_p, a_q), max(b_p, b_q)
    return Case([a_p, b_p, a_q, b_q],
                lambda a_p, b_p, a_q, b_q: (Uniform(a_p, b_p), Uniform(a_q, b_q)),
                uniform_uniform)


def unbounded_uniform_case(family):
    def case(d: Draw):
        first = [d.positive()] if family is Exponential else [d.real(), d.positive()]
        return Case(first + list(bounds(d)),
                    lambda *v: (family(*v[:-2]), Uniform(*v[-2:])), lambda *v: mp.inf)
    return case


def uniform_location_scale_case(family, oracle):
    def case(d: Draw):
        return Case([*bounds(d), d.real(), d.positive()],
                    lambda a, b, mu, s: (Uniform(a, b), family(mu, s)), oracle)
    return case


def uniform_exponential_case(d: Draw):
    a, b = bounds(d)
    if d.data.draw(st.booleans()):  # inside [0, ∞), the finite case
        with np.errstate(over="ignore"):  # b may overflow to ∞: replaced just below
            a, b = np.abs(a), d.dtype(np.abs(a)) + np.abs(b - a)
        if not (np.isfinite(b) and a < b):
            a, b = d.dtype(0.5), d.dtype(2)
    return Case([a, b, d.positive()],
                lambda a, b, rate: (Uniform(a, b), Exponential(rate)), uniform_exponential)


def bernoulli_logs(from_logit, value):
    """(log P(1), log P(0)) of Bernoulli(logits=value) or Bernoulli(probs=value)."""
    if from_logit:
        return log_sigmoid(value), log_sigmoid(-value)
    return (mp.log(value) if value > 0 else -mp.inf), (mp.log1p(-value) if value < 1 else -mp.inf)


def bernoulli_case(d: Draw):
    def one():
        if d.data.draw(st.booleans()):
            return True, d.real()
        prob = d.dtype(10.0 ** d.data.draw(st.floats(EXPONENTS[d.dtype][0], 0)))
        return False, (d.dtype(1) - prob if d.data.draw(st.booleans()) else prob)

    (logit_p, p), (logit_q, q) = one(), one()

    def build(p, q):
        return tuple(Bernoulli(logits=v) if logit else Bernoulli(probs=v)
                     for logit, v in ((logit_p, p), (logit_q, q)))

    def oracle(p, q):
        logs_p, logs_q = bernoulli_logs(logit_p, p), bernoulli_logs(logit_q, q)
        if any(lp > -mp.inf and lq == -mp.inf for lp, lq in zip(logs_p, logs_q)):
            return mp.inf  # q gives probability 0 to an outcome of p
        return bernoulli(*logs_p, *logs_q)

    edges = tuple(i for i, (logit, v) in enumerate(((logit_p, p), (logit_q, q)))
                  if not logit and v in (0, 1))
    return Case([p, q], build, oracle, edges)


def categorical_case(d: Draw):
    lp = [d.real() for _ in range(3)]
    lq = [d.or_same(v, d.real) for v in lp]
    return Case(lp + lq, lambda *v: (Categorical(logits=stack(v[:3])),
                                     Categorical(logits=stack(v[3:]))),
                lambda *v: categorical(v[:3], v[3:]))


def independent_case(d: Draw):
    mu_p, s_p = [d.real(), d.real()], [d.positive(), d.positive()]
    mu_q = [d.or_same(v, d.real) for v in mu_p]
    s_q = [d.or_same(v, d.positive) for v in s_p]
    return Case(mu_p + s_p + mu_q + s_q,
                lambda *v: (Independent(Normal(stack(v[0:2]), stack(v[2:4])), 1),
                            Independent(Normal(stack(v[4:6]), stack(v[6:8])), 1)),
                lambda *v: normal(v[0], v[2], v[4], v[6]) + normal(v[1], v[3], v[5], v[7]))


def factor(d: Draw) -> list:
    """The entries (L₀₀, L₁₀, L₁₁) of a Cholesky factor s M: s over the whole range (a decade
    short of the largest float, so that M's entries stay finite), M of moderate condition."""
    low, high = st.floats(-1, 1), st.floats(-3, 3)
    entries = d.data.draw(st.tuples(low, high, low))
    scale = d.positive(EXPONENTS[d.dtype][1] - 1.5)
    return [d.dtype(10 ** entries[0] * scale), d.dtype(entries[1] * scale),
            d.dtype(10 ** entries[2] * scale)]


def lower(entries) -> Tensor:
    l00, l10, l11 = (v if isinstance(v, Tensor) else Tensor(np.asarray(v)) for v in entries)
    return ops.stack([ops.stack([l00, 0.0 * l00]), ops.stack([l10, l11])])


def diagonal(entries) -> Tensor:
    return lower([entries[0], 0.0 * entries[0], entries[1]])


def same_or(d: Draw, values: list, draw: Callable) -> list:
    """``values`` (possibly one of them moved, see ``Draw.or_same``) or a fresh ``draw()``."""
    if d.data.draw(st.booleans()):
        return [d.or_same(v, lambda v=v: v) for v in values]
    return draw()


def mvn_case(d: Draw):
    mu_p, l_p = [d.real(), d.real()], factor(d)
    mu_q = [d.or_same(v, d.real) for v in mu_p]
    l_q = same_or(d, l_p, lambda: factor(d))
    return Case(mu_p + l_p + mu_q + l_q,
                lambda *v: (MultivariateNormal(stack(v[0:2]), lower(v[2:5])),
                            MultivariateNormal(stack(v[5:7]), lower(v[7:10]))),
                lambda *v: mvn(v[0:2], v[2:5], v[5:7], v[7:10]))


def diagonal_mvn_case(d: Draw):
    mu_p, s_p = [d.real(), d.real()], [d.positive(), d.positive()]
    mu_q = [d.or_same(v, d.real) for v in mu_p]
    l_q = same_or(d, [s_p[0], d.dtype(0), s_p[1]], lambda: factor(d))
    return Case(mu_p + s_p + mu_q + l_q,
                lambda *v: (Independent(Normal(stack(v[0:2]), stack(v[2:4])), 1),
                            MultivariateNormal(stack(v[4:6]), lower(v[6:9]))),
                lambda *v: mvn(v[0:2], [v[2], 0, v[3]], v[4:6], v[6:9]))


def mvn_diagonal_case(d: Draw):
    mu_p, l_p = [d.real(), d.real()], factor(d)
    mu_q = [d.or_same(v, d.real) for v in mu_p]
    s_q = same_or(d, [l_p[0], l_p[2]], lambda: [d.positive(), d.positive()])
    return Case(mu_p + l_p + mu_q + s_q,
                lambda *v: (MultivariateNormal(stack(v[0:2]), lower(v[2:5])),
                            Independent(Normal(stack(v[5:7]), stack(v[7:9])), 1)),
                lambda *v: mvn(v[0:2], v[2:5], v[5:7], [v[7], 0, v[8]]))


CASES: dict[tuple[type, type], Callable] = {
    (Normal, Normal): location_scale(Normal, normal),
    (Laplace, Laplace): location_scale(Laplace, laplace),
    (Gumbel, Gumbel): location_scale(Gumbel, gumbel),
    (Exponential, Exponential): rates(Exponential, exponential),
    (Poisson, Poisson): rates(Poisson, lambda p, q: p * mp.log(p / q) - p + q),
    (Gamma, Gamma): gamma_case,
    (Exponential, Gamma): exponential_gamma_case,
    (Gamma, Exponential): gamma_exponential_case,
    (Beta, Beta): beta_case,
    (Dirichlet, Dirichlet): dirichlet_case,
    (Uniform, Uniform): uniform_uniform_case,
    (Normal, Uniform): unbounded_uniform_case(Normal),
    (Laplace, Uniform): unbounded_uniform_case(Laplace),
    (Gumbel, Uniform): unbounded_uniform_case(Gumbel),
    (Exponential, Uniform): unbounded_uniform_case(Exponential),
    (Uniform, Normal): uniform_location_scale_case(Normal, uniform_normal),
    (Uniform, Laplace): uniform_location_scale_case(Laplace, uniform_laplace),
    (Uniform, Gumbel): uniform_location_scale_case(Gumbel, uniform_gumbel),
    (Uniform, Exponential): uniform_exponential_case,
    (Bernoulli, Bernoulli): bernoulli_case,
    (Categorical, Categorical): categorical_case,
    (Independent, Independent): independent_case,
    (MultivariateNormal, MultivariateNormal): mvn_case,
    (Independent, MultivariateNormal): diagonal_mvn_case,
    (MultivariateNormal, Independent): mvn_diagonal_case,
}


def test_every_registered_pair_is_covered():
    # the library's pairs: other tests register pairs of their own throwaway classes
    library = {pair for pair in _KL if all(t.__module__.startswith("minivae.") for t in pair)}
    assert library == set(CASES), library ^ set(CASES)


# -- the check ---------------------------------------------------------------------------------

def exact_value(oracle, parameters, extra_digits: int = 0) -> mp.mpf:
    with mp.workdps(digits(*parameters) + extra_digits):
        return oracle(*[mpf(v) for v in parameters])


def assert_matches(kl: float, oracle, parameters, dtype) -> None:
    """The checks of the module doc for one computed value against the exact one.

    Where the value is off, the oracle is evaluated again with twice the digits and 40 more,
    and then 40 more still: the change bounds the error of the first (a KL of exactly 0,
    between equal distributions, comes out of the textbook formula as 1e-60 or so), which is
    then allowed too.  Twice the digits, because the digits rule counts each parameter's
    exponent while a cancellation can be as deep as a product of them: Gumbel(1e-36, 1e36) ‖
    Gumbel(9.99999999999999e-37, 1e36) is x²/2 = 5e-175 with x = (μ_p − μ_q)/β = 1e-87, and
    e^(−x) − 1 + x is exactly 0 at 132 digits and at 172."""
    finfo = np.finfo(dtype)
    exact = exact_value(oracle, parameters)
    assert not np.isnan(kl), f"NaN where the exact KL is {mp.nstr(exact, 17)}"
    assert kl >= 0, f"negative KL {kl!r} where the exact KL is {mp.nstr(exact, 17)}"
    if exact > finfo.max:
        assert kl == np.inf, f"{kl!r} where the exact KL {mp.nstr(exact, 5)} overflows"
        return
    if kl == np.inf and exact > finfo.max / BAND:
        return
    if abs(mpf(kl) - exact) <= RTOL[dtype] * exact + finfo.tiny:
        return
    more = digits(*parameters) + 40
    closer, closest = (exact_value(oracle, parameters, extra) for extra in (more, more + 40))
    error = abs(mpf(kl) - closest)
    assert error <= RTOL[dtype] * closest + finfo.tiny + 10 * abs(closer - closest), \
        f"{kl!r} against the exact {mp.nstr(closest, 17)} (relative error " \
        f"{mp.nstr(error / closest, 3) if closest else 'inf'})"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("pair", list(CASES), ids=lambda t: f"{t[0].__name__}-{t[1].__name__}")
@given(data=st.data())
@settings(max_examples=20)
def test_kl_matches_mpmath_over_the_float_range(pair, dtype, data):
    case = CASES[pair](Draw(data, dtype))
    note(f"parameters {[float(v) for v in case.parameters]}")
    p, q = case.build(*case.parameters)
    assert (type(p), type(q)) == pair
    with np.errstate(all="ignore"):
        kl = kl_divergence(p, q)
    assert kl.dtype == dtype
    assert_matches(kl.item(), case.oracle, case.parameters, dtype)


# -- the examples that were wrong, one by one ----------------------------------------------

REGRESSIONS = {
    # σ_p/σ_q = 1e310 overflowed and r² − 1 − log r² was ∞ − ∞: the exact KL is 5e619
    "normal-scale-ratio-overflows": (
        lambda: (Normal(0.0, 1e155), Normal(0.0, 1e-155)),
        lambda: normal(0, mp.mpf(1e155), 0, mp.mpf(1e-155))),
    "normal-float32": (
        lambda: (Normal(np.float32(0), np.float32(1e20)), Normal(np.float32(0), np.float32(1e-20))),
        lambda: normal(0, mpf(np.float32(1e20)), 0, mpf(np.float32(1e-20)))),
    "independent-normal": (
        lambda: (Independent(Normal(np.zeros(2), np.array([1e155, 1.0])), 1),
                 Independent(Normal(np.zeros(2), np.array([1e-155, 1.0])), 1)),
        lambda: normal(0, mp.mpf(1e155), 0, mp.mpf(1e-155))),
    # λ_q/λ_p = 1e330 overflowed: t − log1p(t) with t = ∞
    "exponential-rate-ratio-overflows": (
        lambda: (Exponential(1e-300), Exponential(1e30)),
        lambda: exponential(mp.mpf(1e-300), mp.mpf(1e30))),
    "laplace-scale-ratio-overflows": (
        lambda: (Laplace(0.0, 1e200), Laplace(0.0, 1e-200)),
        lambda: laplace(0, mp.mpf(1e200), 0, mp.mpf(1e-200))),
    # |μ_p − μ_q|/b_p = 1e310 overflows, the KL (≈ 1e10) does not
    "laplace-distance-overflows": (
        lambda: (Laplace(0.0, 1e-300), Laplace(1e10, 1.0)),
        lambda: laplace(0, mp.mpf(1e-300), mp.mpf(1e10), 1)),
    "gumbel-scale-ratio-overflows": (
        lambda: (Gumbel(0.0, 1e200), Gumbel(0.0, 1e-200)),
        lambda: gumbel(0, mp.mpf(1e200), 0, mp.mpf(1e-200))),
    # b − a = 2e308 overflowed to ∞: the exact KL is 0.392
    "uniform-normal-bounds-near-the-largest-float": (
        lambda: (Uniform(-1e308, 1e308), Normal(0.0, 1e308)),
        lambda: uniform_normal(mp.mpf(-1e308), mp.mpf(1e308), 0, mp.mpf(1e308))),
    # log Γ(a + 1) − log Γ(a) formed from two values of size a log a
    "beta-1e15": (lambda: (Beta(1e15, 1.0), Beta(1.0, 1.0)),
                  lambda: dirichlet([mp.mpf(1e15), 1], [1, 1])),
    "beta-1e17": (lambda: (Beta(1e17, 1.0), Beta(1.0, 1.0)),
                  lambda: dirichlet([mp.mpf(1e17), 1], [1, 1])),
    "dirichlet-1e300": (lambda: (Dirichlet(np.array([1e300, 1.0, 2.0])),
                                 Dirichlet(np.array([1.0, 1.0, 1.0]))),
                        lambda: dirichlet([mp.mpf(1e300), 1, 2], [1, 1, 1])),
    # B_g(1e19; 1e-290) ≈ 1e309 and B_g(b₀; a₀) ≈ 5e308 both overflow, ∞ − ∞ in either
    # bracket form: the exact KL 5.0e308 is beyond the largest float
    "beta-both-brackets-overflow": (
        lambda: (Beta(1e-290, 1e-290), Beta(1e-290, 1e19)),
        lambda: dirichlet([mp.mpf(1e-290), mp.mpf(1e-290)], [mp.mpf(1e-290), mp.mpf(1e19)])),
    # the increment form's slope step divided c = 1e140 by x = 1e-169 (∞), and its Δg″
    # formed 1/x² (∞): NaN where the exact KL is 9.90e306
    "beta-increment-of-a-tiny-concentration": (
        lambda: (Beta(1e-169, 1e-171), Beta(1e140, 1e-171)),
        lambda: dirichlet([mp.mpf(1e-169), mp.mpf(1e-171)], [mp.mpf(1e140), mp.mpf(1e-171)])),
    # B_g of the largest category and of the totals overflow (∞ − ∞), and the increment form,
    # +∞ like the KL (5.2e309), was not chosen: NaN
    "dirichlet-increment-form-overflows": (
        lambda: (Dirichlet(np.array([1e-127, 1e-126, 1e-126])),
                 Dirichlet(np.array([1e-127, 1e184, 1e-126]))),
        lambda: dirichlet([mp.mpf(1e-127), mp.mpf(1e-126), mp.mpf(1e-126)],
                          [mp.mpf(1e-127), mp.mpf(1e184), mp.mpf(1e-126)])),
    # Δg″ ≈ 1/a² overflowed at a = 1e-200 inside the quadrature: relative error 1.3e-6
    "dirichlet-tiny-concentrations-near-p-equals-q": (
        lambda: (Dirichlet(np.array([1e-200, 1e-210])), Dirichlet(np.array([1.001e-200, 1e-210]))),
        lambda: dirichlet([mp.mpf(1e-200), mp.mpf(1e-210)], [mp.mpf(1.001e-200), mp.mpf(1e-210)])),
    "gamma-large-shape": (lambda: (Gamma(1e15, 1.0), Gamma(1e15 + 3, 1.0)),
                          lambda: gamma(mp.mpf(1e15), 1, mp.mpf(1e15 + 3), 1)),
    # t = (λ_q − λ_p)/λ_p = −1 + 1e-600 rounded to −1: log1p(−1) = −∞
    "poisson-rate-ratio-underflows": (
        lambda: (Poisson(1e300), Poisson(1e-300)),
        lambda: (lambda p, q: p * mp.log(p / q) - p + q)(mp.mpf(1e300), mp.mpf(1e-300))),
    # logsumexp([1e7, 1, 1e7]) = 1e7 + log 2 rounds to 1e7 + 1 in float32
    "categorical-float32-logits-1e7": (
        lambda: (Categorical(logits=np.array([1, 1, 1e7], dtype=np.float32)),
                 Categorical(logits=np.array([1e7, 1, 1e7], dtype=np.float32))),
        lambda: categorical([1, 1, mp.mpf(1e7)], [mp.mpf(1e7), 1, mp.mpf(1e7)])),
    # near p = q the KL is of order δ², and every input it is formed from must keep its
    # relative accuracy: r − 1 from the rounded r = β_p/β_q was off by 3.2e-11
    "gumbel-near-equal-scales": (
        lambda: (Gumbel(1.0, 1.0), Gumbel(1.0, 1.000001)),
        lambda: gumbel(1, 1, 1, mp.mpf(1.000001))),
    # steps from l − max l: −1.000001 − 1 rounds, relative error 4.4e-10
    "categorical-near-equal-logits": (
        lambda: (Categorical(logits=np.array([1, 1, -1.0])),
                 Categorical(logits=np.array([1, 1, -1.000001]))),
        lambda: categorical([1, 1, -1], [1, 1, mp.mpf(-1.000001)])),
    "categorical-float32-near-equal-logits": (
        lambda: (Categorical(logits=np.array([1, 1, 0.1], dtype=np.float32)),
                 Categorical(logits=np.array([1, 1, 0.1001], dtype=np.float32))),
        lambda: categorical([1, 1, mpf(np.float32(0.1))], [1, 1, mpf(np.float32(0.1001))])),
    # b_p (e^(−a) − 1 + a) = 1e-16 · 5e-299 is subnormal before the division by b_q: 1.3e-9
    "laplace-subnormal-intermediate": (
        lambda: (Laplace(1e-152, 1e-16), Laplace(1.0000000000001e-152, 1e-16)),
        lambda: laplace(mp.mpf(1e-152), mp.mpf(1e-16), mp.mpf(1.0000000000001e-152),
                        mp.mpf(1e-16))),
    # log1p((p − q)/(1 − p)) with an argument near −1 kept its rounding: 4.6e-3 and 1.6e-4 off
    "bernoulli-probability-near-one": (
        lambda: (Bernoulli(probs=0.3), Bernoulli(probs=1 - 1e-15)),
        lambda: bernoulli(*bernoulli_logs(False, mpf(0.3)),
                          *bernoulli_logs(False, mpf(1 - 1e-15)))),
    "bernoulli-float32-probability-near-one": (
        lambda: (Bernoulli(probs=np.float32(0.1)), Bernoulli(probs=np.float32(0.99999))),
        lambda: bernoulli(*bernoulli_logs(False, mpf(np.float32(0.1))),
                          *bernoulli_logs(False, mpf(np.float32(0.99999))))),
    # e^(log π + s) with log π = −1e14 − log 2 rounded at the size of 1e14: 1.4e-3 off
    "categorical-float32-near-p-with-a-far-logit": (
        lambda: (Categorical(logits=np.array([1, 1, -1.00000000376832e14], dtype=np.float32)),
                 Categorical(logits=np.array([1.1, 0.1, 1], dtype=np.float32))),
        lambda: categorical([1, 1, mp.mpf(-1.00000000376832e14)],
                            [mpf(np.float32(1.1)), mpf(np.float32(0.1)), 1])),
    # q ≈ p shifted by −1: log1p(Σ) with Σ ≈ −0.63 was left for the normalized logits, 8e-4 off
    "categorical-float32-shifted-logits": (
        lambda: (Categorical(logits=np.array([-10, 1, 1], dtype=np.float32)),
                 Categorical(logits=np.array([-11, 0.001, 0.001], dtype=np.float32))),
        lambda: categorical([-10, 1, 1], [-11, mpf(np.float32(0.001)), mpf(np.float32(0.001))])),
    # 1e5 + 1e-8 − 1e5 rounds in float64 unless taken by two-sum: 1.5e-3 off
    "categorical-float32-large-equal-logits": (
        lambda: (Categorical(logits=np.full(3, 1e5, dtype=np.float32)),
                 Categorical(logits=np.array([1e-8, 1e-8, 1e-9], dtype=np.float32))),
        lambda: categorical([100000] * 3, [mpf(np.float32(v)) for v in (1e-8, 1e-8, 1e-9)])),
    # π₀ = e^(−99) is subnormal in float32, its term 1e-35 is not: 2.3e-3 off
    "categorical-float32-subnormal-probability": (
        lambda: (Categorical(logits=np.array([1, 1, 100], dtype=np.float32)),
                 Categorical(logits=np.array([-1e8, 1, 100], dtype=np.float32))),
        lambda: categorical([1, 1, 100], [-100000000, 1, 100])),
    # −1e308 − 1.1e308 overflowed to −∞ in q's normalized logits: +inf for a KL of e^(−1e308)
    "categorical-normalized-logit-overflows": (
        lambda: (Categorical(logits=np.array([1, 1e308, 1])),
                 Categorical(logits=np.array([1, 1.1e308, -1e308]))),
        lambda: categorical([1, mp.mpf(1e308), 1], [1, mp.mpf(1.1e308), mp.mpf(-1e308)])),
    # the substitution formed L₁₀ y₀ = 2e155 · 1e153 (∞) where ‖L_q⁻¹L_p‖² = 5e306 is finite
    "diagonal-mvn-substitution-product-overflows": (
        lambda: (Independent(Normal(np.ones(2), np.array([1e308, 1.0])), 1),
                 MultivariateNormal(np.ones(2), np.array([[1e155, 0.0], [2e155, 1e155]]))),
        lambda: mvn([1, 1], [mp.mpf(1e308), 0, 1], [1, 1],
                    [mp.mpf(1e155), mp.mpf(2e155), mp.mpf(1e155)])),
    # m₁₀ = (L_p₁₀ − L_q₁₀ m₀₀)/L_q₁₁ cancelled to 1e-6 from the rounded m₀₀: 1.4e-11 off
    "mvn-near-equal-factors": (
        lambda: (MultivariateNormal(np.ones(2), np.array([[1.0, 0.0], [1.0, 1.0]])),
                 MultivariateNormal(np.ones(2), np.array([[1.000001, 0.0], [1.0, 1.0]]))),
        lambda: mvn([1, 1], [1, 1, 1], [1, 1], [mp.mpf(1.000001), 1, 1])),
    # ½(tr + Mahalanobis − d) rounds 2 + 1e-6 in float32: 5e-7 came out 4.77e-7
    "mvn-float32-near-equal-means": (
        lambda: (MultivariateNormal(np.zeros(2, np.float32), np.eye(2, dtype=np.float32)),
                 MultivariateNormal(np.array([1e-3, 0], np.float32), np.eye(2, dtype=np.float32))),
        lambda: mvn([0, 0], [1, 0, 1], [mpf(np.float32(1e-3)), 0], [1, 0, 1])),
    "mvn-diagonal-float32-near-equal-means": (
        lambda: (MultivariateNormal(np.zeros(2, np.float32), np.eye(2, dtype=np.float32)),
                 Independent(Normal(np.array([1e-3, 0], np.float32), np.ones(2, np.float32)), 1)),
        lambda: mvn([0, 0], [1, 0, 1], [mpf(np.float32(1e-3)), 0], [1, 0, 1])),
    # μ_q − μ_p = 2e308 overflows, the Mahalanobis term (2e308/1e307)² does not
    "mvn-means-near-the-largest-float": (
        lambda: (MultivariateNormal(np.array([-1e308, 0.0]), 1e307 * np.eye(2)),
                 MultivariateNormal(np.array([1e308, 0.0]), 1e307 * np.eye(2))),
        lambda: mvn([mp.mpf(-1e308), 0], [mp.mpf(1e307), 0, mp.mpf(1e307)],
                    [mp.mpf(1e308), 0], [mp.mpf(1e307), 0, mp.mpf(1e307)])),
}


@pytest.mark.parametrize("name", REGRESSIONS)
def test_named_examples(name):
    build, oracle = REGRESSIONS[name]
    with np.errstate(all="ignore"):  # some examples overflow on purpose (IEEE ±∞) when built
        p, q = build()
        kl = kl_divergence(p, q)
    with mp.workdps(700):
        exact = oracle()
    assert_matches(kl.item(), lambda: exact, [], kl.dtype.type)


# -- gradients ---------------------------------------------------------------------------------

GRADIENT_RTOL = 1e-6
GRADIENT_EXPONENT = 100.0


def exact_gradient(case: Case) -> tuple[list, mp.mpf]:
    """∂KL/∂x_i for each parameter x_i, by central differences of the oracle at relative
    steps h = 10^(−D/3) (D working digits), or None where a step leaves the domain (a bound of
    nested supports) or the case marks the parameter as one-sided (a probability 0 or 1); and
    a bound on the error of each x_i ∂KL/∂x_i: the largest change when the step shrinks to
    h·1e-6 and the digits grow by 40 (which moves the truncation error, of order h², and the
    rounding error, of order 10^(−D)/h, apart; the rounding is of the size of the terms the
    KL is formed from, which need not scale with x_i: at Bernoulli(logits=1e-25) ‖
    Bernoulli(logits=1e-25) the KL moves by h² ≈ 1e-150 at D = 150 digits, and the estimate
    was −x³/48 at both steps).  Each step is a power of two, so that x_i ± step is exact: a
    rounded x_i ± step moves the KL by its rounding times ∂²KL/∂x_i² whatever the step
    (1e-100 in ∂KL/∂μ at Laplace(1, 1e-90) ‖ Laplace(1, 1e-90), where ∂KL/∂μ = 0)."""
    values = [mpf(v) for v in case.parameters]
    scale = max((abs(v) for v in values), default=mp.mpf(1))
    work = digits(*case.parameters) + 40
    out, error = [], mp.mpf(0)
    with mp.workdps(work):
        for i, x in enumerate(values):
            if i in case.one_sided:
                out.append(None)
                continue
            estimates = []
            for shrink, extra in ((0, 0), (6, 40)):
                relative_step = mp.mpf(10) ** (-work // 3 - shrink)
                step = mp.mpf(2) ** mp.floor(mp.log(relative_step * (abs(x) if x else scale), 2))
                moved = [values[:i] + [x + sign * step] + values[i + 1:] for sign in (1, -1)]
                with mp.workdps(work + extra):
                    up, down = (case.oracle(*v) for v in moved)
                if not all(isinstance(v, mp.mpf) and mp.isfinite(v) for v in (up, down)):
                    break
                estimates.append((up - down) / (2 * step))
            out.append(estimates[0] if len(estimates) == 2 else None)
            if len(estimates) == 2:
                error = max(error, abs(x * (estimates[0] - estimates[1])))
    return out, error


@pytest.mark.parametrize("pair", list(CASES), ids=lambda t: f"{t[0].__name__}-{t[1].__name__}")
@given(data=st.data())
@settings(max_examples=5)
def test_gradients_are_finite_and_exact_where_the_kl_is_finite(pair, data):
    """Where the KL is finite, backward gives no NaN, and each ∂KL/∂x_i whose exact value is a
    float is finite and agrees with the oracle's central difference: x_i ∂KL/∂x_i within 1e-6
    of the largest of them (|x_i ∂KL/∂x_i| measures how much the KL moves when x_i does).
    Where the exact ∂KL/∂x_i itself overflows (x_i = 0 can have one: MVN L₁₀ = 0 with
    ∂KL/∂L₁₀ = −2e309) the computed one may be ±∞ or NaN.

    Magnitudes 1e-100 … 1e100 in float64 (the oracle's cost grows with its digits): squares
    of ratios of two parameters still overflow, and poles such as ψ′(x) ≈ 1/x² at x = 1e-100
    reach 1e200."""
    case = CASES[pair](Draw(data, np.float64, limit=GRADIENT_EXPONENT))
    note(f"parameters {[float(v) for v in case.parameters]}")
    leaves = [Tensor(np.asarray(v), requires_grad=True) for v in case.parameters]
    with np.errstate(all="ignore"):
        kl = kl_divergence(*case.build(*leaves))
        if not np.isfinite(kl.item()):
            return
        kl.backward()
    grads = [0.0 if leaf.grad is None else float(leaf.grad) for leaf in leaves]
    exact, oracle_error = exact_gradient(case)
    finfo = np.finfo(np.float64)
    overflows = [e is not None and abs(e) > finfo.max / BAND for e in exact]
    assert not any(np.isnan(g) for g, over in zip(grads, overflows) if not over), grads
    largest = max((abs(e * mpf(x)) for x, e, over in zip(case.parameters, exact, overflows)
                   if e is not None and not over), default=mp.mpf(0))
    for x, grad, derivative, over in zip(case.parameters, grads, exact, overflows):
        if derivative is None or over:
            continue
        assert np.isfinite(grad), (grad, mp.nstr(derivative, 17))
        error = abs(mpf(grad) * mpf(x) - derivative * mpf(x))
        assert error <= GRADIENT_RTOL * largest + oracle_error + finfo.tiny, \
            f"∂KL/∂x = {grad!r} against {mp.nstr(derivative, 17)} for x = {float(x)!r}"

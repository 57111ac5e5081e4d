"""Exponential, Laplace, Uniform, Gumbel: densities and moments against scipy.stats, the
inverse-CDF samplers (KS tests, gradients, the ends of the uniform grid), validation, dtypes.

scipy is the independent oracle here; the library itself never imports it.  The KL
divergences of these families are tested in test_inverse_cdf_kl.py.
"""
from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings
from scipy import stats

from minivae import Tensor, gradcheck
from minivae.distributions.exponential import Exponential, standard_exponential_from_uniform
from minivae.distributions.gumbel import Gumbel, standard_gumbel_from_uniform
from minivae.distributions.laplace import Laplace, standard_laplace_from_uniform
from minivae.distributions.uniform import Uniform
from tests.distributions.helpers import reals

FAMILIES = ["exponential", "laplace", "uniform", "gumbel"]


@st.composite
def parameters(draw, family, shape=(3,)):
    """Parameters as a tuple of arrays; scales and widths log-uniform in [0.1, 10]."""
    positive = np.exp(draw(reals(shape, np.log(0.1), np.log(10.0))))
    if family == "exponential":
        return (positive,)
    loc = draw(reals(shape, -5, 5))
    return (loc, loc + positive) if family == "uniform" else (loc, positive)


def make(family, *params, **kwargs):
    cls = {"exponential": Exponential, "laplace": Laplace, "uniform": Uniform,
           "gumbel": Gumbel}[family]
    return cls(*params, **kwargs)


def oracle(family, *params):
    """The same distribution as a scipy.stats frozen distribution."""
    if family == "exponential":
        return stats.expon(scale=1 / params[0])
    if family == "uniform":
        return stats.uniform(params[0], params[1] - params[0])
    return {"laplace": stats.laplace, "gumbel": stats.gumbel_r}[family](*params)


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
@settings(max_examples=30)
def test_log_prob_matches_scipy(family, data):
    params = data.draw(parameters(family, (2, 3)))
    x = data.draw(reals((4, 1, 3), -30, 30))
    expected = oracle(family, *params).logpdf(x)
    if family == "uniform":  # scipy's support is [a, b], ours [a, b): compare off the edge
        x = np.where(x == params[1], params[0], x)
        expected = oracle(family, *params).logpdf(x)
    np.testing.assert_allclose(make(family, *params).log_prob(x).data, expected,
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
@settings(max_examples=30)
def test_entropy_matches_scipy(family, data):
    params = data.draw(parameters(family))
    np.testing.assert_allclose(make(family, *params).entropy().data,
                               oracle(family, *params).entropy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
@settings(max_examples=30)
def test_mean_and_variance_match_scipy(family, data):
    params = data.draw(parameters(family))
    dist, reference = make(family, *params), oracle(family, *params)
    np.testing.assert_allclose(dist.mean.data, reference.mean(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dist.variance.data, reference.var(), rtol=1e-12)


def test_log_prob_outside_the_support_is_minus_infinity():
    ends = np.array([-np.inf, np.inf])
    for family in FAMILIES:
        params = (2.0,) if family == "exponential" else (-1.0, 1.5)
        assert np.all(make(family, *params).log_prob(ends).data == -np.inf), family
        with pytest.raises(ValueError, match="x must be free of NaN"):
            make(family, *params).log_prob(np.nan)
    assert Exponential(2.0).log_prob(-1e-300).item() == -np.inf
    assert Exponential(2.0).log_prob(0.0).item() == np.log(2.0)
    values = Uniform(-1.0, 1.5).log_prob(np.array([-1.0 - 1e-15, -1.0, 1.5 - 1e-15, 1.5])).data
    np.testing.assert_array_equal(values, [-np.inf, -np.log(2.5), -np.log(2.5), -np.inf])
    # The Gumbel entry at −∞ must not send a NaN into the parameters' gradients.
    loc, scale = Tensor(0.5, requires_grad=True), Tensor(2.0, requires_grad=True)
    Gumbel(loc, scale).log_prob(np.array([-np.inf, 1.0])).sum().backward()
    assert np.isfinite(loc.grad) and np.isfinite(scale.grad)


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
@settings(max_examples=10)
def test_log_prob_and_entropy_gradients(family, data):
    params = data.draw(parameters(family))
    dist = make(family, *params)
    # points strictly inside the support and away from the Laplace kink at μ
    x = dist.mean.data + np.sqrt(dist.variance.data) * np.array([0.3, -0.2, 0.7])
    assert gradcheck(lambda *p: make(family, *p).log_prob(x), *params)
    if family in ("laplace", "gumbel"):  # the entropy depends on the scale only
        assert gradcheck(lambda s: make(family, params[0], s).entropy(), params[1])
    else:
        assert gradcheck(lambda *p: make(family, *p).entropy(), *params)
    if family != "uniform":  # the uniform density is flat in x
        assert gradcheck(lambda v: make(family, *params).log_prob(v), x)


FIXED = {"exponential": (1.7,), "laplace": (0.4, 1.3), "uniform": (-0.5, 2.0),
         "gumbel": (0.4, 1.3)}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("family", FAMILIES)
def test_rsample_matches_scipy_by_ks_test(family, dtype):
    params = [np.asarray(p, dtype) for p in FIXED[family]]
    draws = make(family, *params).rsample(np.random.default_rng(1), (20_000,)).data
    assert draws.dtype == dtype
    assert stats.kstest(draws.astype(np.float64), oracle(family, *FIXED[family]).cdf).pvalue \
        > 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_moments_match(family):
    n = 100_000
    reference = oracle(family, *FIXED[family])
    draws = make(family, *FIXED[family]).sample(np.random.default_rng(2), (n,)).data
    mean, variance, excess_kurtosis = (float(m) for m in reference.stats(moments="mvk"))
    assert abs(draws.mean() - mean) <= 5 * np.sqrt(variance / n)
    # Var of the sample variance ≈ (μ₄ − σ⁴)/n = σ⁴ (excess kurtosis + 2)/n.
    assert abs(draws.var(ddof=1) - variance) <= 5 * variance * np.sqrt((excess_kurtosis + 2) / n)


def test_inverse_cdf_exponential_equals_the_direct_sampler():
    """−log(1 − u)/λ and NumPy's ziggurat exponential sampler have the same law."""
    rate, n = 1.7, 50_000
    inverse_cdf = Exponential(rate).sample(np.random.default_rng(3), (n,)).data
    direct = np.random.default_rng(4).exponential(1 / rate, n)
    assert stats.ks_2samp(inverse_cdf, direct).pvalue > 1e-3
    # the same test does see a 5% change of scale, so passing above is informative
    assert stats.ks_2samp(inverse_cdf, 1.05 * direct).pvalue < 1e-6


@pytest.mark.parametrize("family", FAMILIES)
@given(data=st.data())
@settings(max_examples=10)
def test_rsample_gradcheck_with_fixed_noise(family, data):
    params = data.draw(parameters(family))

    def draw(*p):  # the same noise every call: z is a deterministic function of θ
        return make(family, *p).rsample(np.random.default_rng(7), (2,))

    assert gradcheck(draw, *params)
    leaves = [Tensor(p, requires_grad=True) for p in params]
    z = draw(*leaves)
    z.sum().backward()
    # dz/dθ from the inverse CDF, written in terms of z itself
    if family == "exponential":
        np.testing.assert_allclose(leaves[0].grad, (-z.data / params[0]).sum(0), rtol=1e-10)
    elif family == "uniform":
        width = params[1] - params[0]
        np.testing.assert_allclose(leaves[0].grad, ((params[1] - z.data) / width).sum(0),
                                   rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(leaves[1].grad, ((z.data - params[0]) / width).sum(0),
                                   rtol=1e-8, atol=1e-10)
    else:
        np.testing.assert_allclose(leaves[0].grad, 2.0)
        np.testing.assert_allclose(leaves[1].grad, ((z.data - params[0]) / params[1]).sum(0),
                                   rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("family", ["exponential", "laplace", "gumbel"])
def test_score_function_has_zero_mean(family):
    """E_q[∂/∂θ log q(x)] = ∂/∂θ ∫ q dx = 0 when the support does not move with θ.

    Uniform is left out on purpose: its support [a, b) moves with θ, so differentiating
    ∫ₐᵇ q dx = 1 adds boundary terms, and indeed ∂/∂a log q = 1/(b − a) ≠ 0 on average.
    """
    n = 50_000
    leaves = [Tensor(np.full(n, p), requires_grad=True) for p in FIXED[family]]  # per-draw θ
    dist = make(family, *leaves)
    dist.log_prob(dist.sample(np.random.default_rng(5))).sum().backward()
    for leaf in leaves:
        assert abs(leaf.grad.mean()) <= 5 * leaf.grad.std(ddof=1) / np.sqrt(n)


class _Constant(np.random.Generator):
    """A generator whose ``random`` returns one fixed point of the uniform grid."""

    def __init__(self, where: str):
        super().__init__(np.random.PCG64(0))
        self.where = where

    def random(self, size=None, dtype=np.float64, out=None):
        step = np.finfo(dtype).eps / 2  # Generator.random returns multiples of this step
        return np.full(size, 0.0 if self.where == "bottom" else 1 - step, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_noise_is_finite_at_the_ends_of_the_grid(dtype):
    step = np.finfo(dtype).eps / 2
    grid = np.random.default_rng(0).random(1000, dtype=dtype) / step
    np.testing.assert_array_equal(grid, np.round(grid))  # the grid the samplers assume
    ends = np.array([0.0, step, 0.5, 1 - step], dtype=dtype)
    for noise, quantile in [(standard_exponential_from_uniform, stats.expon.ppf),
                            (standard_laplace_from_uniform, stats.laplace.ppf),
                            (standard_gumbel_from_uniform, stats.gumbel_r.ppf)]:
        values = noise(ends)
        assert values.dtype == dtype and np.all(np.isfinite(values))
        # away from u = 0 the noise is the quantile function of the standard distribution
        np.testing.assert_allclose(values[1:], quantile(ends[1:].astype(np.float64)),
                                   rtol=1e-12 if dtype == np.float64 else 1e-5)
    for where in ("bottom", "top"):
        for family in FAMILIES:
            dist = make(family, *[np.asarray(p, dtype) for p in FIXED[family]])
            z = dist.rsample(_Constant(where), (3,))
            assert np.all(np.isfinite(z.data)) and np.all(np.isfinite(dist.log_prob(z).data))


def test_uniform_draws_stay_below_high():
    """With u = 1 − 2⁻⁵³, a + (b − a)u rounds up to b for these (a, b); the draw must not."""
    low, high = 0.6398146546030792, 4.314347803424672
    u = 1 - np.finfo(np.float64).eps / 2
    assert low + (high - low) * u == high  # the rounding really happens
    a, b = Tensor(low, requires_grad=True), Tensor(high, requires_grad=True)
    z = Uniform(a, b).rsample(_Constant("top"))
    assert z.item() < high and Uniform(low, high).log_prob(z).item() == -np.log(high - low)
    z.backward()
    assert a.grad == pytest.approx(0.0, abs=1e-15) and b.grad == 1.0


@pytest.mark.parametrize("family, params, name, expected", [
    ("exponential", (0.0,), "rate", "positive"),
    ("exponential", (np.array([1.0, -2.0]),), "rate", "positive"),
    ("exponential", (np.inf,), "rate", "positive and finite"),
    ("exponential", (np.nan,), "rate", "positive"),
    ("laplace", (np.nan, 1.0), "loc", "finite"),
    ("laplace", (0.0, -1.0), "scale", "positive"),
    ("laplace", (0.0, np.nan), "scale", "positive"),
    ("gumbel", (np.array([0.0, np.inf]), 1.0), "loc", "finite"),
    ("gumbel", (0.0, 0.0), "scale", "positive"),
    ("gumbel", (0.0, np.nan), "scale", "positive"),
    ("uniform", (np.nan, 1.0), "low", "finite"),
    ("uniform", (0.0, np.inf), "high", "finite"),
    ("uniform", (1.0, 1.0), "low", "less than high"),
    ("uniform", (np.array([0.0, 2.0]), 1.0), "low", "less than high"),
])
def test_invalid_parameters_raise_value_errors_naming_them(family, params, name, expected):
    with pytest.raises(ValueError, match=rf"^{name} must be {expected}"):
        make(family, *params)
    make(family, *params, validate_args=False)  # the check can be switched off


def test_bad_arguments_raise_type_errors():
    with pytest.raises(TypeError, match="rng"):
        Gumbel(0.0, 1.0).sample(np.random.RandomState(0))
    with pytest.raises(TypeError, match="high"):
        Uniform(np.zeros(2, np.float32), np.ones(2))


@pytest.mark.parametrize("family", FAMILIES)
def test_float32_is_preserved(family):
    dist = make(family, *[np.asarray(p, np.float32) for p in FIXED[family]])
    rng = np.random.default_rng(0)
    x = dist.rsample(rng, (3,))
    outputs = [x, dist.sample(rng), dist.log_prob(x), dist.log_prob(np.float32(0.5)),
               dist.entropy(), dist.mean, dist.variance]
    assert all(out.dtype == np.float32 for out in outputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_follow_sample_batch_event(family):
    first = np.full((3, 1), 1.0)
    params = (first,) if family == "exponential" else (first, first + np.arange(1.0, 5.0))
    dist = make(family, *params)
    batch = (3, 1) if family == "exponential" else (3, 4)
    assert dist.batch_shape == batch and dist.event_shape == ()
    x = dist.sample(np.random.default_rng(0), (5, 2))
    assert x.shape == (5, 2, *batch)
    assert dist.rsample(np.random.default_rng(0)).shape == batch
    assert dist.log_prob(x).shape == (5, 2, *batch)
    assert dist.log_prob(1.5).shape == batch
    assert dist.entropy().shape == dist.mean.shape == dist.variance.shape == batch

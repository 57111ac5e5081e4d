"""Fuzzing every distribution's constructor and methods with odd inputs.

Whatever arrives (random shapes, float32 or float64, NaN, ±inf, ±1e300, values of the wrong
type, negative sample sizes, a seed instead of a Generator), each call either returns NaN-free
values or raises ValueError/TypeError with a message (``fuzzing.check_contract``).  ±∞ is
admitted in results of log-densities, KLs and moments, where it is the exact answer (outside a
support, disjoint supports) or the true value overflows the dtype; it is not admitted in
samples of distributions built from moderate parameters, nor anywhere in the valid-input
checks at the end, which assert finite results so that the fuzzing is not vacuous.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minivae import Tensor
from minivae.distributions import (
    Bernoulli,
    BernoulliLogits,
    Beta,
    Categorical,
    DiagonalNormal,
    Dirichlet,
    Exponential,
    Gamma,
    GaussianMixture,
    Gumbel,
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    Poisson,
    RelaxedOneHotCategorical,
    Uniform,
    cross_entropy,
    kl_divergence,
    scale_tril_from_unconstrained,
)
from tests.fuzzing import anything, arrays, check_contract, floats

EXAMPLES = 600
EXTREMES_BY_KIND = {
    "real": [0.0, -1.0, 1.0, 1e-300, 1e4, -1e4, 50.0, -50.0, 1e30, -1e30, 1e300, -1e300],
    "positive": [1e-300, 1e-30, 1e-4, 1.0, 50.0, 1e4, 1e30, 1e300],
    "unit": [0.0, 1.0, 1e-300, 1 - 1e-16, 0.5],
}


TAME = {"real": (-20.0, 20.0), "positive": (0.05, 20.0), "unit": (0.0, 1.0)}


def elements(kind: str, width: int):
    low, high = (float(np.float32(v)) for v in TAME[kind])
    return st.one_of(
        st.floats(low, high, width=width),
        st.sampled_from(EXTREMES_BY_KIND[kind]).map(
            lambda v: float(np.clip(v, -3e38, 3e38)) if width == 32 else v),
        floats(width=width))  # anything at all, NaN and ±inf included, now and then


@st.composite
def parameters(draw, kinds, shapes):
    """One value per parameter: mostly well-formed arrays of one dtype with extreme entries,
    sometimes one of them replaced by junk (the wrong dtype, shape or type, NaN, ±inf)."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    width = 32 if dtype == np.float32 else 64
    values = [draw(hnp.arrays(dtype, shape, elements=elements(kind, width)))
              for kind, shape in zip(kinds, shapes)]
    if draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(values) - 1))
        with np.errstate(over="ignore"):  # the other precision: 1e300 becomes inf, on purpose
            other = values[i].astype(np.float64 if width == 32 else np.float32)
        values[i] = draw(st.one_of(arrays(), anything(), floats(), st.just(other)))
    if draw(st.booleans()):  # parameters that record gradients
        values = [Tensor(v, requires_grad=True) if isinstance(v, np.ndarray)
                  and v.dtype.kind == "f" else v for v in values]
    return values


def sample_shapes():
    small = st.lists(st.integers(-2, 3), max_size=2).map(tuple)
    return st.one_of(small, small, st.integers(-2, 3), anything())


def rngs():
    return st.one_of(st.integers(0, 2**16).map(np.random.default_rng),
                     st.integers(0, 2**16).map(np.random.default_rng), anything())


B = hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)  # a batch shape
K = st.integers(1, 3)  # classes, event size


@st.composite
def family_and_parameters(draw):
    """(name, constructor, positional parameters, keyword arguments)."""
    name = draw(st.sampled_from(sorted(FAMILIES)))
    make, kinds = FAMILIES[name]
    batch, k = draw(B), draw(K)
    shapes = {
        "Dirichlet": [batch + (k,)], "Categorical.probs": [batch + (k,)],
        "Categorical.logits": [batch + (k,)], "RelaxedOneHotCategorical": [(), batch + (k,)],
        "MultivariateNormal": [batch + (k,), (k, k)],
        "MultivariateNormal.unconstrained": [batch + (k,), (k, k)],
        "GaussianMixture": [(2,), batch + (2, k), batch + (2, k)],
        "DiagonalNormal": [batch + (k,)] * 2, "BernoulliLogits": [batch + (k,)],
    }.get(name, [batch] * len(kinds))
    params = draw(parameters(kinds, shapes))
    kwargs = {}
    if name in ("Bernoulli.probs", "Bernoulli.logits", "BernoulliLogits"):
        kwargs = {"soft": draw(st.booleans())}
    if name == "RelaxedOneHotCategorical":
        kwargs = {"st_": draw(st.booleans())}
    return name, make, params, kwargs


def values_for(d, draw):
    """A value to score: mostly of the right shape, with extremes; sometimes anything."""
    shape = d.batch_shape + d.event_shape
    width = 32 if d.dtype == np.float32 else 64
    binary = hnp.arrays(d.dtype, shape, elements=st.sampled_from([0.0, 1.0]))
    indices = hnp.arrays(np.int64, d.batch_shape, elements=st.integers(-1, 4))
    return draw(st.one_of(hnp.arrays(d.dtype, shape, elements=elements("real", width)),
                          hnp.arrays(d.dtype, shape, elements=elements("unit", width)),
                          binary, indices, arrays(), floats(), anything()))


# family name → (constructor, the kind of each positional parameter)
FAMILIES = {
    "Normal": (Normal, ("real", "positive")), "Laplace": (Laplace, ("real", "positive")),
    "Gumbel": (Gumbel, ("real", "positive")), "Uniform": (Uniform, ("real", "real")),
    "Gamma": (Gamma, ("positive", "positive")), "Beta": (Beta, ("positive", "positive")),
    "Exponential": (Exponential, ("positive",)), "Poisson": (Poisson, ("positive",)),
    "Dirichlet": (Dirichlet, ("positive",)),
    "Bernoulli.probs": (lambda p, soft=False: Bernoulli(probs=p, soft_targets=soft), ("unit",)),
    "Bernoulli.logits": (lambda l, soft=False: Bernoulli(logits=l, soft_targets=soft),
                         ("real",)),
    "Categorical.probs": (lambda p: Categorical(probs=p), ("unit",)),
    "Categorical.logits": (lambda l: Categorical(logits=l), ("real",)),
    "RelaxedOneHotCategorical": (
        lambda t, l, st_=False: RelaxedOneHotCategorical(t, logits=l, straight_through=st_),
        ("positive", "real")),
    "MultivariateNormal": (lambda loc, raw: MultivariateNormal(loc, np.tril(
        raw.data if isinstance(raw, Tensor) else raw)), ("real", "positive")),
    "MultivariateNormal.unconstrained": (
        lambda loc, raw: MultivariateNormal(loc, scale_tril_from_unconstrained(raw)),
        ("real", "real")),
    "GaussianMixture": (GaussianMixture, ("real", "real", "positive")),
    "DiagonalNormal": (DiagonalNormal, ("real", "real")),
    "BernoulliLogits": (lambda l, soft=False: BernoulliLogits(l, soft_targets=soft),
                        ("real",)),
}


def moderate(d) -> bool:
    """Whether every float parameter of ``d`` is finite and at most 1e3 in size."""
    values = [v for v in vars(d).values() if isinstance(v, Tensor)]
    return all(np.all(np.abs(v.data) <= 1e3) for v in values)


def exercise(family: str, d, x, rng, shape, data) -> None:
    """Every public method of ``d`` under the contract, including gradients of log_prob."""
    check_contract(f"{family}.log_prob", d.log_prob, x, allow_inf=True)
    for name in ("entropy", "mean", "variance"):
        try:
            check_contract(f"{family}.{name}", lambda n=name: getattr(d, n)() if n == "entropy"
                           else getattr(d, n), allow_inf=True)
        except NotImplementedError:  # documented: no closed form (Concrete, mixture)
            pass
    sample = check_contract(f"{family}.sample", d.sample, rng, shape, allow_inf=True)
    if sample is not None and moderate(d):
        assert np.all(np.isfinite(sample.data if isinstance(sample, Tensor) else sample))
    if d.has_rsample:
        def rsample_gradients():
            leaves = [v for v in vars(d).values() if isinstance(v, Tensor) and v.requires_grad]
            draw = d.rsample(rng, shape)
            if draw.requires_grad:
                draw.sum().backward()  # through the sample: the reparameterization gradient
            return [leaf.grad for leaf in leaves if leaf.grad is not None] + [draw]
        check_contract(f"{family}.rsample", rsample_gradients, allow_inf=True)
    # the log-density of the distribution's own draw, and its gradient to every parameter
    if sample is not None and data.draw(st.booleans()):
        def gradients():
            leaves = [v for v in vars(d).values() if isinstance(v, Tensor) and v.requires_grad]
            value = d.log_prob(sample)
            value.sum().backward()
            return [leaf.grad for leaf in leaves if leaf.grad is not None] + [value]
        check_contract(f"{family}.log_prob.grad", gradients, allow_inf=True)
    other = data.draw(st.sampled_from([d, None]))
    if other is not None and family not in ("GaussianMixture", "RelaxedOneHotCategorical"):
        check_contract(f"{family}.kl_divergence", kl_divergence, d, other, allow_inf=True)
        check_contract(f"{family}.cross_entropy", cross_entropy, d, other, allow_inf=True)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=family_and_parameters(), data=st.data())
def test_every_family_keeps_the_contract(case, data):
    family, make, params, kwargs = case
    d = check_contract(f"{family}.__init__", make, *params, **kwargs)
    if d is None:
        return
    exercise(family, d, values_for(d, data.draw), data.draw(rngs()), data.draw(sample_shapes()),
             data)


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(a=family_and_parameters(), b=family_and_parameters())
def test_kl_between_any_two_families(a, b):
    """Pairs with a closed form give NaN-free values; other pairs raise NotImplementedError."""
    built = []
    for family, make, params, kwargs in (a, b):
        d = check_contract(f"{family}.__init__", make, *params, **kwargs)
        if d is None:
            return
        built.append(d)
    for name, between in (("kl_divergence", kl_divergence), ("cross_entropy", cross_entropy)):
        try:
            check_contract(name, between, *built, allow_inf=True)
        except NotImplementedError as error:
            assert "registered" in str(error) or "closed-form" in str(error)


def tame(shape, seed, low=-2.0, high=2.0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(dtype)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_valid_inputs_give_finite_results(seed, dtype):
    """Not vacuous: ordinary parameters give finite values, samples and gradients."""
    rng = np.random.default_rng(seed)
    positive = lambda shape: tame(shape, seed + 1, 0.5, 3.0, dtype)  # noqa: E731
    lower = np.tril(tame((3, 3), seed + 2, dtype=dtype), -1) + np.diag(positive(3))
    cases = {
        "Normal": Normal(tame(3, seed, dtype=dtype), positive(3)),
        "Laplace": Laplace(tame(3, seed, dtype=dtype), positive(3)),
        "Gumbel": Gumbel(tame(3, seed, dtype=dtype), positive(3)),
        "Uniform": Uniform(tame(3, seed, -3, -1, dtype), positive(3)),
        "Gamma": Gamma(positive(3), positive(3)), "Beta": Beta(positive(3), positive(3)),
        "Exponential": Exponential(positive(3)), "Poisson": Poisson(positive(3)),
        "Dirichlet": Dirichlet(positive((2, 3))),
        "Bernoulli": Bernoulli(logits=tame(3, seed, dtype=dtype)),
        "Categorical": Categorical(logits=tame((2, 3), seed, dtype=dtype)),
        "RelaxedOneHotCategorical": RelaxedOneHotCategorical(dtype(0.7),
                                                             logits=tame(3, seed, dtype=dtype)),
        "MultivariateNormal": MultivariateNormal(tame(3, seed, dtype=dtype), lower),
        "GaussianMixture": GaussianMixture(tame(2, seed, dtype=dtype),
                                           tame((2, 3), seed, dtype=dtype), positive((2, 3))),
        "DiagonalNormal": DiagonalNormal(tame((2, 3), seed, dtype=dtype),
                                         tame((2, 3), seed, dtype=dtype)),
        "BernoulliLogits": BernoulliLogits(tame((2, 3), seed, dtype=dtype)),
        "Independent": Independent(Normal(tame((2, 3), seed, dtype=dtype), positive((2, 3))), 1),
    }
    for name, d in cases.items():
        x = d.sample(rng, (2,))
        assert np.all(np.isfinite(x.data if isinstance(x, Tensor) else x)), name
        value = check_contract(f"{name}.log_prob", d.log_prob, x)
        assert value is not None and np.all(np.isfinite(value.data)), name
        if name not in ("RelaxedOneHotCategorical", "GaussianMixture"):
            for method in ("entropy",):
                assert np.all(np.isfinite(getattr(d, method)().data)), name
        if d.has_rsample:
            y = check_contract(f"{name}.rsample", d.rsample, rng, (2,))
            assert y is not None and np.all(np.isfinite(y.data)), name
        if name not in ("GaussianMixture", "RelaxedOneHotCategorical"):  # no closed form
            assert np.all(np.isfinite(check_contract(f"{name}.kl_divergence", kl_divergence,
                                                     d, d).data)), name

"""What the distributions' tests share: strategies for parameters, Monte Carlo checks
(within standard errors, χ², Kolmogorov–Smirnov, the score's zero mean), quadrature, and the
leaves and finiteness checks of the tests at extreme parameters."""
from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from scipy import integrate, stats

from minivae import Tensor

# -- strategies --------------------------------------------------------------------------------


def floats(low, high):
    """Finite, normal floats in [low, high]."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def reals(shape, low, high):
    """float64 arrays of ``shape`` with entries in [low, high]."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high))


def log_uniform(shape, low, high):
    """float64 arrays with entries log-uniform in [low, high]."""
    elements = st.floats(np.log(low), np.log(high), allow_nan=False, allow_subnormal=False)
    return hnp.arrays(np.float64, shape, elements=elements).map(np.exp)


# -- Monte Carlo -------------------------------------------------------------------------------


def assert_within_standard_errors(samples: np.ndarray, truth, n_se: float = 5.0,
                                  atol: float = 0.0):
    """|mean − truth| ≤ n_se · (sample standard deviation / √n) + atol, entry by entry
    (axis 0)."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    assert np.all(np.abs(mean - truth) <= n_se * se + atol), (mean, truth, se)


def chi_square_pvalue(draws: np.ndarray, probs: np.ndarray) -> float:
    observed = np.bincount(draws, minlength=len(probs))[: len(probs)]
    keep = probs > 0
    assert observed[~keep].sum() == 0, "a value of probability 0 was drawn"
    return stats.chisquare(observed[keep], probs[keep] / probs[keep].sum() * len(draws)).pvalue


def per_sample_score(make, parameter: np.ndarray, samples) -> np.ndarray:
    """∇_θ log q(x_i) for each draw x_i: θ is copied once per draw into a batched leaf."""
    leaf = Tensor(np.broadcast_to(parameter, samples.shape[:1] + parameter.shape).copy(),
                  requires_grad=True)
    make(leaf).log_prob(samples).sum().backward()
    return leaf.grad


def assert_draws_match(x: np.ndarray, oracle) -> None:
    """Draws x pass a Kolmogorov–Smirnov test against the scipy ``oracle``, and their mean
    and variance are the oracle's within 5 standard errors."""
    assert stats.kstest(x, oracle.cdf).pvalue > 1e-3
    n = x.size
    assert abs(x.mean() - oracle.mean()) <= 5 * oracle.std() / np.sqrt(n)
    squared = (x - oracle.mean()) ** 2
    assert abs(squared.mean() - oracle.var()) <= 5 * squared.std() / np.sqrt(n)


def assert_score_has_mean_zero(family, *parameters, n: int = 100_000, seed: int = 3):
    """E_p[∇_θ log p(x)] = ∇_θ ∫ p = 0 for every parameter θ of ``family(*parameters)``:
    the mean of n per-draw scores is 0 within 5 standard errors."""
    leaves = [Tensor(np.full(n, value), requires_grad=True) for value in parameters]
    dist = family(*leaves)
    dist.log_prob(dist.sample(np.random.default_rng(seed))).sum().backward()
    for per_draw in (leaf.grad for leaf in leaves):
        assert abs(per_draw.mean()) <= 5 * per_draw.std() / np.sqrt(n)


def assert_parameters_are_checked(family, names: tuple[str, str], bad: float) -> None:
    """``family(first, second)`` refuses ``bad`` in either parameter with a ValueError naming
    it, and accepts it with ``validate_args=False``."""
    with pytest.raises(ValueError, match=names[0]):
        family(np.array([1.0, bad]), 1.0)
    with pytest.raises(ValueError, match=names[1]):
        family(1.0, np.array([bad, 2.0]))
    family(1.0, np.array([bad, 2.0]), validate_args=False)  # the check can be switched off


def assert_float32_throughout(family, parameters: tuple, x: np.ndarray, more=lambda dist: []):
    """``family(*parameters)`` with float32 parameters stays float32: log_prob(x), entropy,
    mean, variance, sample, rsample, the values ``more(dist)``, and the gradient of a
    reparameterized draw in the first parameter."""
    dist, rng = family(*parameters), np.random.default_rng(0)
    outputs = [dist.log_prob(x), dist.entropy(), dist.mean, dist.variance, dist.sample(rng),
               dist.rsample(rng, 3), *more(dist)]
    assert all(out.dtype == np.float32 for out in outputs)
    first = Tensor(parameters[0], requires_grad=True)
    family(first, *parameters[1:]).rsample(rng, 4).sum().backward()
    assert first.grad.dtype == np.float32


# -- quadrature --------------------------------------------------------------------------------


def quad_expectation(function, dist):
    """∫ p(x) function(x) dx over the support, split at the median so quad sees both halves."""
    low, high = dist.support()
    middle = dist.median()
    parts = [integrate.quad(lambda x: dist.pdf(x) * function(x), a, b, epsabs=1e-14,
                            epsrel=1e-12, limit=200)[0] for a, b in ((low, middle), (middle, high))]
    return sum(parts)


# -- extreme parameters ------------------------------------------------------------------------

DTYPES = [np.float32, np.float64]
HUGE = 1e4


def leaf(values, dtype) -> Tensor:
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def assert_finite(*arrays):
    for array in arrays:
        assert array is not None and np.all(np.isfinite(array)), array


def assert_no_nan(*arrays):
    for array in arrays:
        assert array is not None and not np.any(np.isnan(array)), array

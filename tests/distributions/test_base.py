"""The shared machinery of minivae.distributions: shapes, checks, Independent, the KL registry.

A toy family defined here (a point mass with a "location") keeps these tests independent of
the real families, which have their own test files.
"""
from __future__ import annotations

import numpy as np
import pytest

from minivae.checks import require, sample_shape
from minivae.distributions.base import Distribution, Independent, as_parameters
from minivae.distributions.kl import (
    cross_entropy,
    kl_divergence,
    register_cross_entropy,
    register_kl,
)
from minivae.engine.tensor import Tensor


class Coin(Distribution):
    """Bernoulli(p) written out plainly, as a toy family for the registry tests."""

    has_rsample = False

    def __init__(self, p):
        (self.p,) = as_parameters(p=p)
        require((self.p.data > 0) & (self.p.data < 1), "p", "in (0, 1)", self.p)
        super().__init__(self.p.shape, (), self.p.dtype)

    def sample(self, rng, shape=()):
        return Tensor((rng.random(self.sample_shape(shape)) < self.p.data).astype(self.dtype))

    def log_prob(self, x):
        x = self._value(x)
        return x * self.p.log() + (1 - x) * (1 - self.p).log()

    def entropy(self):
        return -(self.p * self.p.log() + (1 - self.p) * (1 - self.p).log())


class FairCoin(Coin):
    def __init__(self, shape=()):
        super().__init__(np.full(shape, 0.5))


@register_kl(Coin, Coin)
def _kl_coin(p, q):
    return (p.p * (p.p / q.p).log() + (1 - p.p) * ((1 - p.p) / (1 - q.p)).log())


def test_registry_lookup_and_errors():
    p, q = Coin([0.2, 0.7]), Coin([0.5, 0.5])
    direct = (0.2 * np.log(0.2 / 0.5) + 0.8 * np.log(0.8 / 0.5),
              0.7 * np.log(0.7 / 0.5) + 0.3 * np.log(0.3 / 0.5))
    np.testing.assert_allclose(kl_divergence(p, q).data, direct, rtol=1e-12)
    # a subclass finds its parents' registration
    np.testing.assert_allclose(kl_divergence(FairCoin((2,)), p).data,
                               kl_divergence(Coin([0.5, 0.5]), p).data)

    class Other(Distribution):
        def __init__(self):
            super().__init__((), (), np.float64)

    with pytest.raises(NotImplementedError, match="Coin ‖ Other"):
        kl_divergence(Coin(0.3), Other())
    with pytest.raises(TypeError, match="q must be a Distribution"):
        kl_divergence(Coin(0.3), 0.3)
    with pytest.raises(TypeError, match="share a dtype"):
        kl_divergence(Coin(np.float32(0.3) * np.ones(1, np.float32)), Coin(0.3))
    with pytest.raises(TypeError, match="type_q must be a Distribution subclass"):
        register_kl(Coin, int)


def test_most_specific_registration_wins():
    calls = []

    class Biased(Coin):
        pass

    @register_kl(Biased, Coin)
    def _kl_biased(p, q):
        calls.append("Biased‖Coin")
        return _kl_coin(p, q)

    kl_divergence(Biased(0.3), Coin(0.4))
    kl_divergence(Coin(0.3), Biased(0.4))  # only (Coin, Coin) fits this order
    assert calls == ["Biased‖Coin"]


def test_cross_entropy_is_entropy_plus_kl():
    p, q = Coin([0.1, 0.6, 0.9]), Coin([0.3, 0.3, 0.8])
    direct = -(p.p.data * np.log(q.p.data) + (1 - p.p.data) * np.log(1 - q.p.data))
    np.testing.assert_allclose(cross_entropy(p, q).data, direct, rtol=1e-12)

    class Registered(Coin):
        pass

    @register_cross_entropy(Registered, Coin)
    def _ce(p, q):
        return Tensor(np.full(p.batch_shape, 42.0))

    assert np.all(cross_entropy(Registered([0.5]), Coin([0.5])).data == 42.0)


def test_independent_sums_the_base():
    p = Coin(np.array([[0.2, 0.7, 0.4], [0.9, 0.5, 0.1]]))
    joint = Independent(p, 1)
    assert joint.batch_shape == (2,) and joint.event_shape == (3,)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    expected = np.log(np.where(x == 1, p.p.data, 1 - p.p.data)).sum(axis=-1)
    np.testing.assert_allclose(joint.log_prob(x).data, expected, rtol=1e-12)
    np.testing.assert_allclose(joint.entropy().data, p.entropy().data.sum(axis=-1))
    assert Independent(p, 0).batch_shape == (2, 3)
    with pytest.raises(ValueError, match="ndims must be an int in \\[0, 2\\]"):
        Independent(p, 3)
    with pytest.raises(TypeError, match="base must be a Distribution"):
        Independent(np.zeros(3), 1)


def test_independent_kl_sums_the_base_kl():
    p = Coin(np.array([[0.2, 0.7], [0.9, 0.5]]))
    q = Coin(np.array([[0.4, 0.4], [0.6, 0.3]]))
    np.testing.assert_allclose(kl_divergence(Independent(p, 1), Independent(q, 1)).data,
                               kl_divergence(p, q).data.sum(axis=-1), rtol=1e-12)
    with pytest.raises(NotImplementedError, match="different event ranks"):
        kl_divergence(Independent(Independent(p, 1), 1), Independent(q, 2))


def test_parameters_share_one_dtype_and_are_checked():
    a, b = as_parameters(a=np.ones(2, np.float32), b=3)
    assert a.dtype == b.dtype == np.float32
    (c,) = as_parameters(c=2)
    assert c.dtype == np.float64
    d, e = as_parameters(d=np.float32(2.0), e=np.ones(2, np.float32))  # NumPy scalars keep theirs
    assert d.dtype == e.dtype == np.float32
    with pytest.raises(TypeError, match="b has dtype float64"):
        as_parameters(a=np.ones(2, np.float32), b=np.ones(2))
    with pytest.raises(TypeError, match="a must be a number or a float array"):
        as_parameters(a=np.array(["x"]))
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\), got \[1.5"):
        Coin([0.5, 1.5])
    with pytest.raises(ValueError, match="p must be in"):
        Coin(np.nan)


def test_sample_shapes_and_arguments(rng):
    coin = Coin(np.full((2, 3), 0.5))
    assert coin.sample(rng, (4,)).shape == (4, 2, 3)
    assert coin.sample(rng, 5).shape == (5, 2, 3)
    assert sample_shape(()) == ()
    with pytest.raises(ValueError, match="non-negative ints"):
        sample_shape((-1,))
    with pytest.raises(TypeError, match="tuple of ints"):
        sample_shape(1.5)
    with pytest.raises(NotImplementedError, match="Coin has no reparameterized sampler"):
        coin.rsample(rng)
    with pytest.raises(TypeError, match="must have dtype float64"):
        coin.log_prob(np.ones((2, 3), np.float32))

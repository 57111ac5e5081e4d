"""A mixture of K diagonal Gaussians over d-vectors: pick a component, then draw from it.

    c ~ Categorical(π),   x | c ~ N(μ_c, diag σ_c²),   p(x) = Σ_c π_c N(x; μ_c, diag σ_c²)

Shapes: ``logits`` (..., K), ``loc`` and ``scale`` (..., K, d); the leading axes broadcast
into the batch shape, and the event is the last axis (d,).  The Gaussian part is written out
with engine ops here, so gradients flow to π, μ, σ and x.

Verified by: tests/distributions/test_mixture.py::test_log_prob_matches_direct_sum,
::test_responsibilities_follow_bayes_rule
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters, broadcast_to
from minivae.distributions.categorical import Categorical, standard_gumbel
from minivae.engine.ops import where
from minivae.engine.tensor import Tensor

LOG_2PI = math.log(2.0 * math.pi)


class GaussianMixture(Distribution):
    """Σ_c π_c N(μ_c, diag σ_c²), π = softmax(logits).

    logits : (..., K) mixture weights as unnormalized log-probabilities (−∞ allowed: weight 0).
    loc : (..., K, d) component means μ_c, finite.
    scale : (..., K, d) component standard deviations σ_c > 0, finite.
    validate_args : check the ranges and shapes (ValueError otherwise).

    ``sample`` draws the component by Gumbel-max and then the Gaussian; there is no
    ``rsample`` (the choice of component is discrete).
    """

    def __init__(self, logits, loc, scale, validate_args: bool = True):
        logits, self.loc, self.scale = as_parameters(logits=logits, loc=loc, scale=scale)
        for name, value, rank in (("logits", logits, 1), ("loc", self.loc, 2),
                                  ("scale", self.scale, 2)):
            if value.ndim < rank:
                raise ValueError(f"{name} must have at least {rank} axes "
                                 f"({'(..., K)' if rank == 1 else '(..., K, d)'}), "
                                 f"got shape {value.shape}")
        if validate_args:
            checks.finite(self.loc, "loc")
            checks.positive(self.scale, "scale")
        self.mixture_distribution = Categorical(logits=logits, validate_args=validate_args)
        self.logits = self.mixture_distribution.logits  # normalized: log π_c
        components = checks.broadcast((self.loc.shape, self.scale.shape), "loc and scale")
        if components[-2] != self.logits.shape[-1]:
            raise ValueError(f"loc and scale must have K = {self.logits.shape[-1]} components "
                             f"on their second-to-last axis (as logits has), got {components[-2]}")
        batch_shape = checks.broadcast(
            (self.logits.shape[:-1], components[:-2]),
            "the batch axes of logits (..., K) and of loc, scale (..., K, d)")
        self.num_components = self.logits.shape[-1]
        super().__init__(batch_shape, components[-1:], self.loc.dtype)

    def component_log_prob(self, x) -> Tensor:
        """log N(x; μ_c, diag σ_c²) = Σ_j [−½ log 2π − log σ_cj − ½ ((x_j − μ_cj)/σ_cj)²],
        for every component c: shape broadcast(x.shape[:-1], batch) + (K,).

        Verified by: tests/distributions/test_mixture.py::test_log_prob_matches_direct_sum
        """
        x = self._value(x)
        x = x.reshape(x.shape[:-1] + (1,) + x.shape[-1:])  # a component axis, for broadcasting
        standardized = (x - self.loc) / self.scale
        return (-0.5 * LOG_2PI - self.scale.log() - 0.5 * standardized * standardized
                ).sum(axis=-1)

    def _joint_log_prob(self, x) -> Tensor:
        """log π_c + log N(x; μ_c, σ_c²) = log p(c, x)."""
        return self.logits + self.component_log_prob(x)

    def log_prob(self, x) -> Tensor:
        """log p(x) = log Σ_c exp(log π_c + log N(x; μ_c, diag σ_c²)), by logsumexp.

        logsumexp subtracts the largest term first, so a point far from every component (each
        density underflowing to 0) still gets its finite log-density.  The support is ℝᵈ; an
        entry x_j = ±∞ gives −∞.
        Verified by: tests/distributions/test_mixture.py::test_log_prob_matches_direct_sum,
        ::test_log_prob_is_finite_far_from_every_component, ::test_mixture_gradients
        """
        return self._joint_log_prob(x).logsumexp(axis=-1)

    def responsibilities(self, x) -> Tensor:
        """p(c | x) = π_c N(x; μ_c, σ_c²) / Σ_c' π_c' N(x; μ_c', σ_c'²)  (Bayes' rule)
                    = softmax_c(log π_c + log N(x; μ_c, σ_c²)); shape ... + (K,).

        Verified by: tests/distributions/test_mixture.py::test_responsibilities_follow_bayes_rule
        """
        joint = self._joint_log_prob(x)
        return (joint - joint.logsumexp(axis=-1, keepdims=True)).exp()

    def sample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """c ~ Categorical(π) by Gumbel-max, then x = μ_c + σ_c ε with ε ~ N(0, I).

        Verified by: tests/distributions/test_mixture.py::test_samples_have_the_mixture_distribution
        """
        full_shape = self.sample_shape(shape)
        per_entry = full_shape[:-1] + (self.num_components,)
        component = np.argmax(self.logits.data + standard_gumbel(rng, per_entry, self.dtype),
                              axis=-1)
        per_component = full_shape[:-1] + (self.num_components,) + self.event_shape
        chosen = component[..., None, None]
        loc = np.take_along_axis(np.broadcast_to(self.loc.data, per_component), chosen, axis=-2)
        scale = np.take_along_axis(np.broadcast_to(self.scale.data, per_component), chosen,
                                   axis=-2)
        noise = rng.standard_normal(full_shape, dtype=self.dtype)
        return Tensor(loc[..., 0, :] + scale[..., 0, :] * noise)

    @property
    def mean(self) -> Tensor:
        """E[x] = Σ_c π_c μ_c.  Verified by:
        tests/distributions/test_mixture.py::test_mean_and_variance"""
        weights = self.mixture_distribution.probs.reshape(self.logits.shape + (1,))
        return broadcast_to((weights * self.loc).sum(axis=-2), self.batch_shape + self.event_shape)

    @property
    def variance(self) -> Tensor:
        """Var[x_j] = E[Var(x_j | c)] + Var(E[x_j | c]) = Σ_c π_c σ_cj² + Σ_c π_c (μ_cj − E[x_j])²
        (the law of total variance, per coordinate; both sums are ≥ 0, so no cancellation).

        Verified by: tests/distributions/test_mixture.py::test_mean_and_variance
        """
        weights = self.mixture_distribution.probs.reshape(self.logits.shape + (1,))
        centered = self.loc - self.mean.reshape(self.batch_shape + (1,) + self.event_shape)
        # a component of weight 0 adds nothing, even if its σ² overflowed (0 · ∞ would be NaN)
        second_moment = where(weights.data == 0, 0.0, self.scale * self.scale + centered * centered)
        return (weights * second_moment).sum(axis=-2)

    def entropy(self) -> Tensor:
        raise NotImplementedError("a Gaussian mixture has no closed-form entropy; estimate "
                                  "−E[log p(x)] from samples if you need it")

"""The Gumbel-softmax (Concrete) relaxation of a categorical draw, and the straight-through op.

A categorical draw is k = argmax_j (l_j + G_j) with G_j i.i.d. standard Gumbel (Gumbel-max,
see ``categorical.py``).  Replacing the argmax by a softmax at temperature τ > 0,

    y = softmax((l + G)/τ),

gives a point of the open simplex that is a smooth function of l and τ for fixed noise G, so
gradients flow through it (a reparameterized sample).  As τ → 0, y tends to the one-hot vector
of the Gumbel-max class; for every τ, argmax y is that class, so it is Categorical(softmax l).

Verified by: tests/distributions/test_relaxed.py::test_argmax_of_relaxed_sample_is_categorical,
::test_relaxed_sample_tends_to_one_hot_as_temperature_falls
"""
from __future__ import annotations

import math

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution, as_parameters
from minivae.distributions.categorical import normalized_logits, standard_gumbel
from minivae.engine import ops
from minivae.engine.ops.operands import as_tensor
from minivae.engine.tensor import Tensor


def straight_through(y) -> Tensor:
    """Forward: one_hot(argmax_k y_k) (first maximum on ties); VJP: the gradient passes to y
    unchanged, as if the op were the identity.

    The forward value is a true one-hot vector, but d(one_hot)/dy is 0 almost everywhere, which
    would stop learning; the straight-through estimator substitutes the identity Jacobian, so
    a loss of the hard value gets the gradient it would get if evaluated at the relaxed y.  It
    is a biased estimator, chosen on purpose.

    Verified by:
    tests/distributions/test_relaxed.py::test_straight_through_is_one_hot_with_relaxed_gradient
    """
    y = as_tensor(y)
    if y.ndim == 0:
        raise ValueError("y must have a class axis (the last one), got a scalar")
    winners = np.argmax(y.data, axis=-1)[..., None]
    hard = (np.arange(y.shape[-1]) == winners).astype(y.dtype)
    return Tensor.from_op(hard, (y,), lambda g: (g,), "straight_through")


class RelaxedOneHotCategorical(Distribution):
    """The Concrete distribution on the open simplex of K classes (Maddison et al., 2017).

    temperature : τ > 0 (broadcasts against the batch shape).
    logits or probs : the class weights, exactly one, as for ``Categorical``.
    straight_through : if True, ``rsample`` returns ``straight_through(y)``: one-hot values with
        the relaxed gradient (their log_prob is −∞: one-hot points are not in the open simplex).
    validate_args : check the ranges (ValueError otherwise).

    batch_shape = broadcast(τ.shape, logits.shape[:-1]); event_shape = (K,).
    """

    has_rsample = True

    def __init__(self, temperature, logits=None, probs=None, straight_through: bool = False,
                 validate_args: bool = True):
        self.logits = normalized_logits(probs, logits, validate_args)
        _, self.temperature = as_parameters(logits=self.logits, temperature=temperature)
        if validate_args:
            checks.positive(self.temperature, "temperature")
        self.num_classes = self.logits.shape[-1]
        self.straight_through = bool(straight_through)
        batch_shape = checks.broadcast((self.temperature.shape, self.logits.shape[:-1]),
                                       "temperature and the batch shape of the logits")
        super().__init__(batch_shape, (self.num_classes,), self.logits.dtype)

    @property
    def probs(self) -> Tensor:
        """The class probabilities softmax(l) of the underlying categorical."""
        return self.logits.exp()

    def _temperature_per_class(self) -> Tensor:
        """τ with a trailing axis of size 1, so it broadcasts over the classes."""
        return self.temperature.reshape(self.temperature.shape + (1,))

    def rsample(self, rng: np.random.Generator, shape=()) -> Tensor:
        """y = softmax((l + G)/τ), G_k i.i.d. standard Gumbel drawn outside the graph.

        The softmax is exp(z − logsumexp z) with z = (l − max l + G)/τ (the softmax forgets
        the shift, and without it (l + G)/τ overflows for huge logits), so it never overflows; at
        very small τ some y_k underflow to 0 (then log_prob(y) = −∞).
        Verified by: tests/distributions/test_relaxed.py::test_relaxed_rsample_gradcheck,
        ::test_relaxed_samples_match_the_logistic_change_of_variables,
        ::test_relaxed_rsample_with_huge_logit_gaps
        """
        noise = standard_gumbel(rng, self.sample_shape(shape), self.dtype)
        temperature = self._temperature_per_class()
        finite = self.logits.data > -np.inf
        top = np.max(np.where(finite, self.logits.data, -np.inf), axis=-1, keepdims=True)
        with np.errstate(over="ignore"):
            scaled_data = (self.logits.data - top + noise) / temperature.data
        # y_k = 0 exactly for a class of probability 0 (logit −∞) whatever τ is, and for one
        # whose scaled logit is below the dtype's range; computing those would send 0 · ∞ = NaN
        # back to τ, so they take a finite stand-in and then −∞
        possible = finite & (scaled_data > -np.inf)
        logits = ops.where(possible, self.logits - top, 0.0)
        scaled = ops.where(possible, (logits + noise) / temperature, -np.inf)
        y = (scaled - scaled.logsumexp(axis=-1, keepdims=True)).exp()
        return straight_through(y) if self.straight_through else y

    def log_prob(self, y) -> Tensor:
        """The Concrete log-density with respect to Lebesgue measure on (y_1, …, y_{K−1}):

            log p(y) = log Γ(K) + (K − 1) log τ + Σ_k (l_k − (τ + 1) log y_k)
                       − K log Σ_k exp(l_k − τ log y_k).

        Derivation: write x_k = l_k + G_k = τ log y_k + c, where c = τ logsumexp(x/τ) is the
        shift that the softmax forgets.  The map x ↦ (y_1, …, y_{K−1}, c) has Jacobian
        determinant τ^{K−1} / Π_k y_k (a Schur complement, using Σ y_k = 1), and the Gumbel
        density of x is Π_k a_k e^{−c} exp(−a_k e^{−c}) with a_k = e^{l_k} y_k^{−τ}.  So
        (y, c) has density τ^{K−1} Π_k (a_k / y_k) · e^{−Kc} exp(−e^{−c} Σ_k a_k), and
        integrating c out (u = e^{−c}: ∫₀^∞ u^{K−1} e^{−uS} du = Γ(K)/S^K, S = Σ_k a_k)
        leaves p(y) = Γ(K) τ^{K−1} Π_k (e^{l_k} y_k^{−τ−1}) / (Σ_k e^{l_k} y_k^{−τ})^K.

        y outside the open simplex (an entry ≤ 0, not finite, or a sum off 1 by more than
        √eps of the dtype) gives −∞, one-hot vectors included.
        Verified by: tests/distributions/test_relaxed.py::test_concrete_density_integrates_to_one,
        ::test_concrete_density_matches_change_of_variables_for_two_classes,
        ::test_concrete_density_integrates_to_one_for_three_classes,
        ::test_relaxed_log_prob_gradcheck
        """
        y = self._value(y, "y")
        tolerance = math.sqrt(np.finfo(self.dtype).eps)
        with np.errstate(invalid="ignore"):
            inside = (np.all((y.data > 0) & np.isfinite(y.data), axis=-1)
                      & (np.abs(y.data.sum(axis=-1) - 1) <= tolerance))
        y = ops.where(inside[..., None], y, 1.0 / self.num_classes)
        log_y = y.log()
        tau = self._temperature_per_class()
        k = self.num_classes
        value = (math.lgamma(k) + (k - 1) * self.temperature.log()
                 + (self.logits - (tau + 1.0) * log_y).sum(axis=-1)
                 - k * (self.logits - tau * log_y).logsumexp(axis=-1))
        return ops.where(inside, value, -np.inf)

    def entropy(self) -> Tensor:
        raise NotImplementedError("the Concrete distribution has no closed-form entropy; "
                                  "estimate −E[log p(y)] from rsample draws if you need it")

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("the Concrete distribution has no closed-form mean; "
                                  "average rsample draws if you need it")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError("the Concrete distribution has no closed-form variance; "
                                  "use the sample variance of rsample draws if you need it")

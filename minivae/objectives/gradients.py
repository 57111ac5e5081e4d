"""Gradient estimators for the ELBO, written as surrogate objectives.

The ELBO L(φ) = E_{z~q_φ}[f_φ(z)],  f_φ(z) = log p(x, z) − log q_φ(z),  is an expectation under
a distribution that depends on φ, so "differentiate the Monte Carlo estimate" is not one thing:
it depends on how the sample z depends on φ.  Three unbiased answers for continuous z:

* pathwise (reparameterization): z = g(φ, ε), ε ~ p(ε);  ∇L = E_ε[∇_φ f_φ(g(φ, ε))];
* score function (REINFORCE): ∇L = E_q[(f(z) − b) ∇_φ log q_φ(z)], any b independent of z;
* sticking the landing: the pathwise gradient minus the score term ∇_φ log q_φ(z)|_{z fixed},
  whose expectation is E_q[∇_φ log q_φ] = ∫ ∇_φ q_φ = ∇_φ 1 = 0;
* the score term as a control variate: path − c · score for a weight c chosen to lower the
  variance (c = 1 is pathwise, c = 0 is STL; ``optimal_score_weight`` fits c).

An autodiff engine differentiates functions, not expectations, so each estimator is written as
a *surrogate*: a Tensor s whose value is the ELBO estimate f and whose gradient s.backward()
deposits is the chosen estimator.  The tool is the stop-gradient: stop(v) has the value v and
gradient 0.  For the score function,

    s = f + stop(f − b) · (log q(z) − stop(log q(z)))

has value f (the bracket is exactly 0) and gradient (f − b) ∇_φ log q(z).  Here f is formed
with stop(log q), so the term −∇_φ log q(z) of ∇_φ f is dropped: its mean is 0, and keeping it
would only turn the baseline b into b + 1.  Without it ``estimator="score"`` is a pure
score-function estimator whose φ-gradient is exactly (f − b) ∇_φ log q(z).

Discrete latents have no pathwise gradient.  ``discrete_elbo_surrogate`` offers the score
function, and two relaxations that trade bias for variance: Gumbel-softmax and straight-through.

Verified by: tests/objectives/test_gradients.py
"""
from __future__ import annotations

import copy

import numpy as np

from minivae import checks
from minivae.distributions.base import Distribution
from minivae.distributions.categorical import Categorical
from minivae.distributions.relaxed import RelaxedOneHotCategorical, straight_through
from minivae.engine.ops import where
from minivae.engine.ops.operands import as_tensor
from minivae.engine.tensor import Tensor

CONTINUOUS_ESTIMATORS = ("pathwise", "score", "stl", "control_variate")
DISCRETE_ESTIMATORS = ("score", "gumbel_softmax", "straight_through")


def stop_gradient(q: Distribution) -> Distribution:
    """A copy of ``q`` whose Tensor parameters are detached: same values, no gradient to them.

    log q_stop(z) equals log q(z) and its gradient with respect to z is ∇_z log q(z), but it
    passes nothing to the parameters of q.  Attributes that are Tensors are detached; those
    that are distributions (``Independent.base``, components) are copied the same way,
    recursively; lists and tuples of either are walked.  ``q`` itself is not changed.
    Verified by: tests/objectives/test_gradients.py::test_stop_gradient_blocks_parameters,
    ::test_stop_gradient_walks_nested_distributions
    """
    if not isinstance(q, Distribution):
        raise TypeError(f"q must be a Distribution, got {type(q).__name__}")
    stopped = copy.copy(q)
    for name, value in vars(q).items():
        setattr(stopped, name, _stopped(value))
    return stopped


def _stopped(value):
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, Distribution):
        return stop_gradient(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_stopped(item) for item in value)
    return value


def _score_term(weight: np.ndarray, log_q: Tensor) -> Tensor:
    """weight · (log q − stop(log q)): the value 0, the gradient weight · ∇ log q."""
    return weight * (log_q - log_q.detach())


def _baseline_values(baseline, f: np.ndarray, name: str = "baseline") -> np.ndarray:
    """b as an array broadcasting against f of shape (S, B), in f's dtype."""
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be None, a number, an array or 'mean', got "
                             f"{baseline!r}")
        samples = f.shape[0]
        if samples < 2:
            raise ValueError("baseline='mean' needs n_samples >= 2 (it averages the other "
                             f"samples), got n_samples={samples}")
        # leave-one-out: sample s is compared with the mean of the other S − 1, which is
        # independent of z_s, so E[b_s ∇ log q(z_s)] = E[b_s] E[∇ log q(z_s)] = 0
        return (f.sum(axis=0, keepdims=True) - f) / (samples - 1)
    value = as_tensor(baseline.detach() if isinstance(baseline, Tensor) else baseline,
                      like=Tensor(f)).data
    if value.dtype != f.dtype:
        raise TypeError(f"{name} must have dtype {f.dtype}, got {value.dtype}")
    try:
        np.broadcast_shapes(value.shape, f.shape)
    except ValueError:
        raise ValueError(f"{name} must broadcast against (n_samples, batch) = {f.shape}, "
                         f"got shape {value.shape}") from None
    return value


def _score_surrogate(log_p: Tensor, log_q: Tensor, baseline) -> Tensor:
    """f + stop(f − b)(log q − stop log q) with f = log p − stop(log q); shape (S, B)."""
    f = log_p - log_q.detach()
    weight = f.data if baseline is None else f.data - _baseline_values(baseline, f.data)
    return f + _score_term(weight, log_q)


def _check_options(estimator, allowed, n_samples, baseline, rng,
                   score_weight=None) -> np.random.Generator:
    """The estimator's options checked together; returns ``rng``."""
    checks.one_of(estimator, allowed, "estimator"), checks.positive_int(n_samples, "n_samples")
    if baseline is not None and estimator != "score":
        raise ValueError(f"baseline applies to estimator='score' only, got estimator="
                         f"{estimator!r} with baseline={baseline!r}")
    if (score_weight is None) == (estimator == "control_variate"):
        raise ValueError(f"score_weight is needed by, and applies to, estimator="
                         f"'control_variate' only, got estimator={estimator!r} with "
                         f"score_weight={score_weight!r}")
    return checks.generator(rng)


def _check_posterior(q, estimator: str) -> Distribution:
    """``q`` = model.encode(x) if it is a Distribution the estimator can sample."""
    if not isinstance(q, Distribution):
        raise TypeError(f"model.encode(x) must return a Distribution, got {type(q).__name__}")
    if estimator != "score" and not q.has_rsample:
        raise ValueError(f"estimator={estimator!r} needs a reparameterized sampler, and "
                         f"{type(q).__name__} has none; use estimator='score'")
    return q


def _check_per_sample(value: Tensor, shape: tuple, name: str) -> Tensor:
    if not isinstance(value, Tensor) or value.shape != shape:
        got = value.shape if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{name} must return a Tensor of shape (n_samples, batch) = {shape}, "
                         f"got {got}")
    return value


def elbo_surrogate(model, x, rng: np.random.Generator, estimator: str = "pathwise",
                   n_samples: int = 1, baseline=None, score_weight=None) -> Tensor:
    """Per-example surrogate of shape (B,): value = the S-sample ELBO estimate
    (1/S) Σ_s [log p(x, z_s) − log q(z_s)], gradient = the chosen estimator of ∇ELBO.

    q = model.encode(x) (continuous z, event shape (d,)); φ its parameters, θ the model's.

    * "pathwise": z_s = g(φ, ε_s) = q.rsample;  ∇ = (1/S) Σ_s ∇_{φ,θ}[log p(x, z_s) − log q(z_s)].
    * "score": z_s = q.sample (no gradient); f_s = log p(x, z_s) − log q(z_s);
      ∇_φ = (1/S) Σ_s (f_s − b_s) ∇_φ log q(z_s),  ∇_θ = (1/S) Σ_s ∇_θ log p(x, z_s).
      Unbiased because E_q[∇_φ log q] = 0.  ``baseline``: None (b = 0); a number or array
      broadcasting against (S, B) (held constant); "mean" (S ≥ 2): b_s = (Σ_{t≠s} f_t)/(S − 1),
      independent of z_s, hence still unbiased.
    * "stl": z_s = q.rsample, f_s = log p(x, z_s) − log q_stop(z_s) with q_stop =
      stop_gradient(q): the pathwise gradient without the mean-zero score term ∇_φ log q(z)|_z.
      Its φ-gradient is (∇_z log p(x, z) − ∇_z log q(z)) ∂z/∂φ, which is 0 for every ε when
      q = p(z|x) (then log p(x, z) − log q(z) = log p(x) for all z): zero variance there.
    * "control_variate": z_s = q.rsample; ∇_φ = (1/S) Σ_s [path_s − c · score_s] with
      path_s = (∇_z log p(x, z_s) − ∇_z log q(z_s)) ∂z_s/∂φ (STL's gradient) and
      score_s = ∇_φ log q(z)|_{z = z_s}; c = ``score_weight``, a number or an array
      broadcasting against (S, B), held constant.  Unbiased for every c (E[score] = 0);
      c = 1 is "pathwise", c = 0 is "stl", and ``optimal_score_weight`` gives the c of least
      variance, which beats both when it is far from 0 and 1.

    Verified by: tests/objectives/test_gradients.py::test_continuous_estimators_are_unbiased,
    ::test_surrogate_value_is_the_elbo_estimate, ::test_score_variance_and_baselines,
    ::test_stl_has_zero_variance_at_the_exact_posterior,
    tests/objectives/test_score_control_variate.py::test_control_variate_is_unbiased
    """
    rng = _check_options(estimator, CONTINUOUS_ESTIMATORS, n_samples, baseline, rng,
                         score_weight)
    checks.has_methods(model, ("encode", "log_joint"))
    q = _check_posterior(model.encode(x), estimator)
    shape = (int(n_samples),) + q.batch_shape
    if estimator == "pathwise":
        z = q.rsample(rng, (n_samples,))
        per_sample = model.log_joint(x, z) - q.log_prob(z)
    elif estimator in ("stl", "control_variate"):
        z = q.rsample(rng, (n_samples,))
        per_sample = model.log_joint(x, z) - stop_gradient(q).log_prob(z)
        if estimator == "control_variate":  # value 0, gradient −c ∇_φ log q(z)|_z
            c = _baseline_values(score_weight, per_sample.data, "score_weight")
            per_sample = per_sample - _score_term(c, q.log_prob(z.detach()))
    else:
        z = q.sample(rng, (n_samples,))
        log_p = _check_per_sample(model.log_joint(x, z), shape, "model.log_joint")
        per_sample = _score_surrogate(log_p, q.log_prob(z), baseline)
    return _check_elbo_terms(per_sample, shape).mean(axis=0)


def optimal_score_weight(path, score) -> float:
    """The weight c that minimizes the total variance of path − c · score, from R paired
    draws (rows) of the path term and the score term of P gradient coordinates (columns).

    Math: Σ_j Var(path_j − c score_j) = Σ_j Var(path_j) − 2c Σ_j Cov(path_j, score_j)
          + c² Σ_j Var(score_j), a parabola in c with its minimum at
          c* = Σ_j Cov(path_j, score_j) / Σ_j Var(score_j),
          where the total variance is Σ_j Var(path_j) − (Σ_j Cov_j)² / Σ_j Var_j ≤ both the
          pathwise one (c = 1) and STL's (c = 0).  One c for all coordinates, because a
          surrogate carries one weight per draw; a weight c_j = Cov_j / Var_j per coordinate
          would do at least as well on each, but needs the two terms' gradients apart.
          c* fitted on the draws it is then used with is correlated with them (a bias of
          order 1/R): fit it on other draws.
    Verified by: tests/objectives/test_score_control_variate.py::test_fitted_weight_matches_theory
    """
    path, score = (_real_array(a, name) for a, name in ((path, "path"), (score, "score")))
    if path.ndim != 2 or path.shape != score.shape or len(path) < 2:
        raise ValueError(f"path and score must be (draws, coordinates) arrays of one shape with "
                         f"at least 2 draws, got shapes {path.shape} and {score.shape}")
    checks.finite(path, "path"), checks.finite(score, "score")
    centred = score - score.mean(axis=0)
    variance = float((centred ** 2).sum())
    if not variance > 0:
        raise ValueError("score must vary between draws: its variance is 0, so no weight "
                         "changes the estimator")
    return float(((path - path.mean(axis=0)) * centred).sum() / variance)


def _real_array(value, name: str) -> np.ndarray:
    data = checks.values(value)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got {checks.describe(value)}")
    return data.astype(np.float64)


def _check_elbo_terms(per_sample: Tensor, shape: tuple) -> Tensor:
    """The (S, B) ELBO terms, finite: a term of ±∞ has no gradient (the score estimator would
    multiply it by ∇ log q)."""
    _check_per_sample(per_sample, shape, "the ELBO estimate")
    if not np.isfinite(per_sample.data).all():
        sample, example = np.argwhere(~np.isfinite(per_sample.data))[0][:2]
        raise ValueError(f"x must be a batch the model scores with finite numbers: the ELBO "
                         f"term log p(x, z) − log q(z) of example {example} (draw {sample}) "
                         f"is {per_sample.data[sample, example]}")
    return per_sample


def _one_hot(index: np.ndarray, num_classes: int, dtype) -> Tensor:
    return Tensor((index[..., None] == np.arange(num_classes)).astype(dtype))


def discrete_elbo_surrogate(log_joint, logits, rng: np.random.Generator,
                            estimator: str = "score", temperature=1.0, n_samples: int = 1,
                            baseline=None) -> Tensor:
    """Per-example surrogate of shape (B,) for a categorical q(c) = softmax(l), l = ``logits``
    (B, K); ``log_joint`` maps one-hot (or relaxed) c of shape (S, B, K) to log p(x, c), (S, B).

    Discrete ELBO: L = Σ_c q(c)[log p(x, c) − log q(c)], log q(c) = Σ_k c_k log π_k.

    * "score": c_s ~ Categorical(π) exactly (Gumbel-max); value (1/S) Σ_s f_s with
      f_s = log p(x, c_s) − log q(c_s);  ∇_l = (1/S) Σ_s (f_s − b_s) ∇_l log q(c_s).  Unbiased;
      ``baseline`` as in ``elbo_surrogate``.
    * "gumbel_softmax": y_s = softmax((l + G_s)/τ) (RelaxedOneHotCategorical.rsample), value
      (1/S) Σ_s [log_joint(y_s) − Σ_k y_sk log π_k], differentiated pathwise.  Biased: this is
      the gradient of a different objective, E_G[log p̃(x, y) − Σ_k y_k log π_k], in which
      log_joint is evaluated between the vertices of the simplex (where the model is not
      defined; log_joint's formula extends it) and Σ_k y_k log π_k stands in for log q.  As
      τ → 0, y → one-hot(argmax(l + G)), an exact categorical draw, so the relaxed objective
      tends to L and the bias to 0 — while the variance grows (∂y/∂l scales like 1/τ).
    * "straight_through": h_s = straight_through(y_s), the one-hot of argmax y_s = the exact
      Gumbel-max draw; the value (1/S) Σ_s [log p(x, h_s) − log q(h_s)] is the unbiased ELBO
      estimate, but the gradient passes through h as if h were y: biased, for every τ.
      (The term −Σ_k h_k log π_k also sends −∇_l log q(c) straight to l: mean 0, kept.)

    ``temperature`` is used by the two relaxations only.
    Verified by: tests/objectives/test_gradients.py::test_discrete_score_estimator_is_unbiased,
    ::test_gumbel_softmax_bias_shrinks_with_temperature,
    ::test_straight_through_forward_uses_hard_one_hot_samples
    """
    rng = _check_options(estimator, DISCRETE_ESTIMATORS, n_samples, baseline, rng)
    log_joint = checks.function(log_joint, "log_joint", "c_onehot -> (S, B) Tensor")
    logits = as_tensor(logits)
    checks.shape(logits.ndim == 2, "logits", "(batch, classes)", logits.shape)
    shape = (int(n_samples), logits.shape[0])
    q = Categorical(logits=logits)
    if estimator == "score":
        index = q.sample(rng, (n_samples,))
        log_p = _check_per_sample(log_joint(_one_hot(index, q.num_classes, q.dtype)), shape,
                                  "log_joint")
        per_sample = _score_surrogate(log_p, q.log_prob(index), baseline)
    else:
        relaxed = RelaxedOneHotCategorical(temperature, logits=logits)
        if relaxed.batch_shape != logits.shape[:1]:
            raise ValueError(f"temperature must be a number or broadcast against the batch "
                             f"shape {logits.shape[:1]}, got shape {relaxed.temperature.shape}")
        y = relaxed.rsample(rng, (n_samples,))
        c = straight_through(y) if estimator == "straight_through" else y
        log_p = _check_per_sample(log_joint(c), shape, "log_joint")
        # a class of probability 0 is never drawn (c_k = 0 exactly): leave its log π_k = −∞
        # out, or 0 · (−∞) would be NaN
        log_pi = where(np.isfinite(q.logits.data), q.logits, 0.0)
        per_sample = log_p - (c * log_pi).sum(axis=-1)
    return per_sample.mean(axis=0)

"""Objectives of variational inference, for any model with ``encode``, ``prior``,
``log_likelihood`` and ``log_joint`` (``minivae.models.VAE``, ``minivae.models.LinearGaussian``).

* ``elbo``: the evidence lower bound in three forms that agree in expectation;
* ``iwae``: the importance-weighted bound L_k (Burda et al. 2016), trainable;
* ``likelihood``: log p(x) by sampling the prior or by importance sampling, with standard errors;
* ``gradients``: surrogate objectives whose gradients are the pathwise, score-function,
  sticking-the-landing or score-control-variate estimators (continuous latents) and score /
  Gumbel-softmax / straight-through (categorical latents);
* ``svi``: per-datapoint (non-amortized) inference and the amortization gap.
"""
from minivae.objectives.elbo import FORMS, elbo
from minivae.objectives.gradients import (
    discrete_elbo_surrogate,
    elbo_surrogate,
    optimal_score_weight,
    stop_gradient,
)
from minivae.objectives.iwae import iwae_bound, log_importance_weights
from minivae.objectives.likelihood import (
    importance_sampling_log_likelihood,
    prior_sampling_log_likelihood,
)
from minivae.objectives.svi import (
    AmortizationGap,
    SVIResult,
    amortization_gap,
    diagonal_gaussian,
    frozen,
    svi_fit,
)

__all__ = [
    "elbo", "FORMS", "iwae_bound", "log_importance_weights",
    "prior_sampling_log_likelihood", "importance_sampling_log_likelihood",
    "elbo_surrogate", "discrete_elbo_surrogate", "stop_gradient", "optimal_score_weight",
    "svi_fit", "SVIResult", "amortization_gap", "AmortizationGap", "frozen", "diagonal_gaussian",
]

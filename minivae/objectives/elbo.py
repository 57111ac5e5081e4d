"""The evidence lower bound (ELBO), in its three textbook forms.

Why it is a lower bound.  For any q(z|x) that is positive wherever p(x, z) is,

    log p(x) = log ∫ p(x, z) dz = log E_q[ p(x, z) / q(z|x) ]
             ≥ E_q[ log p(x, z) − log q(z|x) ]  =: ELBO(q)        (Jensen: log is concave)

and the gap is exactly a KL divergence, since p(x, z) = p(x) p(z|x):

    log p(x) − ELBO(q) = E_q[ log q(z|x) − log p(z|x) ] = KL(q(z|x) ‖ p(z|x)) ≥ 0,

so maximizing the ELBO over q is the same as pulling q towards the true posterior, and the bound
is tight exactly when q = p(z|x).

Three ways to write the same expectation (they differ only in which part is taken in closed
form, so they agree in expectation but not sample by sample, and their variances differ):

    "monte_carlo":  E_q[ log p(x, z) − log q(z|x) ]                   (nothing in closed form)
    "entropy":      E_q[ log p(x, z) ] + H[q]                         (H[q] = −E_q[log q])
    "analytic":     E_q[ log p(x | z) ] − KL(q(z|x) ‖ p(z))           (log p(x,z) = log p(x|z)
                                                                        + log p(z); the KL exact)

Each expectation is estimated with S reparameterized draws z_s = g(φ, ε_s) (``q.rsample``), so
the estimate is a differentiable function of q's parameters φ and its gradient is an unbiased
estimate of ∇_φ ELBO (the pathwise, or reparameterization, gradient).
"""
from __future__ import annotations

import numpy as np

from minivae import checks
from minivae.distributions import kl_divergence
from minivae.engine.tensor import Tensor

FORMS = ("analytic", "monte_carlo", "entropy")


def reparameterized(q):
    """``q`` after checking it has ``rsample`` (a ValueError suggesting the way out otherwise)."""
    if not getattr(q, "has_rsample", False):
        raise ValueError(f"model.encode(x) must return a reparameterizable distribution (with "
                         f"rsample), got {type(q).__name__}; use a score-function estimator")
    return q


def elbo(model, x, rng: np.random.Generator, form: str = "analytic",
         n_samples: int = 1) -> Tensor:
    """Per-example ELBO estimate, shape (B,), from S = ``n_samples`` draws z_s ~ q(z|x):

        "analytic":     (1/S) Σ_s log p(x | z_s) − KL(q(z|x) ‖ p(z))
        "monte_carlo":  (1/S) Σ_s [ log p(x, z_s) − log q(z_s | x) ]
        "entropy":      (1/S) Σ_s log p(x, z_s) + H[q(z|x)]

    All three are unbiased for ELBO(q) = E_q[log p(x, z) − log q(z|x)] ≤ log p(x), with gap
    KL(q ‖ p(z|x)).  The draws are reparameterized, so ``.backward()`` gives pathwise gradients
    for q's and the model's parameters.

    model : anything with ``encode(x)`` → q(z|x) (a Distribution with rsample, batch shape (B,)),
        ``prior()``, ``log_likelihood(x, z)`` and ``log_joint(x, z)`` (e.g. VAE, LinearGaussian).
    x : a batch of shape (B, D) in the model's dtype.
    rng : numpy Generator for the noise ε.
    form : one of "analytic", "monte_carlo", "entropy".
    n_samples : S ≥ 1.

    Verified by: tests/objectives/test_elbo.py::test_elbo_is_log_evidence_minus_posterior_kl,
    ::test_three_forms_agree_with_the_exact_elbo, ::test_three_forms_have_the_exact_gradient,
    ::test_elbo_is_tight_at_the_exact_posterior
    """
    form = checks.one_of(form, FORMS, "form")
    n_samples, rng = checks.positive_int(n_samples, "n_samples"), checks.generator(rng)
    checks.has_methods(model, ("encode", "prior", "log_likelihood", "log_joint"))
    q = reparameterized(model.encode(x))
    z = q.rsample(rng, (n_samples,))  # (S, B, d)
    if form == "analytic":
        try:
            kl = kl_divergence(q, model.prior())
        except NotImplementedError as missing:
            raise ValueError(f"form='analytic' needs KL(q ‖ p(z)) in closed form, and {missing}; "
                             "use form='monte_carlo' or 'entropy'") from None
        value = model.log_likelihood(x, z).mean(axis=0) - kl
    elif form == "monte_carlo":
        value = (model.log_joint(x, z) - q.log_prob(z)).mean(axis=0)
    else:
        value = model.log_joint(x, z).mean(axis=0) + q.entropy()
    if not np.isfinite(value.data).all():  # a term of ±∞: not a number the ELBO can be
        example = int(np.argwhere(~np.isfinite(value.data))[0][0])
        raise ValueError(f"x must be a batch the model scores with finite numbers: the ELBO "
                         f"of example {example} is {value.data[example]}")
    return value

"""Divergences between distributions, and what each one asks of them.

* ``kl_directions`` — fitting a Gaussian q to a target p by reverse KL(q‖p) (mode seeking: needs
  samples of q and log p up to a constant) or forward KL(p‖q) (mode covering: needs samples of p),
  and ``kl_access`` — which direction each kind of access to p and q allows, with an
  estimator for each direction that access permits;
* ``bounds`` — lower bounds on KL(p‖q) through a critic T: R1 (convex conjugate) and R2
  (Donsker–Varadhan), with R1 ≤ R2 ≤ KL;
* ``conjugates`` — convex conjugates f*(t) = sup_u (tu − f(u)) of six f-divergence generators
  (R1 is the case f(u) = u log u);
* ``jensen_shannon`` — JSD for discrete and 1-D continuous distributions, 0 ≤ JSD ≤ log 2;
* ``discriminator`` — the optimal classifier between two samples and the density ratio it gives,
  f₁(x) = f₀(x) D*(x) / (1 − D*(x));
* ``quadrature`` — the 1-D integration grid the exact 1-D divergences are computed on.
"""
from minivae.divergences.bounds import BoundHistory, r1_bound, r2_bound, train_critic
from minivae.divergences.discriminator import (
    Discriminator,
    LogisticDiscriminator,
    MLPDiscriminator,
    discriminator_objective,
    optimal_discriminator,
    optimal_logit,
)
from minivae.divergences.jensen_shannon import jensen_shannon_1d, jensen_shannon_discrete
from minivae.divergences.kl_access import (
    KL_ACCESS_TABLE,
    KLEstimate,
    estimate_kl,
    format_kl_access_table,
)
from minivae.divergences.kl_directions import (
    GaussianFit,
    fit_forward_kl,
    fit_reverse_kl,
    forward_kl_1d,
    reverse_kl_1d,
)

__all__ = [
    "BoundHistory", "r1_bound", "r2_bound", "train_critic",
    "Discriminator", "LogisticDiscriminator", "MLPDiscriminator", "discriminator_objective",
    "optimal_discriminator", "optimal_logit",
    "jensen_shannon_1d", "jensen_shannon_discrete",
    "KL_ACCESS_TABLE", "KLEstimate", "estimate_kl", "format_kl_access_table",
    "GaussianFit", "fit_forward_kl", "fit_reverse_kl", "forward_kl_1d", "reverse_kl_1d",
]

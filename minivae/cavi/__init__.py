"""Coordinate-ascent variational inference (CAVI) for conjugate mixture models.

Every update is a closed form that maximizes the ELBO in one factor with the others held fixed,
so the ELBO — reported in full, every constant included — never decreases.

* ``PoissonGaussianMixture``: events with a 2-D location and a Poisson strength ("earthquakes");
* ``BayesianGaussianMixture``: Bishop's Dirichlet / Gaussian–Wishart mixture, with
  scikit-learn's parameter names, so the two can be compared side by side.
"""
from minivae.cavi.bayesian_gmm import BayesianGaussianMixture, BayesianMixtureFit
from minivae.cavi.poisson_gaussian import PoissonGaussianFit, PoissonGaussianMixture
from minivae.cavi.poisson_gaussian_elbo import log_evidence_exact

__all__ = ["PoissonGaussianMixture", "PoissonGaussianFit", "log_evidence_exact",
           "BayesianGaussianMixture", "BayesianMixtureFit"]

"""The fuzz contract for exact CAVI (the Bayesian Gaussian mixture and the Poisson–Gaussian
mixture): whatever arrives in place of a hyperparameter, the data or a fit option, a clear
ValueError/TypeError or NaN-free values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae.cavi import BayesianGaussianMixture, PoissonGaussianMixture, log_evidence_exact
from tests.fuzzing import Entry, check_entry, check_valid_entry, variants

rng = np.random.default_rng(0)
X = np.concatenate([rng.normal(-3, 1, (5, 2)), rng.normal(3, 1, (5, 2))])
COUNTS = rng.poisson(3.0, 10).astype(np.float64)
SMALL = st.one_of(st.integers(-2, 3), st.none(), st.floats(), st.booleans())
POISSON = dict(K=2, pi=[0.5, 0.5], tau=1.0, nu=[0.0, 0.0], rho=1.0, alpha=1.0, beta=1.0)
FITTED_GAUSSIAN = BayesianGaussianMixture(2)
FITTED_GAUSSIAN.fit(X, rng=np.random.default_rng(0), max_iter=5)
POISSON_MODEL = PoissonGaussianMixture(**POISSON)
POISSON_FIT = POISSON_MODEL.fit(X, COUNTS, rng=np.random.default_rng(0), max_iter=5)


def bayesian_gmm_fit(K, weight_concentration_prior, mean_prior, mean_precision_prior,
                     degrees_of_freedom_prior, covariance_prior, X, max_iter, tol):
    model = BayesianGaussianMixture(K, weight_concentration_prior, mean_prior,
                                    mean_precision_prior, degrees_of_freedom_prior,
                                    covariance_prior)
    return model.fit(X, rng=np.random.default_rng(0), max_iter=max_iter, tol=tol)


def poisson_gaussian_fit(K, pi, tau, nu, rho, alpha, beta, X, S, max_iter):
    model = PoissonGaussianMixture(K, pi, tau, nu, rho, alpha, beta)
    return model.fit(X, S, rng=np.random.default_rng(0), max_iter=max_iter)


def poisson_gaussian_elbo(X, S, r, m, s, a, b):
    return POISSON_MODEL.elbo(X, S, r, m, s, a, b)


ENTRIES = [
    Entry("BayesianGaussianMixture.fit", bayesian_gmm_fit,
          dict(K=2, weight_concentration_prior=0.5, mean_prior=np.zeros(2),
               mean_precision_prior=0.1, degrees_of_freedom_prior=3.0,
               covariance_prior=np.eye(2), X=X, max_iter=3, tol=1e-8),
          wild=dict(K=SMALL, max_iter=SMALL)),
    Entry("BayesianGaussianMixture.predict_proba", FITTED_GAUSSIAN.predict_proba, dict(X=X)),
    Entry("PoissonGaussianMixture.fit", poisson_gaussian_fit,
          dict(**POISSON, X=X, S=COUNTS, max_iter=3), wild=dict(K=SMALL, max_iter=SMALL)),
    Entry("PoissonGaussianMixture.predict_proba", POISSON_MODEL.predict_proba,
          dict(X=X, S=COUNTS, fitted=POISSON_FIT)),
    Entry("PoissonGaussianMixture.elbo", poisson_gaussian_elbo,
          dict(X=X, S=COUNTS, r=POISSON_FIT.r, m=POISSON_FIT.m, s=POISSON_FIT.s,
               a=POISSON_FIT.a, b=POISSON_FIT.b)),
    Entry("log_evidence_exact", lambda X, S: log_evidence_exact(POISSON_MODEL, X, S),
          dict(X=X[:4], S=COUNTS[:4])),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
def test_valid_calls_return_values(entry):
    check_valid_entry(entry)


@settings(max_examples=50, deadline=None)
@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
@given(data=st.data())
def test_every_cavi_entry_keeps_the_contract(entry, data):
    check_entry(entry, data.draw(variants(entry)))

"""The fuzz contract for the divergences (the R1/R2 bounds and their critic, the density-ratio
discriminators, Jensen–Shannon, the two KL directions, the quadrature grid): whatever arrives
in place of an argument, a clear ValueError/TypeError or NaN-free values."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from minivae.divergences import (
    LogisticDiscriminator,
    MLPDiscriminator,
    discriminator_objective,
    fit_forward_kl,
    fit_reverse_kl,
    forward_kl_1d,
    jensen_shannon_1d,
    jensen_shannon_discrete,
    optimal_discriminator,
    optimal_logit,
    r1_bound,
    r2_bound,
    reverse_kl_1d,
    train_critic,
)
from minivae.divergences.kl_directions import cross_entropy_from_samples, local_minima
from minivae.divergences.quadrature import trapezoid, uniform_grid
from minivae.engine.tensor import Tensor
from tests.fuzzing import Entry, check_entry, check_valid_entry, variants

rng = np.random.default_rng(0)
GRID = uniform_grid(-8.0, 8.0, 401)
SAMPLES_P, SAMPLES_Q = rng.normal(size=(12, 1)), rng.normal(1.0, 1.0, size=(12, 1))
LOGISTIC = LogisticDiscriminator(degree=2)
MLP = MLPDiscriminator(hidden=(3,), rng=np.random.default_rng(0))


def standard_normal_log_density(z):
    return -0.5 * (z * z).sum(axis=-1)


def fitted_logistic(x1, x0, steps, lr):
    model = LogisticDiscriminator(degree=2)
    model.fit(x1, x0, steps=steps, lr=lr)
    return model.logit(np.linspace(-1, 1, 3))


def critic_bounds(samples_p, samples_q, bound, steps, held_out):
    _, history = train_critic(samples_p, samples_q, bound=bound, hidden=(3,), steps=steps,
                              batch_size=None, held_out=held_out, rng=np.random.default_rng(0))
    return history


ENTRIES = [
    Entry("r1_bound", r1_bound, dict(t_p=Tensor(rng.normal(size=4)), t_q=Tensor(rng.normal(size=4)),
                                     p_weights=None, q_weights=None), allow_inf=True),
    Entry("r2_bound", r2_bound, dict(t_p=Tensor(rng.normal(size=4)), t_q=Tensor(rng.normal(size=4)),
                                     p_weights=None, q_weights=np.ones(4)), allow_inf=True),
    Entry("train_critic", critic_bounds,
          dict(samples_p=SAMPLES_P, samples_q=SAMPLES_Q, bound="r2", steps=2, held_out=0.5),
          wild=dict(steps=st.one_of(st.integers(-2, 3), st.none(), st.floats()))),
    Entry("discriminator_objective", discriminator_objective,
          dict(logits_p1=Tensor(rng.normal(size=5)), logits_p0=Tensor(rng.normal(size=5)))),
    Entry("optimal_logit", optimal_logit, dict(log_f1=stats.norm.logpdf(GRID[:5]),
                                               log_f0=stats.norm.logpdf(GRID[:5], 1.0)),
          allow_inf=True),
    Entry("optimal_discriminator", optimal_discriminator,
          dict(log_f1=stats.norm.logpdf(GRID[:5]), log_f0=stats.norm.logpdf(GRID[:5], 1.0))),
    Entry("LogisticDiscriminator.fit", fitted_logistic,
          dict(x1=SAMPLES_P[:, 0], x0=SAMPLES_Q[:, 0], steps=2, lr=0.05),
          wild=dict(steps=st.one_of(st.integers(-2, 3), st.none(), st.floats()))),
    Entry("LogisticDiscriminator.logit", LOGISTIC.logit, dict(x=GRID[:4])),
    Entry("LogisticDiscriminator.log_density_estimate", LOGISTIC.log_density_estimate,
          dict(x=GRID[:4], log_f0=stats.norm.logpdf(GRID[:4])), allow_inf=True),
    Entry("MLPDiscriminator.probability", MLP.probability, dict(x=GRID[:4])),
    Entry("MLPDiscriminator.log_density_ratio", MLP.log_density_ratio, dict(x=GRID[:4])),
    Entry("jensen_shannon_discrete", jensen_shannon_discrete,
          dict(p=np.array([0.2, 0.8]), q=np.array([0.5, 0.5]))),
    Entry("jensen_shannon_1d", jensen_shannon_1d,
          dict(log_p=stats.norm.logpdf, log_q=lambda x: stats.norm.logpdf(x, 1.0), grid=GRID,
               mass_tolerance=1e-3)),
    Entry("fit_reverse_kl", lambda **kw: fit_reverse_kl(standard_normal_log_density, **kw),
          dict(loc=0.5, scale=2.0, steps=2, samples=4, lr=0.05, rng=np.random.default_rng(0)),
          wild=dict(steps=st.one_of(st.integers(-2, 3), st.none(), st.floats()),
                    samples=st.one_of(st.integers(-2, 5), st.none(), st.floats()))),
    Entry("fit_forward_kl", fit_forward_kl, dict(samples=SAMPLES_P[:, 0])),
    Entry("cross_entropy_from_samples", cross_entropy_from_samples,
          dict(samples=SAMPLES_P[:, 0], loc=0.0, scale=1.0)),
    Entry("reverse_kl_1d", reverse_kl_1d,
          dict(log_p=stats.norm.logpdf(GRID), loc=0.5, scale=1.5, grid=GRID), allow_inf=True),
    Entry("forward_kl_1d", forward_kl_1d,
          dict(log_p=stats.norm.logpdf(GRID), loc=0.5, scale=1.5, grid=GRID), allow_inf=True),
    Entry("local_minima", local_minima, dict(landscape=rng.normal(size=(4, 5)))),
    Entry("uniform_grid", uniform_grid, dict(low=-1.0, high=2.0, n=5)),
    Entry("trapezoid", trapezoid, dict(values=np.ones(5), grid=uniform_grid(0.0, 1.0, 5))),
]


@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
def test_valid_calls_return_values(entry):
    check_valid_entry(entry)


@settings(max_examples=60, deadline=None)
@pytest.mark.parametrize("entry", ENTRIES, ids=repr)
@given(data=st.data())
def test_every_divergence_keeps_the_contract(entry, data):
    check_entry(entry, data.draw(variants(entry)))

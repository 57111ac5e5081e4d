"""The fuzz contract for the objectives (the ELBO's forms, the IWAE bound, the likelihood
estimators, the gradient surrogates, SVI): a clear ValueError/TypeError or NaN-free values,
and finite values for valid inputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minivae.objectives as objectives
from minivae.models import VAE, LinearGaussian
from minivae.models.categorical_vae import CategoricalVAE
from minivae.models.vade import VaDE
from tests.fuzzing import BINARY, COUNTS, anything, arrays, batches, check_contract, floats

X_DIM = 4
VAE_MODEL = VAE(X_DIM, hidden=(3,), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64)
LINEAR = LinearGaussian(np.random.default_rng(1).standard_normal((X_DIM, 2)), np.zeros(X_DIM),
                        0.5)
VADE_MODEL = VaDE(X_DIM, hidden=(3,), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64,
                  n_clusters=2)
CATEGORICAL = CategoricalVAE(X_DIM, hidden=(3,), z_dim=2, rng=np.random.default_rng(0),
                             dtype=np.float64, n_classes=3)
MODELS = {"vae": VAE_MODEL, "linear": LINEAR, "vade": VADE_MODEL, "categorical": CATEGORICAL}






@settings(max_examples=80, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), x=batches(), n_samples=COUNTS,
       form=st.sampled_from([*objectives.FORMS, "closed", None]))
def test_elbo_forms(model, x, n_samples, form):
    check_contract("elbo", objectives.elbo, MODELS[model], x, np.random.default_rng(0), form,
                   n_samples)


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), x=batches(), k=COUNTS)
def test_iwae_bound(model, x, k):
    check_contract("iwae_bound", objectives.iwae_bound, MODELS[model], x, k,
                   np.random.default_rng(0))


def estimate_and_checked_error(estimator, model, x, k, chunk):
    """The estimate; its standard error is checked here: +∞ exactly when one draw cannot give
    a spread (k = 1), as documented, else finite."""
    estimate, error = estimator(model, x, k, np.random.default_rng(0), chunk=chunk)
    assert np.all(error == np.inf) if k == 1 else np.all(np.isfinite(error))
    return estimate


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), x=batches(), k=COUNTS,
       chunk=st.one_of(st.none(), COUNTS),
       which=st.sampled_from(["importance_sampling_log_likelihood",
                              "prior_sampling_log_likelihood"]))
def test_likelihood_estimators(model, x, k, chunk, which):
    check_contract(which, estimate_and_checked_error, getattr(objectives, which), MODELS[model],
                   x, k, chunk)


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), x=batches(), n_samples=COUNTS,
       estimator=st.sampled_from(["pathwise", "score", "stl", "reinforce"]),
       baseline=st.one_of(st.none(), st.just("mean"), floats(), anything()))
def test_elbo_surrogate(model, x, n_samples, estimator, baseline):
    check_contract("elbo_surrogate", objectives.elbo_surrogate, MODELS[model], x,
                   np.random.default_rng(0), estimator, n_samples, baseline)


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(sorted(MODELS)), x=batches(), n_samples=COUNTS,
       score_weight=st.one_of(st.none(), floats(), arrays(), anything()))
def test_control_variate_surrogate(model, x, n_samples, score_weight):
    check_contract("elbo_surrogate", objectives.elbo_surrogate, MODELS[model], x,
                   np.random.default_rng(0), "control_variate", n_samples, None, score_weight)


@settings(max_examples=40, deadline=None)
@given(path=st.one_of(arrays(), anything()), score=st.one_of(arrays(), anything()))
def test_optimal_score_weight(path, score):
    check_contract("optimal_score_weight", objectives.optimal_score_weight, path, score)


def log_joint_of_codes(codes):
    target = np.arange(3.0)
    return -((codes - target) ** 2).sum(axis=-1)


@settings(max_examples=60, deadline=None)
@given(logits=st.one_of(arrays(np.float64, shape=(2, 3)), arrays()), n_samples=COUNTS,
       estimator=st.sampled_from(["score", "gumbel_softmax", "straight_through", "x"]),
       temperature=floats())
def test_discrete_elbo_surrogate(logits, n_samples, estimator, temperature):
    check_contract("discrete_elbo_surrogate", objectives.discrete_elbo_surrogate,
                   log_joint_of_codes, logits, np.random.default_rng(0), estimator, temperature,
                   n_samples, allow_inf=True)


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["vae", "linear"]), x=batches(), steps=st.one_of(st.integers(-1, 3),
       anything()), lr=st.one_of(st.just(0.01), floats()), n_samples=COUNTS)
def test_svi_fit(model, x, steps, lr, n_samples):
    check_contract("svi_fit", objectives.svi_fit, x, MODELS[model], np.random.default_rng(0),
                   steps=steps, lr=lr, n_samples=n_samples)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_valid_inputs_give_finite_values(model):
    """The fuzzed calls on inputs that are all valid: every result finite, not only NaN-free."""
    model, rng = MODELS[model], np.random.default_rng(0)
    values = [*objectives.importance_sampling_log_likelihood(model, BINARY, 4, rng)]
    if model is not CATEGORICAL:  # discrete latents: their own importance weights only
        values += [objectives.iwae_bound(model, BINARY, 3, rng).data,
                   *objectives.prior_sampling_log_likelihood(model, BINARY, 4, rng),
                   objectives.elbo(model, BINARY, rng, "monte_carlo", 2).data,
                   objectives.elbo_surrogate(model, BINARY, rng, "score", 2, "mean").data]
    if model is VAE_MODEL or model is LINEAR:
        values += [objectives.elbo(model, BINARY, rng, "analytic").data,
                   objectives.svi_fit(BINARY, model, rng, steps=3).loc]
    for value in values:
        assert np.all(np.isfinite(value)), value


def test_models_without_the_needed_methods_are_named():
    with pytest.raises(ValueError, match="form='analytic' needs KL"):
        objectives.elbo(VADE_MODEL, BINARY, np.random.default_rng(0), "analytic")
    with pytest.raises(TypeError, match="CategoricalVAE lacks prior, log_likelihood, log_joint"):
        objectives.elbo(CATEGORICAL, BINARY, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x must be finite, got nan at index \(0, 1\)"):
        objectives.svi_fit(np.array([[0.0, np.nan, 0.0, 1.0]]), VAE_MODEL,
                           np.random.default_rng(0), steps=2)

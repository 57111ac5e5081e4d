"""Estimators of log p(x): unbiased in p(x), chunked without changing the result, honest
standard errors, no overflow, and the evaluation wrapper built on them."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import minivae.objectives.likelihood as likelihood
from minivae.distributions import MultivariateNormal
from minivae.models import LinearGaussian
from minivae.objectives.iwae import log_importance_weights
from minivae.objectives.likelihood import (
    importance_sampling_log_likelihood,
    log_mean_exp_with_standard_error,
    prior_sampling_log_likelihood,
    standard_error,
)
from tests.helpers import binary_data, demo, tiny_vae
from tests.objectives.helpers import linear_gaussian


def with_widened_posterior(W, b, sigma, x, widen=1.3, shift=0.0):
    """q = the exact posterior with its scale multiplied by ``widen`` and its mean moved by
    ``shift``: a good but imperfect proposal (wider than the posterior, so the weights have
    finite variance)."""
    posterior = LinearGaussian(W, b, sigma).posterior(x)
    q = MultivariateNormal(posterior.loc.data + shift, widen * posterior.scale_tril.data)
    return LinearGaussian(W, b, sigma, encoder=lambda x: q)


def numpy_statistics(log_w):
    """log of the mean weight and sd(w)/(√n mean(w)), straight from the definition."""
    w = np.exp(log_w - log_w.max())  # one common shift: the ratio is unchanged
    n = len(log_w)
    return (special.logsumexp(log_w, axis=0) - np.log(n),
            w.std(axis=0, ddof=1) / (np.sqrt(n) * w.mean(axis=0)))


@settings(max_examples=30)
@given(k=st.integers(2, 40), chunk=st.integers(1, 45), seed=st.integers(0, 2**16))
def test_chunked_statistics_match_one_pass(k, chunk, seed):
    W, b, sigma, x, _ = linear_gaussian(seed, 3, 2, batch=4, sigmas=(0.6, 1.2))
    model = with_widened_posterior(W, b, sigma, x, widen=1.5, shift=0.5)
    estimate, error = importance_sampling_log_likelihood(model, x, k, np.random.default_rng(seed),
                                                         chunk=chunk)
    log_w = log_importance_weights(model, x, k, np.random.default_rng(seed)).data
    expected_estimate, expected_error = numpy_statistics(log_w)
    np.testing.assert_allclose(estimate, expected_estimate, rtol=1e-12)
    np.testing.assert_allclose(error, expected_error, rtol=1e-9)
    assert estimate.dtype == error.dtype == np.float64 and estimate.shape == (4,)


@settings(max_examples=30)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6), offset=st.floats(-900, 900),
       seed=st.integers(0, 2**16))
def test_log_mean_exp_merges_any_chunks_at_any_scale(sizes, offset, seed):
    """Chunks of any sizes, log-weights far outside exp's range (|log w| up to ~900), chunks that
    raise the running maximum late: the same numbers as one pass on shifted weights."""
    rng = np.random.default_rng(seed)
    log_w = offset + 5 * rng.standard_normal((sum(sizes), 3))
    log_w[:, 2] = np.sort(log_w[:, 2])  # the maximum keeps growing, chunk after chunk
    bounds = np.cumsum([0, *sizes])
    estimate, error = log_mean_exp_with_standard_error(
        log_w[start:stop] for start, stop in zip(bounds[:-1], bounds[1:]))
    if len(log_w) == 1:  # one weight: the estimate is that weight, its spread unknown
        np.testing.assert_allclose(estimate, log_w[0], rtol=1e-12)
        assert np.all(error == np.inf)
        return
    expected_estimate, expected_error = numpy_statistics(log_w)
    np.testing.assert_allclose(estimate, expected_estimate, rtol=1e-12)
    np.testing.assert_allclose(error, expected_error, rtol=1e-9, atol=1e-15)


def test_all_zero_weights_and_empty_input():
    estimate, error = log_mean_exp_with_standard_error([np.array([[-np.inf, 0.0]] * 3)])
    assert estimate[0] == -np.inf and error[0] == np.inf
    assert estimate[1] == 0.0 and error[1] == 0.0
    with pytest.raises(ValueError, match="at least one chunk"):
        log_mean_exp_with_standard_error(iter([]))


def test_no_overflow_for_tiny_likelihoods():
    """log p(x) < −1000: p(x) underflows, its log-space estimate and standard error do not."""
    rng = np.random.default_rng(1)
    W, b, sigma = rng.standard_normal((150, 2)), rng.standard_normal(150), 0.05
    x = LinearGaussian(W, b, sigma).sample(2, rng)[0] + 0.5  # off the model: p(x) is tiny
    model = with_widened_posterior(W, b, sigma, x, widen=1.2)
    truth = model.log_marginal(x).data
    assert np.all(truth < -1000)
    estimate, error = importance_sampling_log_likelihood(model, x, 1000, np.random.default_rng(2),
                                                         chunk=300)
    assert np.all(np.isfinite(error)) and np.all(error > 0)
    assert np.all(np.abs(estimate - truth) <= 5 * error + 1e-9), (estimate - truth, error)
    estimate, error = prior_sampling_log_likelihood(model, x, 100, np.random.default_rng(3))
    assert np.all(np.isfinite(estimate)) and np.all(estimate < truth)  # hopeless, but finite


def repeats_of(estimator, model, x, count, n, seed):
    rng = np.random.default_rng(seed)
    runs = [estimator(model, x, n, rng) for _ in range(count)]
    return np.array([r[0] for r in runs]), np.array([r[1] for r in runs])  # (count, B) each


@settings(max_examples=30)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=40))
def test_standard_error_of_the_mean(values):
    # the textbook s/√n against scipy's independent implementation
    assert np.isclose(standard_error(values), stats.sem(values), rtol=1e-9, atol=1e-300)


def test_standard_error_is_infinite_where_the_spread_is_unknown():
    # one value, or an infinite one, has no estimable spread: no finite error bar, never NaN
    assert standard_error([3.0]) == np.inf
    assert standard_error([1.0, -np.inf, 2.0]) == np.inf
    for bad in ([], [1.0, np.nan]):
        with pytest.raises(ValueError, match="values"):
            standard_error(bad)
    with pytest.raises(TypeError, match="values must be real numbers"):
        standard_error(["a", "b"])


def test_prior_sampling_is_unbiased_for_evidence():
    """E[p̂] = p(x) (not E[log p̂] = log p(x)): compare the mean of exp(log p̂) with p(x)."""
    W, b, sigma, x, truth = linear_gaussian(4, 2, 1, batch=3, sigmas=(0.6, 1.2))
    estimates, _ = repeats_of(prior_sampling_log_likelihood, LinearGaussian(W, b, sigma), x,
                              count=400, n=50, seed=5)
    p_hat = np.exp(estimates)
    standard_error = p_hat.std(axis=0, ddof=1) / np.sqrt(len(p_hat))
    assert np.all(np.abs(p_hat.mean(axis=0) - np.exp(truth)) <= 5 * standard_error)
    log_error = estimates.std(axis=0, ddof=1) / np.sqrt(len(estimates))
    assert np.all(estimates.mean(axis=0) <= truth + 5 * log_error)  # E[log p̂] ≤ log p(x)


def test_importance_sampling_is_unbiased_for_evidence():
    W, b, sigma, x, truth = linear_gaussian(6, 3, 2, batch=3, sigmas=(0.6, 1.2))
    model = with_widened_posterior(W, b, sigma, x, widen=1.4, shift=0.3)
    estimates, _ = repeats_of(importance_sampling_log_likelihood, model, x, count=300, n=20,
                              seed=7)
    ratio = np.exp(estimates - truth)  # p̂ / p(x), whose mean is 1
    standard_error = ratio.std(axis=0, ddof=1) / np.sqrt(len(ratio))
    assert np.all(np.abs(ratio.mean(axis=0) - 1) <= 5 * standard_error)


def test_prior_sampling_has_more_variance_than_importance_sampling():
    W, b, sigma, x, _ = linear_gaussian(8, 5, 2, batch=3, sigmas=(0.6, 1.2))
    model = with_widened_posterior(W, b, sigma, x, widen=1.2)
    prior, prior_se = repeats_of(prior_sampling_log_likelihood, model, x, count=100, n=100, seed=9)
    proposal, proposal_se = repeats_of(importance_sampling_log_likelihood, model, x, count=100,
                                       n=100, seed=10)
    assert np.all(prior.var(axis=0, ddof=1) > 10 * proposal.var(axis=0, ddof=1))
    assert np.all(prior_se.mean(axis=0) > 3 * proposal_se.mean(axis=0))


@pytest.mark.parametrize("estimator, x_dim, widen", [
    (prior_sampling_log_likelihood, 2, None),
    (importance_sampling_log_likelihood, 4, 1.3),
])
def test_reported_standard_errors_are_honest(estimator, x_dim, widen):
    """Over independent repeats, the spread of log p̂ is what the reported standard error says
    (within a factor 1.5)."""
    W, b, sigma, x, _ = linear_gaussian(11, x_dim, 1, batch=3, sigmas=(0.6, 1.2))
    model = (LinearGaussian(W, b, sigma) if widen is None
             else with_widened_posterior(W, b, sigma, x, widen=widen, shift=0.3))
    estimates, errors = repeats_of(estimator, model, x, count=300, n=400, seed=12)
    ratio = estimates.std(axis=0, ddof=1) / errors.mean(axis=0)
    assert np.all((ratio > 1 / 1.5) & (ratio < 1.5)), ratio


def test_batches_give_the_estimates_of_separate_calls(monkeypatch):
    vae = tiny_vae()
    x = binary_data(10)
    monkeypatch.setattr(likelihood, "ROWS_PER_CHUNK", 12)  # 3 draws of 4 examples per chunk
    batched, batched_errors = importance_sampling_log_likelihood(
        vae, x, 25, np.random.default_rng(2), batch_size=4)
    rng = np.random.default_rng(2)
    direct = [importance_sampling_log_likelihood(vae, x[i:i + 4], 25, rng)
              for i in range(0, 10, 4)]
    np.testing.assert_allclose(batched, np.concatenate([d[0] for d in direct]), rtol=1e-12)
    np.testing.assert_allclose(batched_errors, np.concatenate([d[1] for d in direct]),
                               rtol=1e-12)


def test_float32_model_gives_float64_estimates():
    vae = tiny_vae(dtype=np.float32)
    x = np.ones((3, 6), np.float32)
    for estimator in (prior_sampling_log_likelihood, importance_sampling_log_likelihood):
        estimate, error = estimator(vae, x, 7, np.random.default_rng(0), chunk=3)
        assert estimate.dtype == error.dtype == np.float64
        assert estimate.shape == error.shape == (3,) and np.all(np.isfinite(error))


def test_bad_inputs_raise():
    vae = tiny_vae()
    x = np.zeros((2, 6))
    rng = np.random.default_rng(0)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            importance_sampling_log_likelihood(vae, x, bad, rng)
        with pytest.raises(ValueError, match="n must be a positive integer"):
            prior_sampling_log_likelihood(vae, x, bad, rng)
        with pytest.raises(ValueError, match="chunk must be a positive integer"):
            importance_sampling_log_likelihood(vae, x, 5, rng, chunk=bad)
    with pytest.raises(TypeError, match="rng"):
        prior_sampling_log_likelihood(vae, x, 5, None)
    with pytest.raises(ValueError, match="x must have shape"):
        importance_sampling_log_likelihood(vae, np.zeros(6), 5, rng)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        importance_sampling_log_likelihood(vae, x, 5, rng, batch_size=0)


# -- the demo ----------------------------------------------------------------------------------


def test_importance_sampling_demo_converges_to_the_exact_value(tmp_path, capsys):
    importance_sampling = demo("importance_sampling")
    result = importance_sampling.main(importance_sampling.parse_args(
        ["--out", str(tmp_path), "--max-samples", "2000"]))
    assert result["path"].is_file() and result["counts"][-1] == 2000
    estimates, errors = result["table"]["importance sampling"]
    # the largest importance-sampling run lands within 5 of its standard errors of log p(x)
    assert np.all(np.abs(estimates[-1] - result["exact"]) <= 5 * errors[-1])
    assert "exact log p(x)" in capsys.readouterr().out


def readable_estimates(model, x, k, rng, chunk):
    """The estimator's readable form: the engine's log_importance_weights, chunk by chunk."""
    from minivae.engine.tensor import no_grad

    def chunks():
        with no_grad():
            q = model.encode(x)
            for done in range(0, k, chunk):
                yield log_importance_weights(model, x, min(chunk, k - done), rng, q=q).data

    return log_mean_exp_with_standard_error(chunks())


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("k, chunk", [(1, 1), (7, 3), (40, 40), (50, 16)])
def test_fast_vae_weights_are_a_drop_in_for_the_readable_form(dtype, rtol, k, chunk):
    """VAE.log_importance_weight_chunks (one encoder pass, the chunk's draws stacked into one
    decoder product, Gaussian constants cancelled) gives the readable form's weights from the
    same draws: the same estimate and the same standard error, up to rounding."""
    from minivae import kernels

    vae = tiny_vae(x_dim=12, z_dim=3, dtype=dtype)
    x = binary_data(5, x_dim=12, dtype=dtype)
    for composed in (False, True):
        with kernels.composed() if composed else contextlib.nullcontext():
            fast = list(vae.log_importance_weight_chunks(x, k, np.random.default_rng(4), chunk))
            reference_rng = np.random.default_rng(4)
            reference = [log_importance_weights(vae, x, min(chunk, k - done), reference_rng).data
                         for done in range(0, k, chunk)]
        assert [w.dtype for w in fast] == [dtype] * len(reference)
        for ours, theirs in zip(fast, reference, strict=True):
            np.testing.assert_allclose(ours, theirs, rtol=rtol)
    estimate, error = importance_sampling_log_likelihood(vae, x, k, np.random.default_rng(4),
                                                         chunk=chunk)
    expected, expected_error = readable_estimates(vae, x, k, np.random.default_rng(4), chunk)
    np.testing.assert_allclose(estimate, expected, rtol=rtol)
    np.testing.assert_allclose(error, expected_error, rtol=10 * rtol if k > 1 else 0)


def test_fast_vae_weights_keep_the_exact_forms_where_the_shortcut_does_not_apply():
    """A learnable prior takes the readable form; an infinite logit takes the general
    Bernoulli log-probability, exact at l = ±∞ (log σ(+∞) = 0, log(1 − σ(+∞)) = −∞)."""
    learnable = tiny_vae(prior="learnable")
    learnable.latent_prior.mean.data[:] = 0.7  # a prior other than N(0, I)
    x = binary_data(4)
    ours = np.concatenate(list(learnable.log_importance_weight_chunks(
        x, 9, np.random.default_rng(1), 4)))
    rng = np.random.default_rng(1)
    theirs = np.concatenate([log_importance_weights(learnable, x, c, rng).data for c in (4, 4, 1)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    vae = tiny_vae()
    vae.decoder.layers[-1].bias.data[0] = np.inf  # pixel 0 is on for every z
    on, off = x.copy(), x.copy()
    on[:, 0], off[:, 0] = 1.0, 0.0
    weights_on = next(vae.log_importance_weight_chunks(on, 3, np.random.default_rng(2), 3))
    rng = np.random.default_rng(2)
    np.testing.assert_allclose(weights_on, log_importance_weights(vae, on, 3, rng).data,
                               rtol=1e-12)
    weights_off = next(vae.log_importance_weight_chunks(off, 3, np.random.default_rng(2), 3))
    assert np.all(np.isfinite(weights_on)) and np.all(weights_off == -np.inf)


@pytest.mark.parametrize("module", ["test_full_covariance", "test_gaussian_decoder", "test_vade",
                                    "test_gaussian_vade"])
def test_subclasses_of_the_vae_keep_their_own_weights(module):
    """A VAE subclass with its own q, pixels or joint gets its own log-weights from the chunked
    path, not the plain VAE's shortcut."""
    import importlib

    model = importlib.import_module(f"tests.models.{module}").tiny_model()
    x = binary_data(4)
    ours = np.concatenate(list(model.log_importance_weight_chunks(
        x, 5, np.random.default_rng(1), 2)))
    rng = np.random.default_rng(1)
    theirs = np.concatenate([model.log_importance_weights(x, c, rng) for c in (2, 2, 1)])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)

"""The categorical (Gumbel-softmax) VAE: its KL, objective, gradients, schedule, and learning."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import kl_divergence
from minivae.distributions import Categorical
from minivae.engine.tensor import Tensor
from minivae.models.categorical_vae import (
    CategoricalVAE,
    annealed_temperature,
    kl_categorical_to_uniform,
)
from tests.helpers import assert_pictures, binary_data, mnist_5k, run_demo, train_with_adam


def tiny_model(n_latents=2, n_classes=3, x_dim=6, seed=0, dtype=np.float64, **options):
    return CategoricalVAE(x_dim, hidden=(5,), n_latents=n_latents, n_classes=n_classes,
                          rng=np.random.default_rng(seed), dtype=dtype, **options)


def numpy_networks(model):
    """The encoder and decoder written again in NumPy from the model's parameters."""
    w0, b0, w1, b1, w2, b2, w3, b3 = [p.data for p in model.parameters()]
    n, k = model.n_latents, model.n_classes

    def logits(x):
        return (np.tanh(x @ w0 + b0) @ w1 + b1).reshape(len(x), n, k)

    def decoder_logits(codes):
        return np.tanh(codes.reshape(len(codes), n * k) @ w2 + b2) @ w3 + b3
    return logits, decoder_logits


def bernoulli_log_likelihood(x, logits):
    return stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1)


logit_arrays = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(2, 6),
                         st.integers(0, 2**31 - 1), st.floats(0.1, 30.0)).map(
    lambda a: a[4] * np.random.default_rng(a[3]).standard_normal(a[:3]))


@given(logit_arrays)
@settings(max_examples=40)
def test_kl_to_uniform_matches_the_distributions_module(logits):
    uniform = Categorical(logits=np.zeros(logits.shape))
    expected = kl_divergence(Categorical(logits=logits), uniform).data
    np.testing.assert_allclose(kl_categorical_to_uniform(Tensor(logits)).data, expected,
                               rtol=1e-10, atol=1e-12)


@given(logit_arrays)
@settings(max_examples=40)
def test_kl_to_uniform_matches_a_direct_sum(logits):
    k = logits.shape[-1]
    q = special.softmax(logits, axis=-1)
    direct = special.xlogy(q, q * k).sum(-1)  # Σ_k q_k log(q_k K), with 0 log 0 = 0
    via_entropy = math.log(k) - stats.entropy(q, axis=-1)  # log K − H[q]
    kl = kl_categorical_to_uniform(Tensor(logits)).data
    np.testing.assert_allclose(kl, direct, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kl, via_entropy, rtol=1e-9, atol=1e-12)
    assert np.all(kl >= -1e-15) and np.all(kl <= math.log(k) + 1e-12)


def test_kl_to_uniform_is_finite_at_extreme_logits():
    logits = np.array([[800.0, 0.0, -800.0], [0.0, 0.0, 0.0]])
    kl = kl_categorical_to_uniform(Tensor(logits)).data
    np.testing.assert_allclose(kl, [math.log(3), 0.0], atol=1e-12)  # a point mass; uniform


def test_objective_is_relaxed_likelihood_minus_kl():
    model = tiny_model(n_latents=3, n_classes=4, tau0=0.7)
    x = binary_data(5, 6)
    objective = model.objective(x, np.random.default_rng(3)).data
    logits, decoder_logits = numpy_networks(model)
    u = np.random.default_rng(3).random((5, 3, 4))  # the noise the model draws, in order
    y = special.softmax((special.log_softmax(logits(x), -1) - np.log(-np.log(u))) / 0.7, -1)
    q = special.softmax(logits(x), -1)
    kl = special.xlogy(q, 4 * q).sum((-2, -1))
    np.testing.assert_allclose(objective, bernoulli_log_likelihood(x, decoder_logits(y)) - kl,
                               rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_objective_keeps_the_dtype(dtype):
    model = tiny_model(dtype=dtype)
    assert model.objective(binary_data(3, 6, dtype=dtype), np.random.default_rng(0)).dtype == dtype


def test_objective_gradient_matches_central_differences(flat_gradient_check):
    model = tiny_model(n_latents=2, n_classes=3, tau0=0.6)
    x = binary_data(4, 6)
    model.objective(x, np.random.default_rng(7)).sum().backward()

    def objective():
        return float(model.objective(x, np.random.default_rng(7)).data.sum())  # same noise

    directions = np.random.default_rng(2).standard_normal((4, model.flat_data.size))
    flat_gradient_check(model, objective, model.flat_grad.copy(), directions, 1e-6, 1e-8)


def test_relaxed_codes_and_kl_pass_gradcheck_in_the_logits():
    from minivae import gradcheck
    from minivae.distributions import RelaxedOneHotCategorical

    model = tiny_model(n_latents=2, n_classes=3)
    x = binary_data(3, 6)

    def objective_of_logits(logits):  # the objective's path from the encoder's output on
        codes = RelaxedOneHotCategorical(0.8, logits=logits).rsample(np.random.default_rng(4))
        return model.decode(codes).log_prob(x) - kl_categorical_to_uniform(logits).sum(-1)

    logits = np.random.default_rng(5).standard_normal((3, 2, 3))
    assert gradcheck(objective_of_logits, logits)


def test_straight_through_codes_are_exactly_one_hot():
    model = tiny_model(n_latents=4, n_classes=5, straight_through=True)
    seen = []
    decode = model.decode
    model.decode = lambda codes: seen.append(codes.data.copy()) or decode(codes)
    model.objective(binary_data(6, 6), np.random.default_rng(0))
    (codes,) = seen
    assert codes.shape == (6, 4, 5)
    assert set(np.unique(codes)) == {0.0, 1.0}
    np.testing.assert_array_equal(codes.sum(-1), 1.0)


def test_straight_through_gradient_is_the_relaxed_chain_rule():
    """d objective / d logits = J_y(l)ᵀ ∇_h log p(x|h) − ∇ KL, with h = onehot(argmax y)."""
    from minivae.distributions import RelaxedOneHotCategorical

    model = tiny_model(n_latents=2, n_classes=3, straight_through=True, tau0=0.5)
    x = binary_data(4, 6)
    logits = Tensor(np.random.default_rng(8).standard_normal((4, 2, 3)), requires_grad=True)
    model.encode_logits = lambda _: logits
    model.objective(x, np.random.default_rng(9)).sum().backward()

    relaxed_logits = Tensor(logits.data.copy(), requires_grad=True)
    y = RelaxedOneHotCategorical(0.5, logits=relaxed_logits).rsample(np.random.default_rng(9))
    hard = Tensor((y.data == y.data.max(-1, keepdims=True)).astype(np.float64),
                  requires_grad=True)
    model.decode(hard).log_prob(x).sum().backward()
    (y * hard.grad).sum().backward()  # J_yᵀ ∇_h, accumulated into relaxed_logits.grad
    (-kl_categorical_to_uniform(relaxed_logits).sum()).backward()
    np.testing.assert_allclose(logits.grad, relaxed_logits.grad, rtol=1e-10, atol=1e-12)


@given(st.floats(0.05, 5.0), st.floats(0.01, 1.0), st.one_of(st.just(0.0), st.floats(1e-3, 2.0)),
       st.lists(st.floats(0.0, 1e4), min_size=2, max_size=20))
@settings(max_examples=60)
def test_temperature_schedule_is_monotone_and_clipped(tau0, fraction, rate, times):
    tau_min = tau0 * fraction
    taus = [annealed_temperature(t, tau0, tau_min, rate) for t in sorted(times)]
    assert all(a >= b for a, b in zip(taus, taus[1:]))
    assert all(tau_min <= tau <= tau0 for tau in taus)
    assert annealed_temperature(0, tau0, tau_min, rate) == tau0
    if rate > 0:  # far enough out the exponential is below the floor
        t_far = 2 * math.log(tau0 / tau_min) / rate + 1.0
        assert annealed_temperature(t_far, tau0, tau_min, rate) == tau_min
    model = tiny_model(tau0=tau0, tau_min=tau_min, anneal_rate=rate)
    assert model.temperature == tau0  # the first epoch trains at τ₀
    model.on_epoch_end(3)
    assert model.temperature == max(tau_min, tau0 * math.exp(-3 * rate))


def test_temperature_schedule_rejects_bad_times():
    for bad in (-1, float("nan"), float("inf"), "3", True):
        with pytest.raises(ValueError, match="t must be"):
            annealed_temperature(bad)


def test_elbo_and_importance_weights_match_exact_enumeration():
    """With N = 2, K = 3 all 9 codes can be summed over: log p(x) and the ELBO exactly."""
    model = tiny_model(n_latents=2, n_classes=3)
    x = binary_data(3, 6)
    logits, decoder_logits = numpy_networks(model)
    log_q = special.log_softmax(logits(x), -1)  # (B, N, K)
    codes = list(itertools.product(range(3), repeat=2))
    log_lik = np.stack([bernoulli_log_likelihood(x, decoder_logits(np.tile(np.eye(3)[list(c)],
                                                                           (3, 1, 1))))
                        for c in codes])  # (9, B)
    log_q_codes = np.stack([log_q[:, 0, c0] + log_q[:, 1, c1] for c0, c1 in codes])
    log_px = special.logsumexp(log_lik, axis=0) - 2 * math.log(3)
    kl = (np.exp(log_q) * (log_q + math.log(3))).sum((-2, -1))
    exact_elbo = (np.exp(log_q_codes) * log_lik).sum(0) - kl
    assert np.all(exact_elbo <= log_px)

    n = 20_000
    elbos = model.elbo(np.tile(x, (n, 1)), np.random.default_rng(0)).data.reshape(n, 3)
    assert np.all(np.abs(elbos.mean(0) - exact_elbo) <= 5 * elbos.std(0, ddof=1) / math.sqrt(n))
    weights = np.exp(model.log_importance_weights(x, n, np.random.default_rng(1)))  # (n, B)
    standard_error = weights.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(weights.mean(0) - np.exp(log_px)) <= 5 * standard_error)


def test_sample_and_reconstruct_decode_exact_one_hot_codes():
    model = tiny_model(n_latents=3, n_classes=4)
    x = binary_data(5, 6)
    logits, decoder_logits = numpy_networks(model)
    argmax_codes = np.eye(4)[logits(x).argmax(-1)]
    np.testing.assert_allclose(model.reconstruct(x), special.expit(decoder_logits(argmax_codes)),
                               rtol=1e-12)
    seen = []
    decode = model.decode
    model.decode = lambda codes: seen.append(codes.data.copy()) or decode(codes)
    samples = model.sample(4000, np.random.default_rng(0))
    assert samples.shape == (4000, 6) and np.all((samples >= 0) & (samples <= 1))
    (codes,) = seen
    np.testing.assert_array_equal(codes.sum(-1), 1.0)
    counts = codes.sum(0)  # (N, K): each class of each variable should be drawn 1/K of the time
    assert stats.chisquare(counts, axis=-1).pvalue.min() > 1e-3


def test_n_latents_defaults_to_z_dim():
    model = CategoricalVAE(6, hidden=(4,), z_dim=7, n_classes=3, rng=np.random.default_rng(0))
    assert (model.n_latents, model.code_dim) == (7, 21)
    assert model.encode(binary_data(2, 6, dtype=np.float32)).batch_shape == (2, 7)


def test_constructor_and_inputs_are_validated():
    rng = np.random.default_rng(0)
    for options, name in (({"n_classes": 1}, "n_classes"), ({"n_latents": 0}, "n_latents"),
                          ({"tau0": 0.3, "tau_min": 0.5}, "tau_min"), ({"tau_min": 0.0}, "tau_min"),
                          ({"anneal_rate": -1.0}, "anneal_rate"),
                          ({"tau0": float("nan")}, "tau0")):
        with pytest.raises(ValueError, match=name):
            CategoricalVAE(6, rng=rng, **options)
    with pytest.raises(TypeError, match="straight_through"):
        CategoricalVAE(6, rng=rng, straight_through="yes")
    with pytest.raises(TypeError, match="rng"):
        CategoricalVAE(6)
    model = tiny_model()
    with pytest.raises(ValueError, match="x must have shape"):
        model.objective(np.zeros((2, 5)), rng)
    with pytest.raises(TypeError, match="dtype"):
        model.objective(np.zeros((2, 6), np.float32), rng)
    with pytest.raises(ValueError, match="codes must have shape"):
        model.decode(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0, rng)
    with pytest.raises(ValueError, match="k must be"):
        model.log_importance_weights(binary_data(2, 6), 0, rng)


def test_training_on_real_digits_raises_the_objective():
    from minivae.data import binarize_dynamic

    pixels = mnist_5k().pixels(np.float32)
    rng = np.random.default_rng(0)
    held_out, train_pixels = binarize_dynamic(pixels[-500:], rng), pixels[:-500]
    model = CategoricalVAE(784, hidden=(64,), n_latents=8, n_classes=4, rng=rng,
                           anneal_rate=0.1, tau_min=0.5)

    def held_out_elbo():
        return float(model.elbo(held_out, np.random.default_rng(1)).data.mean())

    before = held_out_elbo()
    losses = train_with_adam(model, train_pixels, 300, 64, rng, lr=1e-3,
                             objective=lambda x: model.objective(x, rng),
                             on_epoch_end=model.on_epoch_end)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 200
    # An untrained decoder gives ≈ 784 log 2 ≈ 543 nats per image; 8 four-way codes (16 bits)
    # already buy a rough digit shape.
    after = held_out_elbo()
    assert before < -500 and after > -230, (before, after)
    assert model.temperature < model.tau0


def test_demo_runs_with_tiny_settings(tmp_path):
    mnist_5k()
    result = run_demo("gumbel_vae", tmp_path, "--epochs", "2", "--max-train", "256", "--hidden",
                      "16", "--n-latents", "4", "--n-classes", "3", "--k", "5", "--quiet")
    assert len(result["test_elbo"]) == 2 and np.all(np.isfinite(result["test_elbo"]))
    assert_pictures(tmp_path, "recon.png", "samples.png", "temperature.png", "curve.png")

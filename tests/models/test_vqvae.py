"""The VQ-VAE: quantization, its three loss terms and their gradients, EMA codebook, learning."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from minivae import gradcheck
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.vqvae import VQVAE, nearest_codewords, perplexity, straight_through_estimator
from minivae.optim import Adam
from tests.helpers import assert_pictures, binary_data, mnist_5k, run_demo, train_with_adam


def tiny_model(n_codes=2, codebook_size=3, code_dim=2, x_dim=6, seed=0, dtype=np.float64,
               **options):
    return VQVAE(x_dim, hidden=(5,), n_codes=n_codes, codebook_size=codebook_size,
                 code_dim=code_dim, rng=np.random.default_rng(seed), dtype=dtype, **options)


def with_leaf_encoder_output(model, x):
    """Make ``model.encode`` return one leaf Tensor (z_e of x), so z_e.grad can be read."""
    z_e = Tensor(model.encode(x).data.copy(), requires_grad=True)
    model.encode = lambda _: z_e
    return z_e


def spread_codebook(model, seed=2):
    """Codewords at the encoder outputs' scale, so that each is picked by some z_e."""
    model.codebook.data[...] = 0.3 * np.random.default_rng(seed).standard_normal(
        model.codebook.shape)
    if model.ema:  # keep e_k = m_k / N_k
        model.ema_codeword_sum[...] = model.codebook.data * model.ema_cluster_size[:, None]


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**31 - 1),
       st.floats(1e-3, 1e3))
@settings(max_examples=60)
def test_nearest_codewords_match_brute_force(n, k, d, seed, scale):
    rng = np.random.default_rng(seed)
    z, codebook = scale * rng.standard_normal((n, d)), scale * rng.standard_normal((k, d))
    codes, squared = nearest_codewords(z, codebook)
    brute = ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)  # (n, k), no expansion
    best = brute.min(axis=1)
    tolerance = 1e-12 * scale**2 * (1 + d)  # the expanded form's rounding error
    np.testing.assert_allclose(brute[np.arange(n), codes], best, rtol=1e-9, atol=tolerance)
    np.testing.assert_allclose(squared, best, rtol=1e-9, atol=tolerance)
    runner_up = np.sort(brute, axis=1)[:, 1] if k > 1 else np.full(n, np.inf)
    clear = runner_up - best > 1e-9 * scale**2
    np.testing.assert_array_equal(codes[clear], brute.argmin(axis=1)[clear])


def test_straight_through_gradient_is_the_decoder_gradient_at_z_q():
    model = tiny_model()
    spread_codebook(model)
    x = binary_data(5)
    z_e = with_leaf_encoder_output(model, x)
    terms = model.loss_terms(x)
    terms["reconstruction"].sum().backward()
    through_quantizer = z_e.grad.copy()
    decoder_grads = [p.grad.copy() for p in model.decoder.parameters()]
    assert not np.any(model.codebook.grad)  # the decoder's gradient never reaches e

    model.zero_grad()
    z_q = Tensor(model.codebook.data[terms["codes"]], requires_grad=True)
    (-model.decode(z_q).log_prob(x)).sum().backward()  # ∂rec/∂z_q, computed directly
    np.testing.assert_allclose(through_quantizer, z_q.grad, rtol=1e-12, atol=1e-14)
    for direct, through in zip((p.grad for p in model.decoder.parameters()), decoder_grads):
        np.testing.assert_allclose(through, direct, rtol=1e-12, atol=1e-14)
    # The primitive alone: value z_q, identity VJP.
    leaf = Tensor(np.zeros((2, 3)), requires_grad=True)
    out = straight_through_estimator(leaf, np.arange(6.0).reshape(2, 3))
    weights = np.random.default_rng(0).standard_normal((2, 3))
    (out * weights).sum().backward()
    np.testing.assert_array_equal(out.data, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(leaf.grad, weights)


def test_codebook_gradient_moves_codewords_toward_z_e():
    model = tiny_model(n_codes=3, codebook_size=4)
    spread_codebook(model)
    x = binary_data(7)
    z_e = with_leaf_encoder_output(model, x)
    terms = model.loss_terms(x)
    terms["codebook"].sum().backward()
    codes, e = terms["codes"].ravel(), model.codebook.data
    rows = z_e.data.reshape(-1, 2)
    expected = np.zeros_like(e)
    for row, k in zip(rows, codes):
        expected[k] += 2 * (e[k] - row)  # ∂/∂e_k ‖z_e − e_k‖²
    np.testing.assert_allclose(model.codebook.grad, expected, rtol=1e-12, atol=1e-14)
    assert z_e.grad is None or not np.any(z_e.grad)  # sg[z_e]: the encoder gets nothing
    assert not any(np.any(p.grad) for p in model.decoder.parameters())
    # A small gradient step takes each used codeword toward the mean of its z_e's.
    moved = e - 0.01 * expected
    for k in np.unique(codes):
        mean = rows[codes == k].mean(0)
        assert np.linalg.norm(moved[k] - mean) < np.linalg.norm(e[k] - mean)
    unused = np.setdiff1d(np.arange(4), codes)
    assert not np.any(model.codebook.grad[unused])


@given(st.floats(0.0, 3.0), st.integers(0, 1000))
@settings(max_examples=15)
def test_commitment_gradient_is_two_beta_times_z_e_minus_e(beta, seed):
    model = tiny_model(beta=beta, seed=seed)
    spread_codebook(model, seed)
    x = binary_data(4, seed=seed)
    z_e = with_leaf_encoder_output(model, x)
    terms = model.loss_terms(x)
    (model.beta * terms["commitment"]).sum().backward()
    z_q = model.codebook.data[terms["codes"]]
    np.testing.assert_allclose(z_e.grad, beta * 2 * (z_e.data - z_q), rtol=1e-12, atol=1e-14)
    assert not np.any(model.codebook.grad)  # sg[e]: the codebook gets nothing
    np.testing.assert_allclose(terms["commitment"].data, ((z_e.data - z_q) ** 2).sum((1, 2)))


def test_continuous_terms_pass_gradcheck():
    model = tiny_model()
    spread_codebook(model)
    x = binary_data(3)
    z_e0 = model.encode(x).data
    codes, z_q0 = model.quantize(z_e0)

    # Each term is smooth in the operand it trains; the stop-gradient operand is a constant.
    gradcheck(lambda codebook: ((z_e0 - codebook[codes]) ** 2).sum((1, 2)), model.codebook.data)
    gradcheck(lambda z_e: model.beta * ((z_e - z_q0) ** 2).sum((1, 2)), z_e0)
    gradcheck(lambda z: model.decode(z).log_prob(x), z_q0)


@pytest.mark.parametrize("ema", [False, True])
def test_objective_gradient_is_the_frozen_offset_gradient(ema, flat_gradient_check):
    """The backward pass is the exact gradient of the loss with the quantization offset
    c = z_q − z_e, the codes, and the stop-gradient operands frozen at the current parameters."""
    model = tiny_model(n_codes=3, codebook_size=4, ema=ema, beta=0.7)
    spread_codebook(model)
    model.training = False  # keep the EMA codebook still while differences are taken
    x = binary_data(6)
    with no_grad():
        z_e0 = model.encode(x).data.copy()
    codes, z_q0 = model.quantize(z_e0)

    def frozen_offset_loss():
        with no_grad():
            z_e = model.encode(x)
            reconstruction = -model.decode(z_e + (z_q0 - z_e0)).log_prob(x).sum()
            codebook = 0.0 if ema else ((z_e0 - model.codebook.data[codes]) ** 2).sum()
            commitment = ((z_e - z_q0) ** 2).sum()
        return float(reconstruction.data + codebook + model.beta * commitment.data)

    model.zero_grad()
    (-model.objective(x)).sum().backward()
    directions = np.random.default_rng(3).standard_normal((4, model.flat_data.size))
    flat_gradient_check(model, frozen_offset_loss, model.flat_grad.copy(), directions,
                        rtol=1e-6, atol=1e-8)


@given(st.integers(1, 300), st.integers(1, 50))
@settings(max_examples=30)
def test_perplexity_of_uniform_usage_is_k(k, count):
    assert perplexity(np.full(k, count)) == pytest.approx(k, rel=1e-12)
    one_hot = np.zeros(k)
    one_hot[k // 2] = count
    assert perplexity(one_hot) == pytest.approx(1.0, rel=1e-12)
    counts = np.random.default_rng(k).integers(0, 20, size=k)
    if counts.sum() > 0:
        assert perplexity(counts) == pytest.approx(math.exp(stats.entropy(counts)), rel=1e-12)
        assert 1.0 - 1e-12 <= perplexity(counts) <= np.count_nonzero(counts) * (1 + 1e-12)
    for bad in (np.zeros(3), np.array([1.0, -1.0]), np.ones((2, 2)), np.array([])):
        with pytest.raises(ValueError, match="counts"):
            perplexity(bad)


def test_ema_update_matches_a_direct_transcription():
    k, d, decay, eps = 5, 3, 0.9, 1e-3
    model = tiny_model(codebook_size=k, code_dim=d, ema=True, decay=decay, ema_epsilon=eps)
    rng = np.random.default_rng(4)
    size, total = np.ones(k), model.codebook.data.copy()  # N_k = 1 and m_k = e_k at the start
    for _ in range(6):
        z = rng.standard_normal((11, d))
        codes = rng.integers(0, k - 1, size=11)  # the last codeword stays unused
        model.codebook_step(z, codes)
        for j in range(k):
            members = z[codes == j]
            size[j] = decay * size[j] + (1 - decay) * len(members)
            total[j] = decay * total[j] + (1 - decay) * members.sum(0)
        n = size.sum()
        codebook = total / ((size + eps) / (n + k * eps) * n)[:, None]
        np.testing.assert_allclose(model.codebook.data, codebook, rtol=1e-12)
    np.testing.assert_allclose(model.ema_cluster_size, size, rtol=1e-12)
    assert model.codebook.data.dtype == np.float64


def test_ema_codebook_moves_only_in_training_steps_and_never_by_adam():
    model = tiny_model(ema=True)
    spread_codebook(model)
    assert all(p is not model.codebook for p in model.parameters())
    assert model.flat_data.size == sum(p.size for p in model.encoder.parameters()) \
        + sum(p.size for p in model.decoder.parameters())
    x, before = binary_data(8), model.codebook.data.copy()
    with no_grad():
        model.objective(x)
    model.training = False
    model.objective(x)
    model.codebook_usage(x), model.reconstruct(x), model.elbo(x)
    np.testing.assert_array_equal(model.codebook.data, before)

    model.training = True
    optimizer = Adam(model.parameters(), lr=0.1)
    z_e, codes = model.encode(x).data.reshape(-1, 2), model.quantize(model.encode(x))[0].ravel()
    reference = tiny_model(ema=True)
    reference.codebook.data[...], reference.ema_codeword_sum[...] = before, before
    reference.codebook_step(z_e, codes)
    optimizer.zero_grad()
    (-model.objective(x).mean()).backward()
    optimizer.step()
    np.testing.assert_allclose(model.codebook.data, reference.codebook.data, rtol=1e-12)
    assert not np.array_equal(model.codebook.data, before)


def test_restart_codes_revives_dead_codewords():
    for ema in (False, True):
        model = tiny_model(codebook_size=4, ema=ema)
        spread_codebook(model)
        model.codebook.data[3] = 100.0  # far from every z_e: dead
        x = binary_data(20)
        assert model.codebook_usage(x)[0][3] == 0
        moved = model.restart_codes(x, np.random.default_rng(0))
        assert 3 in moved
        z_e = model.encode(x).data.reshape(-1, 2)
        assert np.min(np.abs(z_e - model.codebook.data[3]).sum(1)) == 0  # sits on a z_e
        assert model.codebook_usage(x)[0][3] > 0
        if ema:
            assert model.ema_cluster_size[3] == 1
            np.testing.assert_array_equal(model.ema_codeword_sum[3], model.codebook.data[3])


def test_restart_dead_moves_unused_codewords_at_epoch_end():
    for ema in (False, True):
        model = tiny_model(codebook_size=4, ema=ema, restart_dead=True)
        spread_codebook(model)
        model.codebook.data[3] = 100.0
        x = binary_data(20)
        with no_grad():
            model.objective(x)  # evaluation: nothing is counted
        model.on_epoch_end(1)
        assert np.all(model.codebook.data[3] == 100.0)
        model.objective(x)  # a training step
        z_e = model.encode(x).data.reshape(-1, 2)
        model.on_epoch_end(2)
        assert np.min(np.abs(z_e - model.codebook.data[3]).sum(1)) == 0  # moved onto a z_e
        assert not np.any(model._epoch_counts)  # the next epoch counts afresh
        model.codebook.data[3] = 100.0
        model.on_epoch_end(3)  # no training step this epoch: no evidence, nothing moves
        assert np.all(model.codebook.data[3] == 100.0)
    quiet = tiny_model(codebook_size=4)  # restart_dead=False: on_epoch_end changes nothing
    quiet.codebook.data[3] = 100.0
    quiet.objective(binary_data(20))
    quiet.on_epoch_end(1)
    assert np.all(quiet.codebook.data[3] == 100.0)


def test_codebook_usage_counts_every_symbol():
    model = tiny_model(n_codes=3, codebook_size=4)
    spread_codebook(model)
    x = binary_data(50)
    counts, value = model.codebook_usage(x, batch_size=7)
    codes, _ = model.quantize(model.encode(x))
    np.testing.assert_array_equal(counts, np.bincount(codes.ravel(), minlength=4))
    assert counts.sum() == 50 * 3 and value == pytest.approx(perplexity(counts))


def test_elbo_is_below_the_exact_evidence():
    """With 2 codes of K = 3, log p(x) = log Σ_c p(x | e_c) (1/9) is a sum of 9 terms."""
    model = tiny_model(n_codes=2, codebook_size=3)
    spread_codebook(model)
    x = binary_data(5)
    every = [np.tile(model.codebook.data[[a, b]], (5, 1, 1)) for a in range(3) for b in range(3)]
    log_lik = np.stack([model.decode(z).log_prob(x).data for z in every])  # (9, B)
    log_px = special.logsumexp(log_lik, axis=0) - 2 * math.log(3)
    elbo = model.elbo(x).data
    assert np.all(elbo <= log_px)
    _, z_q = model.quantize(model.encode(x))
    np.testing.assert_allclose(elbo, model.decode(z_q).log_prob(x).data - 2 * math.log(3))


def test_sample_and_reconstruct_decode_codewords():
    model = tiny_model(n_codes=2, codebook_size=4)
    x = binary_data(5)
    np.testing.assert_allclose(model.reconstruct(x),
                               model.decode(model.quantize(model.encode(x))[1]).probs.data)
    seen = []
    decode = model.decode
    model.decode = lambda z: seen.append(np.asarray(z)) or decode(z)
    samples = model.sample(4000, np.random.default_rng(0))
    assert samples.shape == (4000, 6) and np.all((samples >= 0) & (samples <= 1))
    (z,) = seen
    indices = (z[..., None, :] == model.codebook.data).all(-1).argmax(-1)  # (n, n_codes)
    counts = np.stack([np.bincount(indices[:, j], minlength=4) for j in range(2)])
    assert stats.chisquare(counts, axis=-1).pvalue.min() > 1e-3


def test_state_dict_round_trip_keeps_the_ema_codebook():
    for ema in (False, True):
        model, copy = tiny_model(ema=ema), tiny_model(ema=ema, seed=9)
        if ema:
            model.codebook_step(np.ones((4, 2)), np.array([0, 0, 1, 2]))
        copy.load_state_dict(model.state_dict())
        x = binary_data(3)
        np.testing.assert_array_equal(copy.objective(x).data, model.objective(x).data)
        np.testing.assert_array_equal(copy.codebook.data, model.codebook.data)
    with pytest.raises(ValueError, match="ema_cluster_size"):
        tiny_model(ema=True).load_state_dict(tiny_model(ema=False).state_dict())


def test_float32_is_preserved():
    model = tiny_model(dtype=np.float32, ema=True)
    x = binary_data(4, dtype=np.float32)
    objective = model.objective(x)
    objective.sum().backward()
    assert objective.dtype == np.float32 and model.codebook.data.dtype == np.float32
    assert model.ema_cluster_size.dtype == np.float32
    assert model.reconstruct(x).dtype == np.float32
    assert model.sample(3, np.random.default_rng(0)).dtype == np.float32
    z, codebook = np.ones((3, 2), np.float32), np.zeros((4, 2), np.float32)
    assert nearest_codewords(z, codebook)[1].dtype == np.float32


def test_constructor_and_inputs_are_validated():
    rng = np.random.default_rng(0)
    for options, name in (({"codebook_size": 0}, "codebook_size"), ({"code_dim": 0}, "code_dim"),
                          ({"n_codes": 0}, "n_codes"), ({"beta": -1.0}, "beta"),
                          ({"decay": 1.0}, "decay"), ({"decay": 0.0}, "decay"),
                          ({"ema_epsilon": 0.0}, "ema_epsilon"), ({"beta": float("nan")}, "beta")):
        with pytest.raises(ValueError, match=name):
            VQVAE(6, rng=rng, **options)
    with pytest.raises(TypeError, match="ema"):
        VQVAE(6, rng=rng, ema="yes")
    with pytest.raises(TypeError, match="restart_dead"):
        VQVAE(6, rng=rng, restart_dead=1)
    with pytest.raises(TypeError, match="rng"):
        VQVAE(6)
    assert VQVAE(6, hidden=(4,), z_dim=7, rng=rng).n_codes == 7  # n_codes defaults to z_dim
    model = tiny_model()
    with pytest.raises(ValueError, match="x must have shape"):
        model.objective(np.zeros((2, 5)))
    with pytest.raises(TypeError, match="dtype"):
        model.objective(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="z must have shape"):
        model.decode(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0, rng)
    with pytest.raises(ValueError, match="ema=True"):
        model.codebook_step(np.zeros((3, 2)), np.zeros(3, int))
    with pytest.raises(ValueError, match="z_e must have shape"):
        tiny_model(ema=True).codebook_step(np.zeros((3, 5)), np.zeros(3, int))
    with pytest.raises(ValueError, match="z_q must match"):
        straight_through_estimator(Tensor(np.zeros(3)), np.zeros(4))


@pytest.mark.parametrize("ema", [False, True])
def test_training_on_real_digits_lowers_the_loss(ema):
    from minivae.data import binarize_dynamic

    pixels = mnist_5k().pixels(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pixels))  # the file is sorted by class
    held_out, train_pixels = binarize_dynamic(pixels[order[:500]], rng), pixels[order[500:]]
    model = VQVAE(784, hidden=(64,), n_codes=8, codebook_size=16, code_dim=4, ema=ema, rng=rng)

    def held_out_reconstruction():
        with no_grad():
            return float(-model.elbo(held_out).data.mean() - 8 * math.log(16))

    before = held_out_reconstruction()
    losses = train_with_adam(model, train_pixels, 300, 64, rng, lr=1e-3, objective=model.objective)
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-30:]) < np.mean(losses[:30]) - 150, (losses[:30], losses[-30:])
    # A decoder that ignores the codes can do no better than independent pixels with the
    # held-out frequencies p̂_i: Σ_i h(p̂_i) nats.  Beating it by a margin means the 8 symbols
    # carry information about each digit, not just the average digit.
    frequencies = held_out.astype(np.float64).mean(0)
    no_information = special.entr(frequencies).sum() + special.entr(1 - frequencies).sum()
    after = held_out_reconstruction()
    assert before > 500 and after < no_information - 10, (before, after, no_information)
    codes, _ = model.quantize(model.encode(held_out))
    assert len({tuple(row) for row in codes}) > 100  # of 500 digits
    assert model.codebook_usage(held_out)[1] > 4


def test_demo_runs_with_tiny_settings(tmp_path):
    mnist_5k()
    results = run_demo("vqvae", tmp_path, "--epochs", "2", "--max-train", "256", "--hidden", "16",
                       "--n-codes", "4", "--codebook-size", "8", "--code-dim", "2", "--quiet")
    assert [r["name"] for r in results] == ["gradient codebook", "EMA codebook"]
    for result in results:
        assert np.isfinite(result["test_reconstruction"]) and 1 <= result["perplexity"] <= 8
    assert_pictures(tmp_path, "recon_gradient.png", "recon_ema.png", "samples_gradient.png",
                    "samples_ema.png", "usage.png", "curve.png")

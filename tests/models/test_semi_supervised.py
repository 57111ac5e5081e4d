"""The M2 model of Kingma et al. (2014): its two bounds against NumPy and a grid, its gradients,
its input checks, and a short semi-supervised run on real digits."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import special, stats

from minivae import kernels
from minivae.cli import main
from minivae.data import binarize_dynamic, load_dataset
from minivae.engine import ops
from minivae.engine.tensor import Tensor, no_grad
from minivae.io.checkpoint import load_checkpoint
from minivae.models import GaussianSemiSupervisedVAE, SemiSupervisedVAE
from minivae.optim import Adam
from minivae.train import TEST_BINARIZATION_SEED, TrainConfig, train, training_data
from minivae.training_data import choose_labelled, class_entropy
from tests.helpers import assert_pictures, binary_data, demo, run_demo

K = 3


def tiny_model(z_dim=2, x_dim=6, seed=0, dtype=np.float64, cls=SemiSupervisedVAE,
               hidden=(5,), **options):
    return cls(x_dim, hidden=hidden, z_dim=z_dim, activation="tanh",
               rng=np.random.default_rng(seed), dtype=dtype, **{"n_classes": K, **options})


def real_data(n, x_dim=6, seed=0):
    """Real vectors like M1's latent means: any sign, a few units wide."""
    return 2.0 * np.random.default_rng(seed).standard_normal((n, x_dim))


def numpy_mlp(mlp, h):
    """The MLP's forward pass in NumPy (tanh between the layers)."""
    for i, layer in enumerate(mlp.layers):
        h = h @ layer.weight.data + layer.bias.data
        if i < len(mlp.layers) - 1:
            h = np.tanh(h)
    return h


def numpy_log_likelihood(model, x, y, z):
    """log p(x | y, z) = Σ_i x_i l_i − log(1 + e^l_i), l = decoder([e_y, z]); z (..., B, J).
    For the Gaussian decoder [μ; h] = decoder([e_y, z]), σ² = m² + e^h (m the floor), and
    scipy's normal log density."""
    e_y = np.broadcast_to(np.eye(K)[y], (*z.shape[:-1], K))
    output = numpy_mlp(model.decoder, np.concatenate([e_y, z], axis=-1))
    if isinstance(model, GaussianSemiSupervisedVAE):
        mean, raw = output[..., :model.x_dim], output[..., model.x_dim:]
        sigma = np.sqrt(model.min_sigma ** 2 + np.exp(raw))
        return stats.norm.logpdf(x, mean, sigma).sum(axis=-1)
    return (x * output - np.logaddexp(0.0, output)).sum(axis=-1)


def numpy_labelled_bound(model, x, y, eps):
    """L(x, y) = log p(x|y,z) − log K − KL(q(z|x,y) ‖ N(0, I)), z = μ + σ ε, with the KL as
    the cross-entropy of q against N(0, I) minus the entropy of q (scipy's)."""
    h = numpy_mlp(model.encoder, np.concatenate([x, np.eye(K)[y]], axis=-1))
    mu, log_var = h[:, :model.z_dim], h[:, model.z_dim:]
    z = mu + np.exp(0.5 * log_var) * eps
    entropy = stats.norm(mu, np.exp(0.5 * log_var)).entropy().sum(-1)
    cross_entropy = (0.5 * np.log(2 * np.pi) + 0.5 * (mu**2 + np.exp(log_var))).sum(-1)
    return numpy_log_likelihood(model, x, y, z) - np.log(K) + entropy - cross_entropy


def test_labelled_bound_matches_numpy():
    model, x = tiny_model(), binary_data(5)
    y = np.array([0, 1, 2, 1, 0])
    value = model.labelled_bound(x, y, np.random.default_rng(3)).data
    eps = np.random.default_rng(3).standard_normal((5, 2))
    np.testing.assert_allclose(value, numpy_labelled_bound(model, x, y, eps), rtol=1e-12)


@pytest.mark.parametrize("cls, data", [(SemiSupervisedVAE, binary_data),
                                       (GaussianSemiSupervisedVAE, real_data)])
def test_unlabelled_bound_enumerates_the_classes(cls, data):
    model, x = tiny_model(cls=cls), data(4)
    value = model.unlabelled_bound(x, np.random.default_rng(5)).data
    eps = np.random.default_rng(5).standard_normal((K, 4, 2))  # class by class
    bounds = np.stack([numpy_labelled_bound(model, x, np.full(4, c), eps[c]) for c in range(K)],
                      axis=-1)  # (B, K)
    q = special.softmax(numpy_mlp(model.classifier, x), axis=-1)
    expected = (q * bounds).sum(-1) + stats.entropy(q, axis=-1)
    np.testing.assert_allclose(value, expected, rtol=1e-12)


@pytest.mark.parametrize("cls, data", [(SemiSupervisedVAE, binary_data),
                                       (GaussianSemiSupervisedVAE, real_data)])
def test_unlabelled_bound_is_below_the_evidence(cls, data):
    """With z_dim = 1, log p(x) = log Σ_y (1/K) ∫ p(x|y,z) N(z; 0, 1) dz on a fine grid; the
    mean of U(x) over many draws lies below it, and the importance weights average to p(x)."""
    model, x = tiny_model(z_dim=1, cls=cls), data(3)
    grid = np.linspace(-12, 12, 24_001)
    z = grid[:, None, None].repeat(3, axis=1)  # (G, B, 1)
    log_joint = np.stack([numpy_log_likelihood(model, x, np.full(3, c), z) for c in range(K)])
    log_joint += stats.norm.logpdf(z[..., 0]) - np.log(K)  # (K, G, B)
    log_px = special.logsumexp(log_joint, axis=(0, 1)) + np.log(grid[1] - grid[0])
    n = 20_000
    bounds = model.unlabelled_bound(np.tile(x, (n, 1)), np.random.default_rng(1)).data
    bounds = bounds.reshape(n, 3)
    se = bounds.std(0, ddof=1) / math.sqrt(n)
    assert np.all(bounds.mean(0) <= log_px + 4 * se)
    assert np.all(bounds.mean(0) < log_px - 0.01)  # an untrained q is far from the posterior
    weights = np.exp(model.log_importance_weights(x, n, np.random.default_rng(2)))  # (n, B)
    se_w = weights.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(weights.mean(0) - np.exp(log_px)) <= 5 * se_w)


@pytest.mark.parametrize("cls, data", [(SemiSupervisedVAE, binary_data),
                                       (GaussianSemiSupervisedVAE, real_data)])
@pytest.mark.parametrize("hidden", [(5,), (5, 4), ()])
def test_every_class_encoder_is_the_concatenated_one(cls, data, hidden):
    """q(z | x, y) for the K · B rows [x_b, e_y] (row y · B + b), by x W_x + W_y[y] + b, has
    the values and the parameter gradients of the encoder run on the concatenated rows."""
    model, x = tiny_model(cls=cls, hidden=hidden), data(4)
    every_class = np.repeat(np.arange(K), 4)
    weights = np.random.default_rng(9).standard_normal((K * 4, 2 * model.z_dim))
    results = []
    for fast in (False, True):
        model.zero_grad()
        x_tensor = Tensor(x)
        if fast:
            q_z = model._encode_every_class(x_tensor)
        else:
            q_z = model._encode_one_hot(Tensor(np.tile(x, (K, 1))), model.one_hot(every_class))
        h = ops.concatenate([q_z.loc, q_z.log_var], axis=-1)
        (h * Tensor(weights)).sum().backward()
        results.append((h.data, [p.grad.copy() for p in model.encoder.parameters()]))
    (slow, slow_grads), (fast, fast_grads) = results
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    with kernels.composed():  # with the kernels off it is the concatenated form itself
        concatenated = model._encode_one_hot(Tensor(np.tile(x, (K, 1))),
                                             model.one_hot(every_class))
        np.testing.assert_array_equal(model._encode_every_class(Tensor(x)).loc.data,
                                      concatenated.loc.data)
    for g_fast, g_slow in zip(fast_grads, slow_grads):
        np.testing.assert_allclose(g_fast, g_slow, rtol=1e-10, atol=1e-12)


def test_every_parameter_passes_gradcheck(objective_gradcheck):
    objective_gradcheck(tiny_model(), binary_data(3), seed=4)


def test_gaussian_m2_passes_gradcheck(objective_gradcheck):
    objective_gradcheck(tiny_model(cls=GaussianSemiSupervisedVAE), real_data(3), seed=4)


def test_gaussian_m2_learns_classes_from_few_labels():
    """Three well-separated Gaussian blobs in 6 dimensions (codes of three digits, say), 5
    labels of each: training on J^α brings the test error far below the 2/3 of guessing."""
    rng = np.random.default_rng(0)
    centres = 3.0 * np.eye(K, 6)

    def blobs(n):
        y = rng.integers(0, K, n)
        return centres[y] + 0.5 * rng.standard_normal((n, 6)), y

    (x, y), (test_x, test_y) = blobs(300), blobs(300)
    labelled = np.concatenate([np.flatnonzero(y == c)[:5] for c in range(K)])
    model = tiny_model(cls=GaussianSemiSupervisedVAE, hidden=(16,), dtype=np.float64)
    optimizer = Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        rows, pairs = rng.integers(0, 300, 30), rng.choice(labelled, 30)
        loss = -model.objective(x[rows], rng, x_labelled=x[pairs], y_labelled=y[pairs],
                                labelled_fraction=len(labelled) / 300).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert np.mean(model.predict(test_x) != test_y) < 0.1


def test_gaussian_labelled_bound_matches_scipy():
    """L(x, y) with the Gaussian decoder: scipy's normal log density of x, − log K, − the KL
    (scipy's entropy); the same ε."""
    model, x = tiny_model(cls=GaussianSemiSupervisedVAE), real_data(5)
    y = np.array([0, 1, 2, 1, 0])
    value = model.labelled_bound(x, y, np.random.default_rng(3)).data
    eps = np.random.default_rng(3).standard_normal((5, 2))
    np.testing.assert_allclose(value, numpy_labelled_bound(model, x, y, eps), rtol=1e-12)
    assert not model.binary_data and model.x_support == "real"


def test_paired_objective_adds_the_three_terms(flat_gradient_check):
    model, x, x_l = tiny_model(), binary_data(4), binary_data(4, seed=9)
    y_l = np.array([2, 0, 1, 1])
    rng = np.random.default_rng(6)
    value = model.semi_supervised_objective(x, x_l, y_l, rng, labelled_weight=0.25,
                                            classification_weight=7.0).data
    rng = np.random.default_rng(6)  # the same draws: U's first, then L's
    log_q = special.log_softmax(numpy_mlp(model.classifier, x_l), axis=-1)[np.arange(4), y_l]
    bound_u, bound_l = model.unlabelled_bound(x, rng).data, model.labelled_bound(x_l, y_l, rng).data
    np.testing.assert_allclose(value, bound_u + 0.25 * bound_l + 7.0 * log_q, rtol=1e-12)
    assert model.classification_weight(100 / 5000) == pytest.approx(5.0)  # 0.1 · N / N_l
    # objective(x, rng, **pairs), as train calls it: "balanced" (the default) adds L and α' log q
    # as they are, "paper" weights both by f = N_l / N
    pairs = dict(x_labelled=x_l, y_labelled=y_l, labelled_fraction=0.02)
    balanced = model.objective(x, np.random.default_rng(6), **pairs).data
    np.testing.assert_allclose(balanced, bound_u + bound_l + 5.0 * log_q, rtol=1e-12)
    paper = tiny_model(labelled_weighting="paper").objective(x, np.random.default_rng(6), **pairs)
    np.testing.assert_allclose(paper.data, bound_u + 0.02 * bound_l + 0.02 * 5.0 * log_q,
                               rtol=1e-12)

    def objective():
        return float(model.semi_supervised_objective(x, x_l, y_l, np.random.default_rng(6),
                                                     0.25, 7.0).data.sum())

    model.zero_grad()
    model.semi_supervised_objective(x, x_l, y_l, np.random.default_rng(6), 0.25,
                                    7.0).sum().backward()
    directions = np.random.default_rng(8).standard_normal((4, model.flat_data.size))
    flat_gradient_check(model, objective, model.flat_grad.copy(), directions, rtol=1e-6,
                        atol=1e-8)


class NoNoise(np.random.Generator):
    """A generator whose standard normal draws are all 0 (z = μ), so that a bound is a plain
    function of the weights and an expectation over the pairing can be enumerated."""

    def standard_normal(self, size=None, dtype=np.float64, out=None):
        return np.zeros(size, dtype)


def test_an_epoch_of_paired_rows_is_j_alpha_in_expectation():
    """Six images, three of them labelled, minibatches of three: every way of drawing one
    labelled pair per row (3⁶ = 729, equally likely) enumerated.  With the "paper" weighting
    the mean over them of the epoch's summed rows equals J^α = Σ_x U(x) + Σ_l L(x, y)
    + α E_l[log q(y | x)] with α = 0.1 · N, each term computed on its own; the "balanced"
    rows (the default) count both labelled terms N / N_l = 2 times."""
    model, x = tiny_model(labelled_weighting="paper"), binary_data(6, seed=4)
    balanced = tiny_model()  # the same weights: tiny_model seeds its generator
    labelled, labels = np.array([0, 2, 5]), np.array([1, 0, 2])  # N_l = 3 of N = 6
    share, no_noise = 3 / 6, NoNoise(np.random.PCG64(0))
    u_rows = [model.objective(x[:3], no_noise).data, model.objective(x[3:], no_noise).data]
    j_alpha = (np.sum(u_rows) + model.labelled_bound(x[labelled], labels, no_noise).data.sum()
               + 0.1 * 6 * np.mean(model.class_log_probs(x[labelled]).data[np.arange(3), labels]))
    epochs, unweighted = [], []  # the summed rows of each enumerated epoch
    for draws in itertools.product(range(3), repeat=6):
        pairs = np.array(draws).reshape(2, 3)  # which labelled pair each row of each batch meets
        batches = [(x[3 * b:3 * b + 3], x[labelled[pairs[b]]], labels[pairs[b]]) for b in range(2)]
        epochs.append(sum(model.objective(batch, no_noise, x_labelled=x_l, y_labelled=y_l,
                                          labelled_fraction=share).data.sum()
                          for batch, x_l, y_l in batches))
        unweighted.append(sum(balanced.objective(batch, no_noise, x_labelled=x_l, y_labelled=y_l,
                                                 labelled_fraction=share).data.sum()
                              for batch, x_l, y_l in batches))
    assert np.mean(epochs) == pytest.approx(j_alpha, rel=1e-12)
    labelled_terms = j_alpha - np.sum(u_rows)
    assert np.mean(unweighted) == pytest.approx(np.sum(u_rows) + 2 * labelled_terms, rel=1e-12)


def test_labelled_training_data_pairs_every_image_with_a_uniform_labelled_draw(tmp_path):
    """The hook's side of J^α: one epoch of batches holds each training image once, each with
    one labelled pair drawn from the N_l labelled images (every one of them drawn, none other),
    and hands the share f = N_l / N the rows are weighted by."""
    config = TrainConfig(model="m2", labels=20, max_train=400, max_test=50, out=str(tmp_path))
    data = training_data(config)
    batches = list(data.batches(data.train_pixels, 64, np.random.default_rng(1)))
    seen = np.concatenate([x for x, _ in batches])
    assert sorted(map(bytes, seen)) == sorted(map(bytes, data.train_pixels))
    pairs = np.concatenate([extra["x_labelled"] for _, extra in batches])
    assert len(pairs) == 400 and all(extra["labelled_fraction"] == 20 / 400 for _, extra in batches)
    drawn = {bytes(row) for row in pairs}
    assert drawn == {bytes(row) for row in data.train_pixels[data.labelled]}


@pytest.mark.parametrize("y, error, words", [
    (np.array([0, 1, 3]), ValueError, "y must be class labels in"),
    (np.array([0, -1, 2]), ValueError, "y must be class labels in"),
    (np.array([0.0, 1.0, 2.0]), TypeError, "y must hold integer class labels"),
    (np.array([0, 1]), ValueError, "y"),
    (np.array([[0, 1, 2]]), ValueError, "y"),
])
def test_bad_labels_are_named(y, error, words):
    model, x = tiny_model(), binary_data(3)
    with pytest.raises(error, match=words):
        model.labelled_bound(x, y, np.random.default_rng(0))


def test_bad_pairs_and_options_are_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="x_labelled"):
        model.semi_supervised_objective(binary_data(3), binary_data(2), np.array([0, 1]),
                                        np.random.default_rng(0), 1.0, 1.0)
    with pytest.raises(ValueError, match="labelled_fraction"):
        model.objective(binary_data(2), np.random.default_rng(0), x_labelled=binary_data(2),
                        y_labelled=np.array([0, 1]), labelled_fraction=0.0)
    with pytest.raises(ValueError, match="n_classes"):
        tiny_model(n_classes=1)
    with pytest.raises(ValueError, match="alpha_scale"):
        tiny_model(alpha_scale=-1.0)
    with pytest.raises(ValueError, match="labelled_weighting"):
        tiny_model(labelled_weighting="labels first")


def test_labels_are_balanced_and_checked():
    labels = np.repeat(np.arange(4), [5, 6, 7, 3])
    chosen = choose_labelled(labels, 12, 4, np.random.default_rng(0))
    assert np.array_equal(np.bincount(labels[chosen]), [3, 3, 3, 3])
    assert len(set(chosen)) == 12
    with pytest.raises(ValueError, match="labels must be a multiple of the 4 classes"):
        choose_labelled(labels, 10, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="labels must be at most 4 × the images of the rarest"):
        choose_labelled(labels, 16, 4, np.random.default_rng(0))


def test_a_subset_of_the_class_sorted_digits_is_drawn_at_random_for_m2(tmp_path):
    """The embedded splits are sorted by class: their first 2000 training images hold digits
    0-4 only.  m2 draws its --max-train / --max-test images at random (the same ones for one
    seed), so 100 labels are 10 of each digit; other models keep the first images."""
    digits = load_dataset("mnist-5k", "train")
    config = TrainConfig(model="m2", labels=100, max_train=2000, max_test=200,
                         out=str(tmp_path))
    data, again = training_data(config), training_data(config)
    assert np.array_equal(data.train_pixels, again.train_pixels)
    assert np.array_equal(np.bincount(data.train_labels[data.labelled]), [10] * 10)
    assert len(data.train_pixels) == 2000 and np.all(np.bincount(data.train_labels) > 150)
    assert np.all(np.bincount(data.test_labels, minlength=10) > 5)
    vae = training_data(TrainConfig(max_train=2000, out=str(tmp_path)))
    assert np.array_equal(vae.train_pixels, digits.pixels(np.float32)[:2000])


def test_the_config_asks_for_labels_with_m2_only(tmp_path):
    with pytest.raises(ValueError, match="labels must say how many"):
        TrainConfig(model="m2", out=str(tmp_path))
    with pytest.raises(ValueError, match="labels is read only by the semi-supervised"):
        TrainConfig(model="vae", labels=100, out=str(tmp_path))
    with pytest.raises(ValueError, match="labels must be a positive integer"):
        TrainConfig(model="m2", labels=0, out=str(tmp_path))


@pytest.mark.parametrize("labels, words", [("105", "--labels must be a multiple of the 10"),
                                           ("6000", "--labels must be at most 10 ×")])
def test_the_command_line_names_bad_label_counts(tmp_path, capsys, labels, words):
    code = main(["train", "--model", "m2", "--labels", labels, "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and words in capsys.readouterr().err


def test_training_from_100_labels_beats_chance(tmp_path, no_pictures):
    """Two epochs on the 4500 embedded digits with 100 labels: the test error falls well below
    the 90% of guessing (the default, balanced weighting of the labelled rows)."""
    config = TrainConfig(model="m2", labels=100, epochs=2, hidden=(64,), z_dim=8,
                         out=str(tmp_path / "run"))
    metrics = train(config, progress=False)
    assert metrics["test_error"][-1] < 0.5
    assert metrics["test_elbo"][-1] > metrics["test_elbo"][0]


def test_class_entropy_is_scipys():
    """The mean of scipy.stats.entropy over the rows of q(y | x), in nats, batch by batch."""
    model = SemiSupervisedVAE(12, hidden=(8,), z_dim=3, rng=np.random.default_rng(0),
                              dtype=np.float64)
    x = (np.random.default_rng(1).random((25, 12)) < 0.5).astype(np.float64)
    with no_grad():
        q = np.exp(model.class_log_probs(x).data)
    expected = stats.entropy(q, axis=1).mean()
    assert class_entropy(model, x, batch_size=7) == pytest.approx(expected, rel=1e-12)
    assert class_entropy(model, x) <= np.log(model.n_classes)
    with pytest.raises(TypeError, match="class_log_probs"):
        class_entropy(object(), x)


def test_demo_compares_m2_and_m1_m2_with_kmeans_and_draws_its_pictures(tmp_path):
    result = run_demo("semi_supervised", tmp_path, "--epochs", "1", "--vae-epochs", "1",
                      "--hidden", "32", "--z-dim", "4", "--m1-units", "all", "--quiet")
    assert result["m2_test_error"] < 0.9 and result["kmeans_test_error"] < 0.9  # chance: 0.9
    # one epoch of a 4-dimensional M1 keeps too little of the class for M1+M2 to beat chance
    # (test_gaussian_m2_learns_classes_from_few_labels checks that it learns)
    assert len(result["m1m2_curve"]) == 1 and 0.0 <= result["m1m2_test_error"] <= 1.0
    assert len(result["m1m2_class_entropy"]) == len(result["m1m2_matched_error"]) == 1
    assert 0.0 <= result["m1m2_class_entropy"][0] <= np.log(10) + 1e-9
    # the best relabelling of the predictions can only fit the labels better
    assert 0.0 <= result["m1m2_matched_error"][0] <= result["m1m2_test_error"] + 1e-12
    # ten classes: the most used one holds at least a tenth of the test digits
    assert 0.1 <= result["m1m2_largest_class"][0] <= 1.0
    assert_pictures(tmp_path, "test_error.png", "analogies.png")


def test_demo_trains_m1_plus_m2_on_fresh_draws_of_the_codes(tmp_path):
    """--m1-codes sample trains M1+M2 on z₁ ~ q(z₁ | x) instead of μ(x): with the same seed
    M2 on the pixels is the same run and M1+M2 another."""
    tiny = ["--epochs", "1", "--vae-epochs", "1", "--hidden", "16", "--z-dim", "4",
            "--m1-units", "all", "--quiet"]
    means = run_demo("semi_supervised", tmp_path / "mean", *tiny, "--m1-codes", "mean")
    draws = run_demo("semi_supervised", tmp_path / "sample", *tiny, "--m1-codes", "sample")
    assert means["m2_curve"] == draws["m2_curve"]
    assert means["m1m2_class_entropy"] != draws["m1m2_class_entropy"]
    assert means["m1_units"] == draws["m1_units"] == 4


def test_demo_says_when_m1_uses_none_of_its_units(tmp_path):
    """After one epoch on the 4,500 digits a 4-unit M1 has switched every unit off (each
    Var_x μ(x) ≤ 0.01): M1+M2 would see nothing, and the demo says what to do instead."""
    with pytest.raises(ValueError, match="M1 uses none of its 4 latent units"):
        run_demo("semi_supervised", tmp_path, "--epochs", "1", "--vae-epochs", "1",
                 "--hidden", "16", "--z-dim", "4", "--quiet")


def test_demo_stops_each_training_at_its_budget(tmp_path):
    """A budget spent at once: M2 and M1+M2 train one epoch of the three asked for."""
    result = run_demo("semi_supervised", tmp_path, "--epochs", "3", "--vae-epochs", "3",
                      "--hidden", "16", "--z-dim", "4", "--budget-minutes", "1e-6",
                      "--m1-units", "all", "--quiet")
    assert result["m2_epochs"] == result["m1m2_epochs"] == 1
    assert len(result["m2_curve"]) == len(result["m1m2_curve"]) == 1
    assert_pictures(tmp_path, "test_error.png")


def test_demo_can_leave_out_m2_and_give_the_vae_its_own_budget(tmp_path):
    """--skip-m2 trains M1 and M1+M2 only (no M2 run, no analogies from it); a VAE budget spent
    at once stops M1 after one of its three epochs while M1+M2 keeps its three; results.json
    holds the curves and a confusion matrix whose diagonal is the last epoch's accuracy; an
    earlier run's analogies.png in the folder is removed; m1m2.npz holds M1+M2 as trained, so
    that with M1 it classifies the test digits again as the last epoch did."""
    (tmp_path / "analogies.png").write_bytes(b"an earlier run's picture")
    result = run_demo("semi_supervised", tmp_path, "--epochs", "3", "--vae-epochs", "3",
                      "--hidden", "16", "--z-dim", "4", "--vae-budget-minutes", "1e-6",
                      "--m1-units", "all", "--skip-m2", "--quiet")
    assert "m2_test_error" not in result and not (tmp_path / "m2").exists()
    metrics = json.loads((tmp_path / "vae" / "metrics.json").read_text())
    assert metrics["epoch"] == [1]
    assert result["m1m2_epochs"] == len(result["m1m2_curve"]) == 3
    assert_pictures(tmp_path, "test_error.png")
    assert not (tmp_path / "analogies.png").exists()
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["m1m2_curve"] == result["m1m2_curve"] and written["args"]["skip_m2"]
    confusion = np.array(written["m1m2_confusion"])  # true digit × predicted class, last epoch
    assert confusion.shape == (10, 10)
    assert np.trace(confusion) / confusion.sum() == pytest.approx(1 - result["m1m2_curve"][-1])
    semi = demo("semi_supervised")
    arrays, meta = load_checkpoint(tmp_path / "m1m2.npz")
    units = np.array(meta["m1_units"])
    m1m2 = GaussianSemiSupervisedVAE(len(units), hidden=tuple(meta["hidden"]),
                                     z_dim=meta["z_dim"], rng=np.random.default_rng(7))
    m1m2.load_state_dict(arrays)
    data = training_data(TrainConfig(model="m2", labels=100, seed=0))
    test_pixels = binarize_dynamic(data.test_pixels,
                                   np.random.default_rng(TEST_BINARIZATION_SEED))
    m1 = semi.load_m1(tmp_path / "vae" / "checkpoint.npz", test_pixels.shape[1])
    with no_grad():
        test_codes = m1.encode(test_pixels).loc.data[:, units]
    error = np.mean(m1m2.predict(test_codes) != data.test_labels)
    assert error == pytest.approx(result["m1m2_curve"][-1])


def test_demo_takes_m1_from_a_trained_checkpoint(tmp_path):
    """--m1-checkpoint: the VAE of one run is M1 of another, which trains none of its own and
    gets the same codes (the same k-means error and active units), also when --m1m2-lr trains
    M1+M2 differently; --m1m2-lr-schedule cosine lowers the rate epoch by epoch; a checkpoint
    of another model is refused by name."""
    tiny = ["--epochs", "1", "--vae-epochs", "1", "--hidden", "16", "--z-dim", "4",
            "--m1-units", "all", "--skip-m2", "--quiet"]
    first = run_demo("semi_supervised", tmp_path / "first", *tiny)
    m1 = tmp_path / "first" / "vae" / "checkpoint.npz"
    again = run_demo("semi_supervised", tmp_path / "again", *tiny, "--m1-checkpoint", str(m1))
    assert not (tmp_path / "again" / "vae").exists()
    assert again["kmeans_test_error"] == first["kmeans_test_error"]
    assert again["m1_units"] == first["m1_units"] == 4
    faster = run_demo("semi_supervised", tmp_path / "lr", *tiny, "--m1-checkpoint", str(m1),
                      "--m1m2-lr", "1e-2")  # the same codes, M1+M2 trained at another rate
    assert faster["kmeans_test_error"] == first["kmeans_test_error"]
    assert faster["m1m2_class_entropy"] != again["m1m2_class_entropy"]
    assert again["m1m2_learning_rate"] == [1e-3]  # the default: constant
    annealed = run_demo("semi_supervised", tmp_path / "cosine", *tiny, "--epochs", "3",
                        "--m1-checkpoint", str(m1), "--m1m2-lr-schedule", "cosine")
    rates = annealed["m1m2_learning_rate"]  # from 1e-3, falling each epoch, still above 0
    assert rates[0] == 1e-3 and rates[0] > rates[1] > rates[2] > 0
    with pytest.raises(ValueError, match="--m1m2-lr must be positive"):
        run_demo("semi_supervised", tmp_path / "bad", *tiny, "--m1m2-lr", "0")
    m2 = TrainConfig(model="m2", labels=10, epochs=1, hidden=(8,), z_dim=2, max_train=100,
                     max_test=50, out=str(tmp_path / "m2"))
    train(m2, progress=False)
    with pytest.raises(ValueError, match="--m1-checkpoint: .* holds a SemiSupervisedVAE"):
        run_demo("semi_supervised", tmp_path / "wrong", *tiny,
                 "--m1-checkpoint", str(tmp_path / "m2" / "checkpoint.npz"))

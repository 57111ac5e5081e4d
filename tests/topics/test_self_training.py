"""DEC/IDEC self-training: the Student's t soft assignments, the sharpened target, the loss and
its gradients against NumPy and SciPy, and what a few epochs of it do to clustered data."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit, rel_entr

from minivae.engine.gradcheck import gradcheck
from minivae.engine.tensor import Tensor
from minivae.models import VAE
from minivae.stopping import Budget
from minivae.topics.pretraining import autoencoder_loss
from minivae.topics.self_training import (
    codes_of,
    log_soft_assignments,
    refine,
    self_training_loss,
    target_distribution,
)


def numpy_q(z, centroids):
    kernel = 1.0 / (1.0 + ((z[:, None, :] - centroids[None]) ** 2).sum(-1))
    return kernel / kernel.sum(1, keepdims=True)


def test_soft_assignments_match_numpy():
    rng = np.random.default_rng(0)
    z, centroids = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(np.exp(log_soft_assignments(z, centroids).data),
                               numpy_q(z, centroids), rtol=1e-12)
    far = log_soft_assignments(z * 1e150, centroids).data  # squared distances overflow to inf
    assert not np.isnan(far).any()


@given(log_q=hnp.arrays(np.float64, st.tuples(st.integers(2, 20), st.integers(2, 6)),
                        elements=st.floats(-30, 0)))
def test_target_sharpens_and_balances(log_q):
    """p is a distribution per row; log p_ic − log p_ic' = 2 (log q_ic − log q_ic') −
    (log f_c − log f_c'), the defining ratio; with equal cluster sizes f_c the most likely
    cluster of each row gains probability (q_max² / Σ_c q_c² ≥ q_max since Σ q² ≤ q_max)."""
    log_q = log_q - np.logaddexp.reduce(log_q, axis=1, keepdims=True)
    log_p = target_distribution(log_q)
    np.testing.assert_allclose(np.exp(log_p).sum(1), 1.0, rtol=1e-12)
    log_f = np.log(np.exp(log_q).sum(0))
    np.testing.assert_allclose(log_p - log_p[:, :1],
                               2 * (log_q - log_q[:, :1]) - (log_f - log_f[0]), atol=1e-9)
    k = log_q.shape[1]  # every cyclic shift of the columns: each column sums to the same f
    balanced = np.concatenate([np.roll(log_q, shift, axis=1) for shift in range(k)])
    p, q = np.exp(target_distribution(balanced)), np.exp(balanced)
    rows, top = np.arange(len(q)), q.argmax(1)
    assert np.all(p[rows, top] >= q[rows, top] - 1e-12)


def tiny_model(dtype=np.float64, seed=0):
    return VAE(6, hidden=(5,), z_dim=2, rng=np.random.default_rng(seed), dtype=dtype)


def test_loss_is_reconstruction_plus_kl():
    rng = np.random.default_rng(1)
    model, x = tiny_model(), rng.random((5, 6))
    centroids = rng.normal(size=(3, 2))
    log_p = target_distribution(log_soft_assignments(codes_of(model, x), centroids).data)
    reconstruction, kl = self_training_loss(model, Tensor(centroids), x, log_p)
    np.testing.assert_allclose(reconstruction.data, autoencoder_loss(model, x).data)
    q = numpy_q(codes_of(model, x), centroids)
    np.testing.assert_allclose(kl.data, rel_entr(np.exp(log_p), q).sum(1), rtol=1e-10)
    # IDEC's reconstruction term: the squared error of the decoded means, beside the same KL
    squared, same_kl = self_training_loss(model, Tensor(centroids), x, log_p, loss="squared")
    logits = model.decoder(Tensor(codes_of(model, x))).data
    np.testing.assert_allclose(squared.data, ((expit(logits) - x) ** 2).sum(1), rtol=1e-10)
    np.testing.assert_allclose(same_kl.data, kl.data)


def test_self_training_gradients_pass_gradcheck():
    rng = np.random.default_rng(2)
    z, centroids = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    p = rng.dirichlet(np.ones(3), size=4)
    assert gradcheck(lambda z, c: (Tensor(p) * log_soft_assignments(z, c)).sum(), z, centroids)
    model, x = tiny_model(), rng.random((4, 6))
    log_p = np.log(rng.dirichlet(np.ones(3), size=4))

    def loss(c):
        reconstruction, kl = self_training_loss(model, c, x, log_p)
        return reconstruction + 10.0 * kl

    assert gradcheck(loss, rng.normal(size=(3, 2)))


def two_kinds_of_image(n, rng):
    """Grey images of two kinds (left half or right half lit), with noise."""
    kind = rng.integers(0, 2, n)
    x = np.where(kind[:, None] == 0, [0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    return np.clip(x + 0.05 * rng.normal(size=x.shape), 0, 1), kind


def test_refine_makes_the_assignments_surer():
    """Pulling q toward its sharpened target makes each image's cluster more certain."""
    rng = np.random.default_rng(3)
    x, kind = two_kinds_of_image(200, rng)
    model = tiny_model()
    centroids = np.stack([codes_of(model, x[kind == k]).mean(0) for k in (0, 1)])
    sure_before = np.exp(log_soft_assignments(codes_of(model, x), centroids).data).max(1).mean()
    result = refine(model, x, centroids, np.random.default_rng(0), epochs=20, batch_size=50,
                    lr=1e-2, weight=10.0, update_every=4, tolerance=0.0)
    log_q = log_soft_assignments(codes_of(model, x), result["centroids"]).data
    assert np.exp(log_q).max(1).mean() > sure_before + 0.05
    assert len(result["kl"]) == len(result["reconstruction"]) == len(result["changed"]) == 20


def test_refine_stops_when_few_change_and_at_its_budget():
    rng = np.random.default_rng(4)
    x, kind = two_kinds_of_image(100, rng)
    centroids = rng.normal(size=(2, 2))
    # tolerance 1: at the second epoch fewer than all change, so it stops there
    result = refine(tiny_model(), x, centroids, rng, epochs=10, batch_size=100, update_every=1,
                    tolerance=1.0)
    assert len(result["kl"]) == 2 and result["changed"][0] == 1.0
    spent = Budget(1e-9)
    result = refine(tiny_model(), x, centroids, rng, epochs=10, budget=spent, tolerance=0.0)
    assert len(result["kl"]) == 1
    seen = []
    refine(tiny_model(), x, centroids, rng, epochs=3, tolerance=0.0,
           on_epoch=lambda epoch, c: seen.append((epoch, c.shape)))
    assert seen == [(1, (2, 2)), (2, (2, 2)), (3, (2, 2))]


@pytest.mark.parametrize("loss", ["bernoulli", "squared"])
def test_refine_reconstructs_by_the_loss_it_is_given(loss):
    """At a rate too small to move any weight, the epoch's reported reconstruction is the
    named autoencoder loss of the starting model, averaged over the images."""
    rng = np.random.default_rng(5)
    x, _ = two_kinds_of_image(60, rng)
    model = tiny_model()
    expected = autoencoder_loss(model, x, loss).data.mean()
    result = refine(model, x, rng.normal(size=(2, 2)), rng, epochs=1, batch_size=20,
                    lr=1e-300, tolerance=0.0, loss=loss)
    np.testing.assert_allclose(result["reconstruction"][0], expected, rtol=1e-10)


@pytest.mark.parametrize("bad, message", [
    (dict(centroids=np.zeros((3, 5))), "centroids"),
    (dict(weight=0.0), "weight"),
    (dict(update_every=0), "update_every"),
    (dict(tolerance=2.0), "tolerance"),
    (dict(x=np.full((4, 6), 2.0)), "x"),
    (dict(loss="absolute"), "loss"),
])
def test_refine_refuses_bad_arguments(bad, message):
    arguments = dict(model=tiny_model(), x=np.full((4, 6), 0.5), centroids=np.zeros((3, 2)),
                     rng=np.random.default_rng(0))
    with pytest.raises((ValueError, TypeError), match=message):
        refine(**{**arguments, **bad})

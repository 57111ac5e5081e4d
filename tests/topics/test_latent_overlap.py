"""Overlap of classes in a latent space: k-NN accuracy and the Bhattacharyya coefficient."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from minivae.topics.latent_overlap import (
    bhattacharyya_coefficient,
    class_overlap,
    knn_accuracy,
)


def random_covariance(rng, d=2):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.3 * np.eye(d)


def test_knn_accuracy_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    reference, reference_labels = rng.normal(size=(60, 2)), rng.integers(0, 3, 60)
    queries, query_labels = rng.normal(size=(25, 2)), rng.integers(0, 3, 25)
    for k in (1, 5):
        correct = 0
        for point, label in zip(queries, query_labels):
            distances = [float(np.sum((point - r) ** 2)) for r in reference]
            order = sorted(range(60), key=lambda i: distances[i])[:k]
            counts = [sum(reference_labels[i] == c for i in order) for c in range(3)]
            correct += counts.index(max(counts)) == label
        assert knn_accuracy(reference, reference_labels, queries, query_labels, k) == correct / 25
    with pytest.raises(ValueError, match="k must be at most the 60 reference points"):
        knn_accuracy(reference, reference_labels, queries, query_labels, 61)


def test_bhattacharyya_coefficient_matches_quadrature():
    """BC = ∫ √(p q) on a fine 2-D grid, for random Gaussians; 1 for a Gaussian with itself."""
    rng = np.random.default_rng(1)
    grid = np.stack(np.meshgrid(np.linspace(-12, 12, 801), np.linspace(-12, 12, 801)), -1)
    cell = (24 / 800) ** 2
    for _ in range(3):
        mean_p, mean_q = rng.normal(0, 1.5, 2), rng.normal(0, 1.5, 2)
        cov_p, cov_q = random_covariance(rng), random_covariance(rng)
        p = stats.multivariate_normal(mean_p, cov_p).pdf(grid)
        q = stats.multivariate_normal(mean_q, cov_q).pdf(grid)
        expected = np.sqrt(p * q).sum() * cell
        assert bhattacharyya_coefficient(mean_p, cov_p, mean_q, cov_q) == pytest.approx(
            expected, rel=1e-6)
    assert bhattacharyya_coefficient(mean_p, cov_p, mean_p, cov_p) == pytest.approx(1.0)


def test_bhattacharyya_coefficient_is_affine_invariant():
    rng = np.random.default_rng(2)
    mean_p, mean_q = rng.normal(size=3), rng.normal(size=3)
    cov_p, cov_q = random_covariance(rng, 3), random_covariance(rng, 3)
    a, b = 100.0 * rng.normal(size=(3, 3)), rng.normal(size=3)
    moved = bhattacharyya_coefficient(a @ mean_p + b, a @ cov_p @ a.T, a @ mean_q + b,
                                      a @ cov_q @ a.T)
    assert moved == pytest.approx(bhattacharyya_coefficient(mean_p, cov_p, mean_q, cov_q),
                                  rel=1e-8)


def test_class_overlap_falls_as_classes_separate():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 400)
    noise = rng.standard_normal((1200, 2))
    centres = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    overlaps = [class_overlap(noise + spread * centres[labels], labels)
                for spread in (0.0, 1.0, 3.0, 10.0)]
    assert overlaps[0] > 0.99 and overlaps[-1] < 1e-3
    assert all(a > b for a, b in zip(overlaps, overlaps[1:]))
    with pytest.raises(ValueError, match="labels must be at least two classes"):
        class_overlap(noise, np.zeros(1200, int))

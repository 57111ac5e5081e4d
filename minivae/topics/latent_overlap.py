"""How much the classes overlap in a latent space: two numbers for codes z with known labels.

* ``knn_accuracy``: label each query code by a majority vote of its k nearest reference codes
  (Euclidean); the fraction right.  Near the chance level when classes overlap, near 1 when
  they sit apart — but it only asks for local separation, not one cluster per class.
* ``bhattacharyya_coefficient`` between two Gaussians,
      BC(p, q) = ∫ √(p(z) q(z)) dz = exp(−D_B),
      D_B = ⅛ (μ_p − μ_q)ᵀ Σ⁻¹ (μ_p − μ_q) + ½ log(det Σ / √(det Σ_p det Σ_q)),  Σ = (Σ_p + Σ_q)/2,
  1 for equal Gaussians, → 0 as they separate; unchanged when one invertible affine map is
  applied to both (so a latent space's scale does not matter).
* ``class_overlap``: the mean BC over pairs of classes of the Gaussians fitted to each class's
  codes (mean and covariance): how much the classes, seen as Gaussian blobs, cover each other.

Verified by: tests/topics/test_latent_overlap.py
"""
from __future__ import annotations

import itertools

import numpy as np

from minivae import checks


def knn_accuracy(reference, reference_labels, queries, query_labels, k: int = 5) -> float:
    """Fraction of queries whose k nearest reference points (Euclidean; ties in the vote go to
    the smallest label) carry the query's label.

    Verified by: tests/topics/test_latent_overlap.py::test_knn_accuracy_matches_a_plain_loop
    """
    k = checks.positive_int(k, "k")
    reference, queries = np.asarray(reference, float), np.asarray(queries, float)
    reference_labels, query_labels = np.asarray(reference_labels), np.asarray(query_labels)
    checks.require(k <= len(reference), "k", f"at most the {len(reference)} reference points", k)
    correct = 0
    for start in range(0, len(queries), 1000):  # distances a block of queries at a time
        block = queries[start:start + 1000]
        squared = ((block[:, None, :] - reference[None]) ** 2).sum(-1)
        nearest = np.argsort(squared, axis=1, kind="stable")[:, :k]
        votes = reference_labels[nearest]
        predicted = np.array([np.bincount(row).argmax() for row in votes])
        correct += int((predicted == query_labels[start:start + 1000]).sum())
    return correct / len(queries)


def bhattacharyya_coefficient(mean_p, cov_p, mean_q, cov_q) -> float:
    """BC = exp(−D_B), D_B = ⅛ Δᵀ Σ⁻¹ Δ + ½ [log det Σ − ½ (log det Σ_p + log det Σ_q)],
    Δ = μ_p − μ_q, Σ = (Σ_p + Σ_q)/2; log-determinants and the solve through Cholesky factors.

    Verified by:
    tests/topics/test_latent_overlap.py::test_bhattacharyya_coefficient_matches_quadrature,
    ::test_bhattacharyya_coefficient_is_affine_invariant
    """
    mean_p, mean_q = np.asarray(mean_p, float), np.asarray(mean_q, float)
    cov_p, cov_q = np.asarray(cov_p, float), np.asarray(cov_q, float)

    def log_det(cov):
        return 2.0 * np.log(np.diag(np.linalg.cholesky(cov))).sum()

    average = 0.5 * (cov_p + cov_q)
    factor = np.linalg.cholesky(average)
    whitened = np.linalg.solve(factor, mean_p - mean_q)  # L⁻¹Δ, so Δᵀ Σ⁻¹ Δ = ‖L⁻¹Δ‖²
    distance = (whitened @ whitened / 8.0
                + 0.5 * (log_det(average) - 0.5 * (log_det(cov_p) + log_det(cov_q))))
    return float(np.exp(-distance))


def class_overlap(codes, labels) -> float:
    """Mean over pairs of classes a < b of BC(N(m_a, S_a), N(m_b, S_b)), with m, S the mean and
    covariance of each class's codes (each class needs more codes than dimensions).

    Verified by: tests/topics/test_latent_overlap.py::test_class_overlap_falls_as_classes_separate
    """
    codes, labels = np.asarray(codes, float), np.asarray(labels)
    classes = np.unique(labels)
    checks.require(len(classes) >= 2, "labels", "at least two classes", classes)
    fitted = {c: (codes[labels == c].mean(0), np.atleast_2d(np.cov(codes[labels == c].T)))
              for c in classes}
    return float(np.mean([bhattacharyya_coefficient(*fitted[a], *fitted[b])
                          for a, b in itertools.combinations(classes, 2)]))

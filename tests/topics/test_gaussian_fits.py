"""One Gaussian and a Gaussian mixture by maximum likelihood: the MLE against numpy, the
log-likelihoods against scipy, EM against scikit-learn from the same start, AIC/BIC by hand,
and clustering accuracy against a hand-built permutation and scipy's assignment."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import optimize, stats

from minivae.topics.clustering import clustering_accuracy, confusion_matrix
from minivae.topics.gaussian_fits import (
    GaussianMixtureFit,
    fit_gaussian,
    fit_gaussian_mixture,
    gaussian_log_likelihood,
    information_criteria,
    maximization_step,
    parameter_count,
    run_em,
)
from tests.helpers import mixture_data


def test_single_gaussian_is_the_mle():
    """μ̂ = numpy's mean; Σ̂ = np.cov(bias=True) (divided by N), which is np.cov's default
    (divided by N − 1) times (N − 1)/N; and no other covariance gives a higher likelihood."""
    points = np.random.default_rng(0).normal(size=(40, 3)) @ np.array(
        [[1, 0.5, 0], [0, 1, 0.3], [0, 0, 0.5]])
    mean, covariance = fit_gaussian(points)
    np.testing.assert_allclose(mean, points.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(covariance, np.cov(points.T, bias=True), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(points.T) * 39 / 40, rtol=1e-12)
    best = gaussian_log_likelihood(points, mean, covariance).sum()
    for scale in (0.97, 1.03):  # the unbiased one, 40/39 larger, is among the worse
        assert gaussian_log_likelihood(points, mean, scale * covariance).sum() < best
    assert gaussian_log_likelihood(points, mean, np.cov(points.T)).sum() < best


def test_log_likelihoods_match_scipy():
    points, *_ = mixture_data(50, seed=2)
    mean, covariance = fit_gaussian(points)
    np.testing.assert_allclose(gaussian_log_likelihood(points, mean, covariance),
                               stats.multivariate_normal(mean, covariance).logpdf(points),
                               rtol=1e-12)
    fit = GaussianMixtureFit(np.array([0.3, 0.7]), np.array([[0.0, 1.0], [2.0, -1.0]]),
                             np.array([[[1.0, 0.3], [0.3, 2.0]], [[0.5, 0.0], [0.0, 0.2]]]))
    mixture = np.log(sum(w * stats.multivariate_normal(m, c).pdf(points) for w, m, c in
                         zip(fit.weights, fit.means, fit.covariances)))
    np.testing.assert_allclose(fit.log_likelihood(points), mixture, rtol=1e-12)


def test_information_criteria():
    assert parameter_count(4, 1) == 14 and parameter_count(4, 3) == 44  # Iris: d = 4
    aic, bic = information_criteria(-100.0, 14, 150)
    assert aic == pytest.approx(2 * 14 + 200.0) and bic == pytest.approx(14 * np.log(150) + 200)


def test_em_never_lowers_the_likelihood():
    points, *_ = mixture_data(600, seed=1)
    fit = fit_gaussian_mixture(points, 3, np.random.default_rng(0), n_init=2)
    assert np.all(np.diff(fit.log_likelihoods) >= -1e-12)
    np.testing.assert_allclose(fit.log_likelihoods[-1], fit.log_likelihood(points).mean(),
                               rtol=1e-12)


def test_em_matches_scikit_learn():
    """From the same start and for the same number of steps scikit-learn's EM lands on the
    same weights, means, covariances and responsibilities."""
    from sklearn.mixture import GaussianMixture

    points, *_ = mixture_data(500, seed=3)
    ridge, steps = 1e-6, 25
    start = maximization_step(points, np.eye(3)[np.random.default_rng(1).integers(3, size=500)],
                              ridge)
    ours = run_em(points, start, steps + 1, tolerance=-np.inf, ridge=ridge)
    theirs = GaussianMixture(3, covariance_type="full", reg_covar=ridge, tol=0, max_iter=steps,
                             weights_init=start.weights, means_init=start.means,
                             precisions_init=np.linalg.inv(start.covariances))
    with pytest.warns(Warning):  # tol = 0 is never met: it runs exactly `steps`
        theirs.fit(points)
    np.testing.assert_allclose(ours.weights, theirs.weights_, rtol=1e-7)
    np.testing.assert_allclose(ours.means, theirs.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.covariances, theirs.covariances_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.responsibilities(points), theirs.predict_proba(points),
                               atol=1e-7)


def test_ancestral_samples_have_the_moments():
    fit = GaussianMixtureFit(np.array([0.25, 0.75]), np.array([[0.0, 0.0], [4.0, 1.0]]),
                             np.array([[[1.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 2.0]]]))
    x, c = fit.sample(40_000, np.random.default_rng(0))
    assert abs((c == 1).mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 40_000)
    for k in (0, 1):
        np.testing.assert_allclose(x[c == k].mean(axis=0), fit.means[k], atol=0.05)
        np.testing.assert_allclose(np.cov(x[c == k].T), fit.covariances[k], atol=0.06)


def test_accuracy_and_confusion_of_a_known_permutation():
    """Clusters are the labels renamed by 0→2, 1→0, 2→1 with two points moved: accuracy
    (N − 2)/N, the confusion matrix has those two off the diagonal, and scipy's assignment
    and brute force over the 3! maps agree."""
    labels = np.repeat([0, 1, 2], [5, 6, 4])
    clusters = np.array([2, 0, 1])[labels]
    clusters[0], clusters[7] = 0, 1  # a label-0 point put with the 1s, a label-1 point with the 2s
    assert clustering_accuracy(labels, clusters) == pytest.approx(13 / 15)
    counts, ids = confusion_matrix(labels, clusters)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    np.testing.assert_array_equal(counts, [[4, 1, 0], [0, 5, 1], [0, 0, 4]])
    table = np.zeros((3, 3))
    np.add.at(table, (clusters, labels), 1)
    rows, cols = optimize.linear_sum_assignment(-table)
    assert table[rows, cols].sum() / len(labels) == pytest.approx(13 / 15)
    brute = max(sum(table[k, p[k]] for k in range(3)) for p in itertools.permutations(range(3)))
    assert brute / len(labels) == pytest.approx(13 / 15)


def test_iris_demo_reports_what_scipy_computes(tmp_path):
    from tests.helpers import assert_pictures, run_demo

    result = run_demo("iris_mixture", tmp_path, "--restarts", "2")
    train, test = result["train"], result["test"]
    mean, covariance = np.mean(train, axis=0), np.cov(train.T, bias=True)
    for part, points in (("train", train), ("test", test)):
        expected = stats.multivariate_normal(mean, covariance).logpdf(points).mean()
        assert result["rows"]["one Gaussian"][part] == pytest.approx(expected, rel=1e-12)
    labels, clusters = result["labels"], result["clusters"]
    table = np.zeros((clusters.max() + 1, labels.max() + 1))
    np.add.at(table, (clusters, labels), 1)
    rows, cols = optimize.linear_sum_assignment(-table)
    assert result["accuracy"] == pytest.approx(table[rows, cols].sum() / len(labels))
    assert np.trace(result["confusion"]) == round(result["accuracy"] * len(labels))
    # the mixture explains held-out flowers better than one Gaussian does
    assert result["rows"]["mixture, K = 3"]["test"] > result["rows"]["one Gaussian"]["test"]
    assert_pictures(tmp_path, "iris_mixture.png")

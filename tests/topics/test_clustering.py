"""Clustering: the Hungarian matching (linear_assignment), clustering accuracy under
relabeling, and the diagonal Gaussian mixture fitted by EM (with k-means++ restarts); the
fuzz contract on each."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.optimize import linear_sum_assignment

from minivae.topics.clustering import (
    clustering_accuracy,
    distinct_gmm_fits,
    fit_diagonal_gmm,
    linear_assignment,
    match_clusters_to_labels,
)
from tests.fuzzing import COUNTS, anything, arrays, check_contract, floats
from tests.helpers import mixture_data

# -- matching clusters to labels ---------------------------------------------------------------

cost_matrices = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1),
                          st.booleans()).map(
    lambda a: (np.random.default_rng(a[2]).integers(0, 4, a[:2]).astype(float) if a[3]  # ties
               else np.random.default_rng(a[2]).normal(0, 10, a[:2])))


def check_matching(cost, rows, cols):
    n, m = cost.shape
    assert len(rows) == len(cols) == min(n, m)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert np.all(np.diff(rows) > 0) and rows.max() < n and cols.max() < m


@given(cost_matrices)
@settings(max_examples=150)
def test_linear_assignment_matches_scipy(cost):
    rows, cols = linear_assignment(cost)
    check_matching(cost, rows, cols)
    reference_rows, reference_cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[reference_rows, reference_cols].sum(),
                                                   rel=1e-12, abs=1e-9)


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_linear_assignment_is_optimal_by_enumeration(n, seed):
    cost = np.random.default_rng(seed).integers(-5, 20, (n, n + 1)).astype(float)
    best = min(sum(cost[i, p[i]] for i in range(n))
               for p in itertools.permutations(range(n + 1), n))
    rows, cols = linear_assignment(cost)
    check_matching(cost, rows, cols)
    assert cost[rows, cols].sum() == best
    rows_t, cols_t = linear_assignment(cost.T)  # more rows than columns: solved transposed
    check_matching(cost.T, rows_t, cols_t)
    assert cost.T[rows_t, cols_t].sum() == best


def test_linear_assignment_is_fast_for_hundreds_of_rows():
    cost = np.random.default_rng(0).random((150, 160))
    rows, cols = linear_assignment(cost)
    reference_rows, reference_cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[reference_rows, reference_cols].sum(),
                                                   rel=1e-12)


@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
@settings(max_examples=40)
def test_accuracy_is_one_under_any_relabeling(k, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, 300)
    names = rng.choice(1000, k, replace=False)  # arbitrary cluster ids, in a random order
    clusters = names[labels]
    assert clustering_accuracy(labels, clusters) == 1.0
    mapping = match_clusters_to_labels(labels, clusters)
    assert all(mapping[int(names[label])] == label for label in np.unique(labels))


@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=60)
def test_accuracy_matches_brute_force_over_permutations(n_labels, n_clusters, seed):
    rng = np.random.default_rng(seed)
    labels, clusters = rng.integers(0, n_labels, 60), rng.integers(0, n_clusters, 60)
    label_ids, cluster_ids = np.unique(labels), np.unique(clusters)
    best = 0
    size = min(len(label_ids), len(cluster_ids))
    for chosen in itertools.permutations(label_ids, size):
        for kept in itertools.combinations(cluster_ids, size):
            agreements = sum(np.sum((clusters == c) & (labels == a)) for c, a in zip(kept, chosen))
            best = max(best, agreements)
    assert clustering_accuracy(labels, clusters) == pytest.approx(best / 60, abs=1e-15)


def test_accuracy_rejects_bad_arrays():
    with pytest.raises(ValueError, match="labels and clusters must have the same length"):
        clustering_accuracy(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match="clusters must be a non-empty 1-D array of integers"):
        clustering_accuracy(np.arange(3), np.zeros(3))
    with pytest.raises(ValueError, match="cost must be finite"):
        linear_assignment(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match="cost must be a 2-D matrix"):
        linear_assignment(np.zeros(3))


# -- the diagonal Gaussian mixture -------------------------------------------------------------


def test_gmm_em_never_lowers_the_likelihood():
    points, _, _, _, _ = mixture_data()
    points = np.concatenate([points, points[:5] + 40.0])  # a far-off group, too
    gmm = fit_diagonal_gmm(points, 5, np.random.default_rng(1), kmeans_steps=0, tolerance=0.0,
                           iterations=60)
    assert np.all(np.diff(gmm.log_likelihoods) >= -1e-10)
    log_r, log_px = gmm.log_responsibilities(points)
    assert float(log_px.mean()) == pytest.approx(gmm.log_likelihoods[-1], abs=1e-12)
    np.testing.assert_allclose(special.logsumexp(log_r, axis=1), 0.0, atol=1e-12)
    mixture = sum(w * stats.multivariate_normal(m, np.diag(v)).pdf(points)
                  for w, m, v in zip(gmm.weights, gmm.means, gmm.variances))
    np.testing.assert_allclose(log_px, np.log(mixture), rtol=1e-10)


def test_gmm_restarts_keep_the_most_likely_fit():
    points, _, _, _, _ = mixture_data(800, seed=3)
    one = fit_diagonal_gmm(points, 6, np.random.default_rng(5))
    best = fit_diagonal_gmm(points, 6, np.random.default_rng(5), n_init=4)  # first run = `one`
    assert best.log_likelihoods[-1] >= one.log_likelihoods[-1]
    for bad in ({"n_init": 0}, {"n_components": 0}, {"n_components": 801}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_diagonal_gmm(points, **{"n_components": 3, **bad}, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        fit_diagonal_gmm(points, 3, rng=0)


def test_gmm_restarts_return_the_most_likely_of_the_runs():
    """n_init runs draw their seeds one after another from rng, so single runs from one shared
    generator are those runs: the fit returned is the one of highest likelihood among them
    (only the points decide, as no labels are passed)."""
    points, _, _, _, _ = mixture_data(800, seed=3)
    shared = np.random.default_rng(7)
    runs = [fit_diagonal_gmm(points, 6, shared) for _ in range(5)]
    finals = [run.log_likelihoods[-1] for run in runs]
    assert max(finals) - min(finals) > 1e-3  # the starts differ, so the choice matters
    best = fit_diagonal_gmm(points, 6, np.random.default_rng(7), n_init=5)
    assert best.log_likelihoods[-1] == max(finals)
    np.testing.assert_array_equal(best.means, runs[int(np.argmax(finals))].means)


def test_distinct_fits_begin_with_the_most_likely():
    """The runs are fit_diagonal_gmm's (the same draws): the first kept is the fit it returns,
    the rest follow in falling likelihood; one asked for is that fit alone."""
    points, _, _, _, _ = mixture_data(800, seed=3)
    best = fit_diagonal_gmm(points, 6, np.random.default_rng(7), n_init=8)
    fits = distinct_gmm_fits(points, 6, np.random.default_rng(7), count=4, n_init=8)
    assert len(fits) >= 2  # six components for three clusters: the runs split them apart
    np.testing.assert_array_equal(fits[0].means, best.means)
    finals = [fit.log_likelihoods[-1] for fit in fits]
    assert finals == sorted(finals, reverse=True)
    (one,) = distinct_gmm_fits(points, 6, np.random.default_rng(7), count=1, n_init=8)
    np.testing.assert_array_equal(one.means, best.means)
    for bad in ({"count": 0}, {"agreement": 1.5}, {"n_init": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            distinct_gmm_fits(points, 3, np.random.default_rng(0), **{"count": 2, **bad})


def test_distinct_fits_split_the_points_differently():
    """No two fits kept agree on more than ``agreement`` of the points (under the best matching
    of their components); runs that all find the same three separated clusters count once."""
    points, _, _, _, _ = mixture_data(800, seed=3)
    fits = distinct_gmm_fits(points, 6, np.random.default_rng(7), count=8, n_init=8,
                             agreement=0.9)
    partitions = [fit.log_responsibilities(points)[0].argmax(axis=1) for fit in fits]
    for a, b in itertools.combinations(partitions, 2):
        assert clustering_accuracy(a, b) <= 0.9
    # agreement 1: every run is kept, alike or not
    assert len(distinct_gmm_fits(points, 6, np.random.default_rng(7), count=3, n_init=3,
                                 agreement=1.0)) == 3
    centres = np.array([[0.0, 0.0], [40.0, 0.0], [0.0, 40.0]])  # 40 standard deviations apart
    separated = np.repeat(centres, 100, axis=0) + np.random.default_rng(1).normal(size=(300, 2))
    same = distinct_gmm_fits(separated, 3, np.random.default_rng(0), count=3, n_init=5)
    assert len(same) == 1


def test_gmm_fit_recovers_separated_components():
    from sklearn.mixture import GaussianMixture

    points, c, weights, means, stds = mixture_data()
    gmm = fit_diagonal_gmm(points, 3, np.random.default_rng(0))
    order = [match_clusters_to_labels(c, gmm.log_responsibilities(points)[0].argmax(1))[k]
             for k in range(3)]  # component k of the fit models true component order[k]
    n = len(points)
    np.testing.assert_allclose(gmm.weights, weights[order], atol=5 * np.sqrt(0.25 / n))
    np.testing.assert_allclose(gmm.means, means[order], atol=5 * stds.max() / np.sqrt(0.2 * n))
    np.testing.assert_allclose(np.sqrt(gmm.variances), stds[order], rtol=0.1)
    reference = GaussianMixture(3, covariance_type="diag", reg_covar=0.0, tol=1e-10,
                                random_state=0).fit(points)
    matched = [int(np.argmin(((reference.means_ - mu) ** 2).sum(1))) for mu in gmm.means]
    np.testing.assert_allclose(gmm.means, reference.means_[matched], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gmm.variances, reference.covariances_[matched], rtol=1e-4)
    np.testing.assert_allclose(gmm.weights, reference.weights_[matched], rtol=1e-5)


# -- the fuzz contract -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(cost=st.one_of(arrays(min_dims=2, max_dims=2), anything()),
       labels=st.one_of(st.lists(st.integers(0, 3), min_size=0, max_size=6).map(np.array),
                        arrays(), anything()))
def test_linear_assignment_and_accuracy(cost, labels):
    check_contract("linear_assignment", linear_assignment, cost)
    clusters = np.arange(len(labels)) if np.ndim(labels) == 1 else labels
    check_contract("clustering_accuracy", clustering_accuracy, labels, clusters)


@settings(max_examples=50, deadline=None)
@given(points=st.one_of(arrays(np.float64, shape=st.integers(0, 6).map(lambda n: (n, 2))),
                        arrays(), anything()),
       n_components=COUNTS, iterations=COUNTS, tolerance=floats(), floor=floats())
def test_diagonal_gmm_em(points, n_components, iterations, tolerance, floor):
    def fit():
        gmm = fit_diagonal_gmm(points, n_components, np.random.default_rng(0),
                               iterations=iterations, tolerance=tolerance, variance_floor=floor)
        return gmm.weights, gmm.means, gmm.variances, gmm.log_likelihoods
    check_contract("fit_diagonal_gmm", fit)

    def distinct():
        fits = distinct_gmm_fits(points, n_components, np.random.default_rng(0), count=2,
                                 n_init=2, iterations=iterations, tolerance=tolerance,
                                 variance_floor=floor)
        return [(gmm.weights, gmm.means, gmm.variances, gmm.log_likelihoods) for gmm in fits]
    check_contract("distinct_gmm_fits", distinct)


def test_diagonal_gmm_names_the_variance_floor_and_data_too_large():
    with pytest.raises(ValueError, match="variance_floor"):
        fit_diagonal_gmm(np.zeros((4, 2)), 2, np.random.default_rng(0), variance_floor=0.0)
    with pytest.raises(ValueError, match="too large"):
        fit_diagonal_gmm(np.array([[1e300, 0.0], [-1e300, 0.0]]), 2, np.random.default_rng(0))


def test_valid_clustering_gives_finite_values():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-3, 1, (20, 2)), rng.normal(3, 1, (20, 2))])
    gmm = fit_diagonal_gmm(X, 2, rng)
    assert np.all(np.isfinite(gmm.variances)) and np.isfinite(gmm.log_likelihoods[-1])
    labels = np.repeat([0, 1], 20)
    assert clustering_accuracy(labels, 1 - labels) == 1.0

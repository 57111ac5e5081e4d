"""Clustering tools in NumPy: optimal assignment, clustering accuracy, a diagonal-GMM fit by EM.

* ``linear_assignment(cost)``: the one-to-one matching of rows to columns of least total cost
  (the Hungarian method, as shortest augmenting paths with dual potentials, O(n² m)).
* ``clustering_accuracy(labels, clusters)``: the fraction of points whose cluster, under the
  best one-to-one matching of clusters to labels, names their label.  Cluster numbers are
  arbitrary, so accuracy is only meaningful after this matching.
* ``kmeans_plus_plus(points, k, rng, trials)``: seeds for k clusters by D² sampling, plain or
  greedy (the CAVI mixtures in minivae.cavi start from it too).
* ``fit_diagonal_gmm(points, n_components, rng)``: maximum likelihood for a mixture of
  Gaussians with diagonal covariances, by k-means++ seeding, a few k-means steps, then EM.

Verified by: tests/topics/test_clustering.py
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minivae import checks

LOG_2PI = math.log(2.0 * math.pi)


def linear_assignment(cost) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) minimizing Σ_k cost[rows_k, cols_k] over one-to-one matchings that use
    min(n, m) pairs of an (n, m) matrix; rows come out sorted.

    Math (the primal–dual view of the Hungarian method): keep potentials u (rows), v (columns)
    with u_i + v_j ≤ c_ij everywhere and = on matched pairs, so the reduced costs
    c̄_ij = c_ij − u_i − v_j are ≥ 0.  Each unmatched row r is added by Dijkstra's shortest path
    in c̄ from r to the nearest free column, alternating "row → any column" and "column → the
    row it is matched to" (a matched pair has c̄ = 0).  Flipping that path grows the matching by
    one; shifting the potentials by the path distances D (u_i ← u_i + δ − D_i and
    v_j ← v_j − (δ − D_j) for the reached rows and columns, δ the distance to the free column)
    keeps c̄ ≥ 0 and makes every edge of the new matching tight.  When all rows are matched,
    Σ c = Σ u + Σ v is the dual bound, so the matching is optimal.  n rounds of an O(n m)
    Dijkstra: O(n² m).  A matrix with more rows than columns is solved transposed.
    Verified by: tests/topics/test_clustering.py::test_linear_assignment_matches_scipy,
    ::test_linear_assignment_is_optimal_by_enumeration
    """
    cost = _check_cost(cost)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = linear_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    n, m = cost.shape
    u, v = np.zeros(n), np.zeros(m)
    row_of_col = np.full(m, -1)
    col_of_row = np.full(n, -1)
    for root in range(n):
        dist = np.full(m, np.inf)
        came_from = np.full(m, -1)  # the row from which each column was best reached
        scanned = np.zeros(m, dtype=bool)
        row, row_dist = root, 0.0
        while True:
            through_row = row_dist + cost[row] - u[row] - v  # c̄ ≥ 0 along the edge row → j
            better = ~scanned & (through_row < dist)
            dist[better], came_from[better] = through_row[better], row
            col = int(np.argmin(np.where(scanned, np.inf, dist)))
            scanned[col], row_dist = True, dist[col]
            if row_of_col[col] < 0:
                break  # a free column: the shortest augmenting path ends here
            row = row_of_col[col]  # follow the matched pair at zero reduced cost
        shortest = row_dist
        reached = scanned.copy()
        reached[col] = False  # the free column ends the path; its shift is 0 anyway
        u[root] += shortest
        u[row_of_col[reached]] += shortest - dist[reached]
        v[reached] -= shortest - dist[reached]
        while True:  # flip the path: each row on it takes the column it was reached through
            row = came_from[col]
            row_of_col[col], previous = row, col_of_row[row]
            col_of_row[row] = col
            if row == root:
                break
            col = previous
    return np.arange(n), col_of_row.copy()


def _check_cost(cost) -> np.ndarray:
    """``cost`` as a finite float64 (n, m) matrix (a TypeError for what is not real numbers)."""
    cost = np.asarray(cost)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {cost.shape}")
    if not np.issubdtype(cost.dtype, np.number) or np.iscomplexobj(cost):
        raise TypeError(f"cost must hold real numbers, got dtype {cost.dtype}")
    cost = cost.astype(np.float64)
    if not np.all(np.isfinite(cost)):
        raise ValueError("cost must be finite (every row–column pair must be allowed)")
    return cost


def match_clusters_to_labels(labels, clusters) -> dict[int, int]:
    """The one-to-one map cluster → label that maximizes the number of agreeing points:
    maximize Σ_k N[cluster_k, label_k] over matchings of the contingency table N.

    Clusters left without a label (more clusters than labels) are absent from the map.
    Verified by: tests/topics/test_clustering.py::test_accuracy_is_one_under_any_relabeling
    """
    labels, clusters = _check_label_arrays(labels, clusters)
    cluster_ids, cluster_index = np.unique(clusters, return_inverse=True)
    label_ids, label_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(cluster_ids), len(label_ids)), dtype=np.int64)
    np.add.at(counts, (cluster_index, label_index), 1)
    rows, cols = linear_assignment(-counts)  # most agreements = least negated count
    return {int(cluster_ids[r]): int(label_ids[c]) for r, c in zip(rows, cols)}


def clustering_accuracy(labels, clusters) -> float:
    """ACC = max over one-to-one maps m of (1/N) Σ_i [labels_i = m(clusters_i)].

    Verified by: tests/topics/test_clustering.py::test_accuracy_is_one_under_any_relabeling,
    ::test_accuracy_matches_brute_force_over_permutations
    """
    labels, clusters = _check_label_arrays(labels, clusters)
    mapping = match_clusters_to_labels(labels, clusters)
    predicted = np.array([mapping.get(int(c), -1) for c in clusters.tolist()])
    hits = (predicted == labels) & np.isin(clusters, list(mapping))
    return float(hits.mean())


def confusion_matrix(labels, clusters) -> tuple[np.ndarray, np.ndarray]:
    """(C, label_ids): C[i, j] = #points of label i whose cluster is matched to label j
    (the matching of ``match_clusters_to_labels``; a column past the labels counts the
    clusters left unmatched).  trace(C)/N is ``clustering_accuracy``.

    Verified by:
    tests/topics/test_gaussian_fits.py::test_accuracy_and_confusion_of_a_known_permutation
    """
    labels, clusters = _check_label_arrays(labels, clusters)
    label_ids, row = np.unique(labels, return_inverse=True)
    mapping = match_clusters_to_labels(labels, clusters)
    column = np.array([np.searchsorted(label_ids, mapping[c]) if c in mapping else len(label_ids)
                       for c in clusters.tolist()])
    counts = np.zeros((len(label_ids), len(label_ids) + 1), dtype=np.int64)
    np.add.at(counts, (row, column), 1)
    return (counts if counts[:, -1].any() else counts[:, :-1]), label_ids


def _check_label_arrays(labels, clusters) -> tuple[np.ndarray, np.ndarray]:
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    for name, value in (("labels", labels), ("clusters", clusters)):
        if value.ndim != 1 or value.size == 0 or not np.issubdtype(value.dtype, np.integer):
            raise ValueError(f"{name} must be a non-empty 1-D array of integers, got "
                             f"dtype {value.dtype} and shape {value.shape}")
    if labels.shape != clusters.shape:
        raise ValueError(f"labels and clusters must have the same length, got "
                         f"{len(labels)} and {len(clusters)}")
    return labels, clusters


@dataclass
class DiagonalGMM:
    """A fitted mixture Σ_c π_c N(μ_c, diag σ_c²): weights (K,), means and variances (K, d);
    ``log_likelihoods`` holds the mean log-likelihood per point after each EM iteration."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    log_likelihoods: list

    def log_responsibilities(self, points) -> tuple[np.ndarray, np.ndarray]:
        """log r_ic = log π_c + log N(x_i; μ_c, σ_c²) − log p(x_i), and log p(x_i).

        Verified by: tests/topics/test_clustering.py::test_gmm_em_never_lowers_the_likelihood
        """
        points = np.asarray(points, dtype=np.float64)
        # one component at a time: (N, d) temporaries instead of one (N, K, d) array
        squares = np.stack([(((points - mu) ** 2) / var).sum(axis=1)
                            for mu, var in zip(self.means, self.variances)], axis=1)
        joint = np.log(self.weights) - 0.5 * (np.log(self.variances).sum(axis=1)
                                              + points.shape[1] * LOG_2PI + squares)
        peak = joint.max(axis=1, keepdims=True)
        log_px = peak[:, 0] + np.log(np.exp(joint - peak).sum(axis=1))
        return joint - log_px[:, None], log_px


def kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator, trials: int = 1
                     ) -> np.ndarray:
    """The row indices (k,) of k seeds drawn by D² sampling (Arthur & Vassilvitskii 2007): the
    first uniformly, each next one with probability ∝ its squared distance to the nearest seed
    chosen so far.

    Greedy k-means++ (``trials`` > 1) draws that many candidates at each step and keeps the one
    that leaves the least total squared distance to the nearest seed, which makes two seeds in
    one cluster unlikely even when the clusters are few and far apart.

    Verified by: tests/topics/test_clustering.py::test_gmm_fit_recovers_separated_components,
    tests/cavi/test_bayesian_gmm.py::test_recovers_well_separated_means,
    tests/cavi/test_poisson_gaussian.py::test_fit_recovers_separated_components
    """
    points, rng = _check_points(points), checks.generator(rng)
    k, trials = checks.integer(k, "k", 1), checks.integer(trials, "trials", 1)
    seeds = [int(rng.integers(len(points)))]
    nearest = ((points - points[seeds[0]]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        total = nearest.sum()
        candidates = (rng.choice(len(points), size=trials, p=nearest / total) if total > 0
                      else rng.integers(len(points), size=1))  # every point is a seed already
        after = np.minimum(nearest, ((points[candidates][:, None, :] - points) ** 2).sum(axis=2))
        best = int(np.argmin(after.sum(axis=1)))
        seeds.append(int(candidates[best]))
        nearest = after[best]
    return np.array(seeds)


def fit_diagonal_gmm(points, n_components: int, rng: np.random.Generator,
                     iterations: int = 200, kmeans_steps: int = 10, tolerance: float = 1e-6,
                     variance_floor: float = 1e-6, n_init: int = 1) -> DiagonalGMM:
    """Maximum-likelihood diagonal GMM by EM, started from k-means++ seeds and k-means steps.

    E step: r_ic = p(c | x_i) (``log_responsibilities``).  M step, with N_c = Σ_i r_ic:
        π_c = N_c / N,   μ_c = Σ_i r_ic x_i / N_c,
        σ²_cj = max(floor, Σ_i r_ic (x_ij − μ_cj)² / N_c).
    The floor makes this constrained maximum likelihood (the likelihood in σ² alone peaks at the
    weighted variance, so clipping there is the constrained M step): EM still never lowers the
    log-likelihood, and no component collapses onto one point.  Each run stops when the mean
    log-likelihood gains less than ``tolerance``; of ``n_init`` runs from different seeds the
    one of highest likelihood is returned (EM finds a local maximum only).
    Verified by: tests/topics/test_clustering.py::test_gmm_em_never_lowers_the_likelihood,
    ::test_gmm_fit_recovers_separated_components, ::test_gmm_restarts_keep_the_most_likely_fit,
    ::test_gmm_restarts_return_the_most_likely_of_the_runs
    """
    fits = _fits(points, n_components, rng, iterations, kmeans_steps, tolerance, variance_floor,
                 n_init)
    return max(fits, key=lambda gmm: gmm.log_likelihoods[-1])


def distinct_gmm_fits(points, n_components: int, rng: np.random.Generator, count: int,
                      n_init: int = 1, agreement: float = 0.99, **em_options
                      ) -> list[DiagonalGMM]:
    """Up to ``count`` of ``fit_diagonal_gmm``'s ``n_init`` runs (the same draws from rng), most
    likely first, no two of which split the points alike.  A run's partition is each point's
    most responsible component, argmax_c r_ic; a run is passed over when its partition and one
    already kept agree on more than ``agreement`` of the points under the best one-to-one
    matching of their components (``clustering_accuracy`` of one partition against the other),
    since EM from different seeds often ends in the same clusters, numbered differently.  The
    first fit returned is the one ``fit_diagonal_gmm`` returns.  Labels play no part.

    Verified by: tests/topics/test_clustering.py::test_distinct_fits_begin_with_the_most_likely,
    ::test_distinct_fits_split_the_points_differently
    """
    count = checks.integer(count, "count", 1)
    agreement = checks.real(agreement, "agreement", 0.0, 1.0)
    points = _check_points(points)  # converted once: _fits's own check then copies nothing
    fits = _fits(points, n_components, rng, n_init=n_init, **em_options)
    kept, partitions = [], []
    for gmm in sorted(fits, key=lambda gmm: gmm.log_likelihoods[-1], reverse=True):  # stable
        partition = gmm.log_responsibilities(points)[0].argmax(axis=1)
        if all(clustering_accuracy(partition, other) <= agreement for other in partitions):
            kept.append(gmm), partitions.append(partition)
        if len(kept) == count:
            break
    return kept


def _fits(points, n_components, rng, iterations=200, kmeans_steps=10, tolerance=1e-6,
          variance_floor=1e-6, n_init=1) -> list[DiagonalGMM]:
    """``n_init`` EM runs, one after another from rng (``fit_diagonal_gmm``'s options)."""
    points, rng = _check_points(points), checks.generator(rng)
    n_components, n_init, iterations, kmeans_steps, tolerance, variance_floor = _check_em_options(
        n_components, len(points), n_init, iterations, kmeans_steps, tolerance, variance_floor)
    return [_fit_once(points, n_components, rng, iterations, kmeans_steps, tolerance,
                      variance_floor) for _ in range(n_init)]


def _check_points(points) -> np.ndarray:
    """``points`` as a finite float64 (N, d) array, d ≥ 1, small enough to square."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or not np.all(np.isfinite(points)):
        raise ValueError(f"points must be a finite 2-D array (N, d), got shape {points.shape}")
    if points.shape[0] < 1 or points.shape[1] < 1:
        raise ValueError(f"points must have at least one row and one column, got shape "
                         f"{points.shape}")
    largest = float(np.abs(points).max(initial=0.0))
    # squared distances reach d·(2·largest)²; compared in logs, as the square itself overflows
    if largest > 0 and 2 * math.log(2 * largest) + math.log(points.shape[1]) \
            > math.log(np.finfo(np.float64).max / 4):
        raise ValueError(f"points are too large for squared distances in float64 (largest "
                         f"|x| = {largest:g}); rescale them")
    return points


def _check_em_options(n_components, n_points, n_init, iterations, kmeans_steps, tolerance,
                      variance_floor) -> tuple[int, int, int, int, float, float]:
    """fit_diagonal_gmm's settings, checked and converted, in the order they came."""
    n_components = checks.integer(n_components, "n_components", 1)
    checks.require(n_components <= n_points, "n_components",
                   f"at most the number of points, {n_points}", n_components)
    return (n_components, checks.integer(n_init, "n_init", 1),
            checks.integer(iterations, "iterations", 1),
            checks.integer(kmeans_steps, "kmeans_steps", 0),
            checks.real(tolerance, "tolerance", 0.0),
            # a positive floor keeps every variance, hence every log-density, finite
            checks.real(variance_floor, "variance_floor", np.finfo(np.float64).tiny))


def _fit_once(points, n_components, rng, iterations, kmeans_steps, tolerance, variance_floor):
    means = points[kmeans_plus_plus(points, n_components, rng)]
    for _ in range(kmeans_steps):
        nearest = ((points[:, None, :] - means) ** 2).sum(-1).argmin(axis=1)
        for c in range(len(means)):
            if np.any(nearest == c):  # an empty cluster keeps its seed
                means[c] = points[nearest == c].mean(axis=0)
    responsibilities = np.eye(len(means))[((points[:, None, :] - means) ** 2).sum(-1).argmin(1)]
    gmm = DiagonalGMM(np.ones(len(means)) / len(means), means, np.ones_like(means), [])
    for _ in range(max(1, iterations)):
        gmm = _maximization_step(points, responsibilities, variance_floor, gmm.log_likelihoods)
        log_r, log_px = gmm.log_responsibilities(points)
        responsibilities = np.exp(log_r)
        gmm.log_likelihoods.append(float(log_px.mean()))
        history = gmm.log_likelihoods
        if len(history) > 1 and history[-1] - history[-2] < tolerance:
            break
    return gmm


def _maximization_step(points, responsibilities, variance_floor, history) -> DiagonalGMM:
    tiny = np.finfo(np.float64).tiny  # an empty component keeps finite (if useless) numbers
    counts = responsibilities.sum(axis=0) + tiny  # N_c
    means = responsibilities.T @ points / counts[:, None]
    # Σ_i r_ic (x_i − μ_c)², not E[x²] − μ², which cancels badly for far-off data
    spread = np.stack([r @ ((points - mu) ** 2) for r, mu in zip(responsibilities.T, means)])
    variances = np.maximum(spread / counts[:, None], variance_floor)
    return DiagonalGMM(counts / counts.sum(), means, variances, history)

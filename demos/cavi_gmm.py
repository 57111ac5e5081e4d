"""Demo: a Bayesian Gaussian mixture fitted by CAVI on Iris, side by side with scikit-learn.

K = 5 components for three species: with a small Dirichlet concentration α₀ the fit empties
the components it does not need (their weights E[π_k] fall to about α₀/N).  CAVI finds a local
optimum, so the fit is started from ``--restarts`` k-means++ seedings and the one with the
highest ELBO is kept.  scikit-learn is started from that fit's initial responsibilities, so the
two run the same iteration and must agree to rounding.  Writes to ``--out``:

* elbo.png — the ELBO after every coordinate update (global factors, then responsibilities),
  scikit-learn's lower bound shifted by the constant it leaves out, and the weights E[π_k];
* clusters.png — the data on their first two principal components: true species, our
  clusters (with the 2σ ellipses of the used components) and scikit-learn's.

Without scikit-learn installed, a synthetic three-cluster set in 4-D replaces Iris and the
comparison is left out.

    python demos/cavi_gmm.py --out runs/cavi_gmm
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.cavi.bayesian_gmm import BayesianGaussianMixture, kmeans_plusplus_responsibilities
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import demo_parser, run_reporting_errors

USED = 0.01  # components with a larger expected weight are drawn and called "used"


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cavi_gmm", help="output folder for the pictures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first k-means++ start")
    parser.add_argument("--restarts", type=int, default=5,
                        help="k-means++ starts (seeds seed, seed + 1, …); the best ELBO is kept")
    parser.add_argument("--K", type=int, default=5, help="number of components")
    parser.add_argument("--alpha0", type=float, default=0.01,
                        help="weight_concentration_prior: small values empty unused components")
    parser.add_argument("--max-iter", type=int, default=500, help="most sweeps")
    parser.add_argument("--tol", type=float, default=1e-12, help="relative ELBO gain to stop at")
    return parser.parse_args(argv)


def load_data(rng: np.random.Generator):
    """(X, labels, names): Iris from scikit-learn, or three Gaussian clusters in 4-D."""
    try:
        from sklearn.datasets import load_iris
    except ImportError:
        centres = np.array([[0, 0, 0, 0], [4, 1, 0, 2], [1, 5, 3, 0]], dtype=float)
        labels = np.repeat(np.arange(3), 50)
        X = centres[labels] + rng.normal(size=(150, 4))
        return X, labels, ["cluster 0", "cluster 1", "cluster 2"]
    iris = load_iris()
    return iris.data, iris.target, list(iris.target_names)


def scikit_learn_fit(args, r0, X, iterations):
    """scikit-learn's mixture with our priors, started from r0 (None without scikit-learn).

    Its ``fit`` asks ``_initialize_parameters`` for a start; overriding that hook to call
    ``_initialize(X, r0)`` (its global update from given responsibilities) gives it our start.
    """
    try:
        from sklearn.mixture import BayesianGaussianMixture as ScikitLearnMixture
    except ImportError:
        return None

    class FromResponsibilities(ScikitLearnMixture):
        def _initialize_parameters(self, X, random_state, *rest, **keywords):
            self._initialize(X, r0)

    model = FromResponsibilities(n_components=args.K, covariance_type="full",
                                 weight_concentration_prior_type="dirichlet_distribution",
                                 weight_concentration_prior=args.alpha0, reg_covar=0.0,
                                 tol=0.0, max_iter=iterations)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    # one BLAS thread: its many tiny triangular solves are slowed down, not sped up, by threads
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # tol=0 is never met: it runs exactly `iterations`
        return model.fit(X)


def principal_axes(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, V): the top two right singular vectors of the centred data as V's columns."""
    mean = X.mean(axis=0)
    return mean, np.linalg.svd(X - mean, full_matrices=False)[2][:2].T


def elbo_figure(path: Path, fitted, sk) -> Path:
    history = np.array(fitted.elbo_history)
    figure = new_figure(1500, 440)
    axes = figure.add_subplot(1, 3, 1)
    steps = np.arange(1, len(history) + 1)
    axes.plot(steps, history, color="tab:blue", linewidth=1)
    axes.plot(steps[0::2], history[0::2], ".", color="tab:orange", label="after q(π)q(μ,Λ)")
    axes.plot(steps[1::2], history[1::2], ".", color="tab:green", label="after q(Z)")
    axes.set_xlabel("coordinate update")
    axes.set_ylabel("ELBO (nats, all constants)")
    axes.set_title("ELBO never decreases")
    axes.legend()
    axes = figure.add_subplot(1, 3, 2)
    after_global = history[2::2]
    gap = history[-1] - after_global
    keep = gap > 0
    axes.semilogy(np.arange(1, len(gap) + 1)[keep], gap[keep], label="minivae")
    if sk is not None and hasattr(sk, "lower_bounds_"):  # kept since scikit-learn 1.7
        shifted = np.array(sk.lower_bounds_) + (after_global - np.array(sk.lower_bounds_)).mean()
        sk_gap = history[-1] - shifted
        axes.semilogy(np.arange(1, len(gap) + 1)[sk_gap > 0], sk_gap[sk_gap > 0], "--",
                      label="scikit-learn bound + constant")
    axes.set_xlabel("sweep")
    axes.set_ylabel("final ELBO − ELBO")
    axes.set_title("convergence (after each global update)")
    axes.legend()
    axes = figure.add_subplot(1, 3, 3)
    components = np.arange(len(fitted.alpha))
    axes.bar(components, fitted.weights, color="tab:blue")
    axes.axhline(USED, color="k", linestyle=":", label=f"{USED} (called used above)")
    axes.set_yscale("log")
    axes.set_xticks(components)
    axes.set_xlabel("component k")
    axes.set_ylabel("E[π_k] = α_k / Σ α")
    axes.set_title("weights: unneeded components are emptied")
    axes.legend()
    return save_png(figure, path, tight_layout=True)


def clusters_figure(path: Path, X, labels, names, fitted, sk) -> Path:
    mean, V = principal_axes(X)
    P = (X - mean) @ V
    panels = [("true species", labels, None), ("minivae CAVI", fitted.r.argmax(axis=1), fitted)]
    if sk is not None:
        panels.append(("scikit-learn", sk.predict(X), None))
    circle = np.stack([np.cos(np.linspace(0, 2 * np.pi, 100)),
                       np.sin(np.linspace(0, 2 * np.pi, 100))])
    ellipses = [((fitted.m[k] - mean) @ V)[:, None]  # 2σ of the covariance projected on V
                + 2 * np.linalg.cholesky(V.T @ fitted.covariances[k] @ V) @ circle
                for k in np.flatnonzero(fitted.weights > USED)]
    corners = np.concatenate([P.T, *ellipses], axis=1)
    margin = 0.05 * np.ptp(corners, axis=1)
    figure = new_figure(420 * len(panels), 440)
    for column, (title, colour, factors) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), column + 1)
        axes.scatter(P[:, 0], P[:, 1], c=colour, cmap="tab10", vmin=0, vmax=9, s=14)
        for ellipse in ellipses if factors is not None else []:
            axes.plot(ellipse[0], ellipse[1], color="k", lw=1)
        axes.set_xlim(corners[0].min() - margin[0], corners[0].max() + margin[0])
        axes.set_ylim(corners[1].min() - margin[1], corners[1].max() + margin[1])
        axes.set_title(f"{title}: " + ", ".join(names) if column == 0
                       else f"{title} (colours: component k)", fontsize=9)
        axes.set_xlabel("principal component 1")
        if column == 0:
            axes.set_ylabel("principal component 2")
    return save_png(figure, path, tight_layout=True)


def print_table(fitted, sk, X, labels, names) -> None:
    print(f"{'component':>9} {'weight E[π_k]':>14} {'weight sklearn':>15} {'N_k':>8}   mean")
    counts = fitted.r.sum(axis=0)
    for k in range(len(fitted.alpha)):
        theirs = f"{sk.weights_[k]:15.6f}" if sk is not None else f"{'—':>15}"
        print(f"{k:>9} {fitted.weights[k]:14.6f} {theirs} {counts[k]:8.2f}   "
              + " ".join(f"{v:6.3f}" for v in fitted.m[k]))
    used = int(np.sum(fitted.weights > USED))
    print(f"used components (E[π_k] > {USED}): {used} of {len(fitted.alpha)}")
    print(f"sweeps: {fitted.n_iter}, converged: {fitted.converged}, "
          f"final ELBO: {fitted.elbo_history[-1]:.6f} nats")
    clusters = fitted.r.argmax(axis=1)
    print("points per (species, component): " + "; ".join(
        f"{name} " + " ".join(f"{np.sum((labels == j) & (clusters == k))}"
                              for k in range(len(fitted.alpha)))
        for j, name in enumerate(names)))
    if sk is None:
        print("scikit-learn not installed: no comparison")
        return
    print(f"max |r − r_sklearn|: {np.max(np.abs(fitted.r - sk.predict_proba(X))):.2e}")
    print(f"max |m − m_sklearn|: {np.max(np.abs(fitted.m - sk.means_)):.2e}")
    if not hasattr(sk, "lower_bounds_"):
        return
    difference = np.array(fitted.elbo_history[2::2]) - np.array(sk.lower_bounds_)
    print(f"ELBO − sklearn lower bound: {difference.mean():.6f} nats at every sweep "
          f"(spread {np.ptp(difference):.1e}): the constants scikit-learn leaves out")


def main(args: argparse.Namespace) -> list[Path]:
    checks.int_at_least(args.K, "--K"), checks.positive(args.alpha0, "--alpha0")
    checks.int_at_least(args.max_iter, "--max-iter", 2), checks.int_at_least(args.restarts,
                                                                             "--restarts")
    X, labels, names = load_data(np.random.default_rng(args.seed))
    model = BayesianGaussianMixture(args.K, weight_concentration_prior=args.alpha0)
    best = None
    for seed in range(args.seed, args.seed + args.restarts):
        r0 = kmeans_plusplus_responsibilities(X, args.K, np.random.default_rng(seed))
        fitted = model.fit(X, init=r0, max_iter=args.max_iter, tol=args.tol)
        print(f"start from seed {seed}: ELBO {fitted.elbo_history[-1]:.3f} after "
              f"{fitted.n_iter} sweeps, {np.sum(fitted.weights > USED)} used components")
        if best is None or fitted.elbo_history[-1] > best[1].elbo_history[-1]:
            best = r0, fitted
    r0, fitted = best
    sk = scikit_learn_fit(args, r0, X, fitted.n_iter - 1)
    out = output_folder(args.out)
    print_table(fitted, sk, X, labels, names)
    return [elbo_figure(out / "elbo.png", fitted, sk),
            clusters_figure(out / "clusters.png", X, labels, names, fitted, sk)]


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

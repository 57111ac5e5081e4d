"""Demo: CAVI finds the super-epicentres of earthquakes and how strong each one is.

Fits the Poisson–Gaussian mixture (minivae.cavi.poisson_gaussian) by coordinate ascent:
locations X_n ~ N(μ_k, τ⁻¹ I₂) around K epicentres, strengths S_n ~ Poisson(λ_k).

Data: by default N events drawn from the model itself (epicentres and rates from their priors,
so the truth is known and printed next to the fit).  With --csv, a file with a header row and
columns longitude (or lon), latitude (or lat) and magnitude (or mag), as in earthquake
catalogue exports; other columns are ignored.  The model needs counts, so a magnitude M becomes
the strength S = round(10·M) (tenths of a magnitude unit, M < 0 clipped to 0) — a mapping for
illustration, not seismology.  For a CSV the priors are set from the data: ν = mean location,
ρ = 1/(variance of the locations), rates Gamma(1, 1/mean S) (prior mean = the mean strength).

Writes two pictures to --out:

* earthquakes.png — events coloured by their responsibilities (mixed colours = shared events),
  the 2-σ circle of each q(μ_k) = N(m_k, s_k⁻¹ I) (tiny: the epicentre is known precisely) and
  the dashed 2-σ circle of the cluster spread τ^(-1/2); strength histograms with Poisson(a_k/b_k);
* elbo.png — the ELBO after every coordinate update, and its distance to the final value.

    python demos/cavi_earthquakes.py --out runs/cavi_earthquakes
"""
from __future__ import annotations

import argparse
import csv
import itertools
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Circle

from minivae import checks
from minivae.cavi.poisson_gaussian import PoissonGaussianMixture
from minivae.io.plots import new_figure, save_png
from minivae.program import demo_parser, run_reporting_errors

STRENGTH_UNITS_PER_MAGNITUDE = 10  # S = round(10·M): tenths of a magnitude unit
COLUMN_NAMES = {"longitude": ("longitude", "lon"), "latitude": ("latitude", "lat"),
                "magnitude": ("magnitude", "mag")}


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cavi_earthquakes", help="output folder")
    parser.add_argument("--csv", default=None, help="longitude, latitude, magnitude file")
    parser.add_argument("--K", type=int, default=4, help="number of epicentres")
    parser.add_argument("--n", type=int, default=500, help="synthetic events")
    parser.add_argument("--cluster-sd", type=float, default=1.0,
                        help="τ^(-1/2): spread of events around their epicentre")
    parser.add_argument("--max-iter", type=int, default=200, help="CAVI sweeps at most")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def synthetic_events(n: int, model: PoissonGaussianMixture, rng: np.random.Generator):
    """Draw μ_k, λ_k from their priors, then n events (X, S) and their labels Z."""
    centres = model.nu + rng.normal(size=(model.K, 2)) / np.sqrt(model.rho)
    rates = rng.gamma(model.alpha, 1.0 / model.beta, size=model.K)
    labels = rng.choice(model.K, size=n, p=model.pi)
    X = centres[labels] + rng.normal(size=(n, 2)) / np.sqrt(model.tau)
    return X, rng.poisson(rates[labels]), labels, centres, rates


def read_catalogue(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(X (N, 2) of longitude, latitude; S (N,) = round(10·max(M, 0))) from a CSV with header."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = {name.strip().lower(): name for name in reader.fieldnames or []}
        columns = {}
        for column, accepted in COLUMN_NAMES.items():
            found = [header[name] for name in accepted if name in header]
            if not found:
                raise ValueError(f"--csv {path}: no {column} column (looked for "
                                 f"{', '.join(accepted)}; header is {list(header)})")
            columns[column] = found[0]
        rows = [[row[columns[c]] for c in COLUMN_NAMES] for row in reader]
    values = np.array([[float(v) for v in row] for row in rows
                       if all(v.strip() for v in row)], dtype=np.float64).reshape(-1, 3)
    if len(values) == 0:
        raise ValueError(f"--csv {path}: no complete rows")
    strengths = np.round(STRENGTH_UNITS_PER_MAGNITUDE * np.maximum(values[:, 2], 0.0))
    return values[:, :2], strengths


def match_to_truth(fitted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Permutation p minimizing Σₖ ‖fitted[k] − true[p[k]]‖² (labels are arbitrary)."""
    best = min(itertools.permutations(range(len(true))),
               key=lambda p: np.sum((fitted - true[list(p)]) ** 2))
    return np.array(best)


def cluster_figure(path: Path, X, S, fit, model, truth) -> Path:
    colours = colormaps["tab10"](np.arange(model.K) % 10)[:, :3]
    figure = new_figure(1300, 620)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    left.scatter(X[:, 0], X[:, 1], c=np.clip(fit.r @ colours, 0, 1),
                 s=4 + 40 * S / max(S.max(), 1), alpha=0.7, linewidths=0)
    spread = 2 / np.sqrt(model.tau)
    for k in range(model.K):
        left.add_patch(Circle(fit.m[k], 2 / np.sqrt(fit.s[k]), fill=False, lw=2,
                              color=colours[k]))
        left.add_patch(Circle(fit.m[k], spread, fill=False, ls="--", lw=1, color=colours[k]))
        left.annotate(f"{k}: λ ≈ {fit.a[k] / fit.b[k]:.1f}", fit.m[k], xytext=(6, 6),
                      textcoords="offset points", fontsize=9, weight="bold")
    left.scatter(*fit.m.T, marker="x", c="k", s=40, label="m_k (2-σ of q(μ_k): solid)")
    if truth is not None:
        left.scatter(*truth[0].T, marker="+", c="r", s=80, label="true μ_k")
    left.plot([], [], "k--", lw=1, label="2τ^(-1/2): cluster spread")
    left.set_aspect("equal", adjustable="datalim")
    left.set_xlabel("location x₁")
    left.set_ylabel("location x₂")
    left.legend(loc="best", fontsize=8)
    left.set_title("events, coloured by responsibilities r_nk; size ∝ strength")
    hard = fit.r.argmax(axis=1)
    bins = np.arange(S.max() + 2) - 0.5
    for k in range(model.K):
        mine = S[hard == k]
        right.hist(mine, bins=bins, density=True, alpha=0.35, color=colours[k])
        rate = fit.a[k] / fit.b[k]
        support = np.arange(S.max() + 1)
        log_pmf = support * np.log(rate) - rate - np.cumsum(np.log(np.maximum(support, 1)))
        right.plot(support, np.exp(log_pmf), color=colours[k], lw=1.5,
                   label=f"{k}: Poisson(a/b = {rate:.2f}), {len(mine)} events")
    right.set_xlabel("strength S")
    right.set_ylabel("share of the component's events")
    right.set_title("strengths by most likely component")
    right.legend(fontsize=8)
    return save_png(figure, path, tight_layout=True)


def elbo_figure(path: Path, history: np.ndarray) -> Path:
    figure = new_figure(1100, 420)
    left, right = figure.subplots(1, 2)
    steps = np.arange(1, len(history) + 1)
    left.plot(steps, history, color="0.6", lw=1)
    for offset, (name, colour) in enumerate((("after r", "tab:blue"),
                                             ("after (a, b)", "tab:orange"),
                                             ("after (m, s)", "tab:green"))):
        left.scatter(steps[offset::3], history[offset::3], s=14, color=colour, label=name)
    left.set_xlabel("coordinate update")
    left.set_ylabel("ELBO (nats, all constants kept)")
    left.set_title("the ELBO never decreases")
    left.legend()
    gap = history[-1] - history
    right.semilogy(steps[gap > 0], gap[gap > 0], marker="o", ms=3)
    right.set_xlabel("coordinate update")
    right.set_ylabel("final ELBO − ELBO")
    right.set_title("distance to the converged value")
    right.grid(True, which="both", alpha=0.3)
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> dict:
    checks.int_at_least(args.K, "--K"), checks.positive(args.cluster_sd, "--cluster-sd")
    rng = np.random.default_rng(args.seed)
    pi = np.full(args.K, 1.0 / args.K)
    tau = 1.0 / args.cluster_sd ** 2
    truth = None
    if args.csv is None:
        if args.n < args.K:
            raise ValueError(f"--n must be at least --K = {args.K}, got {args.n}")
        model = PoissonGaussianMixture(args.K, pi, tau, nu=[0.0, 0.0],
                                       rho=1.0 / (6 * args.cluster_sd) ** 2, alpha=2.0,
                                       beta=0.1)
        X, S, _, centres, rates = synthetic_events(args.n, model, rng)
        truth = (centres, rates)
    else:
        X, S = read_catalogue(args.csv)
        spread = max(float(np.mean(np.var(X, axis=0))), 1e-12)
        model = PoissonGaussianMixture(args.K, pi, tau, nu=X.mean(axis=0), rho=1.0 / spread,
                                       alpha=1.0, beta=1.0 / max(float(S.mean()), 1.0))
    fit = model.fit(X, S, rng=rng, max_iter=args.max_iter)

    print(f"\n{len(X)} events, K = {model.K}; CAVI {'converged' if fit.converged else 'stopped'}"
          f" after {fit.n_iter} sweeps ({len(fit.elbo_history)} updates); final ELBO "
          f"{fit.elbo:.4f} nats")
    header = (f"  {'k':>2} {'Σₙ r_nk':>8} {'m_k':>18} {'s_k^(-1/2)':>10} "
              f"{'E λ_k = a/b':>11} {'sd λ_k':>7}")
    order = match_to_truth(fit.m, truth[0]) if truth is not None and model.K <= 7 else None
    if order is not None:
        header += f" {'true μ_k':>18} {'true λ_k':>8}"
    print(header)
    rows = []
    for k in range(model.K):
        row = {"k": k, "events": float(fit.r[:, k].sum()), "m": fit.m[k].tolist(),
               "centre_sd": float(fit.s[k] ** -0.5), "rate": float(fit.a[k] / fit.b[k]),
               "rate_sd": float(np.sqrt(fit.a[k]) / fit.b[k])}
        line = (f"  {k:>2} {row['events']:8.1f} ({fit.m[k, 0]:7.3f}, {fit.m[k, 1]:7.3f}) "
                f"{row['centre_sd']:10.4f} {row['rate']:11.3f} {row['rate_sd']:7.3f}")
        if order is not None:
            true_centre, true_rate = truth[0][order[k]], truth[1][order[k]]
            row.update(true_m=true_centre.tolist(), true_rate=float(true_rate))
            line += f" ({true_centre[0]:7.3f}, {true_centre[1]:7.3f}) {true_rate:8.3f}"
        rows.append(row)
        print(line)

    out = Path(args.out)
    paths = [cluster_figure(out / "earthquakes.png", X, S, fit, model, truth),
             elbo_figure(out / "elbo.png", fit.elbo_history)]
    print("\nwrote " + ", ".join(str(p.resolve()) for p in paths))
    return {"paths": paths, "fit": fit, "rows": rows}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

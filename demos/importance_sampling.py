"""Demo: estimating log p(x) by prior sampling and by importance sampling, as samples grow.

The model is linear-Gaussian (probabilistic PCA), p(z) = N(0, I₃), p(x | z) = N(Wz + b, σ²I₁₂),
so log p(x) is known exactly and every estimate can be checked against it.  Two estimators of
p(x), both unbiased, are averaged in log space:

* prior sampling:       (1/n) Σ p(x | z_i),            z_i ~ p(z);
* importance sampling:  (1/n) Σ p(x, z_i) / q(z_i|x),  z_i ~ q(z | x).

q is deliberately imperfect: the exact posterior's mean with a diagonal covariance 1.5² times
wider than the posterior's marginal variances (a wide q keeps the weights p/q bounded).  Two
points are scored: a typical x drawn from the model, and an atypical x whose latent lies far out
in the prior's tail.  The error bars are the delta-method standard errors the estimators report;
when one draw dominates the average, that standard error is itself unreliable (it sits near 1
while the estimate is many nats off) — prior sampling on the atypical point shows it.

Writes importance_sampling.png to ``--out`` and prints the table.  Runs in a few seconds:

    python demos/importance_sampling.py --out runs/importance_sampling
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae.distributions import Independent, Normal
from minivae.io.plots import new_figure, save_png
from minivae.models import LinearGaussian
from minivae.objectives.likelihood import (
    importance_sampling_log_likelihood,
    prior_sampling_log_likelihood,
)
from minivae.program import demo_parser, run_reporting_errors

X_DIM, Z_DIM, NOISE_SD = 12, 3, 0.5
ATYPICAL_LATENT = np.array([2.5, -2.5, 2.0])  # about 4 prior standard deviations from 0
PROPOSAL_WIDENING = 1.5
BELOW_CHART = 12.0  # nats under log p(x) where the chart's y-axis stops


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/importance_sampling",
                        help="output folder for the picture")
    parser.add_argument("--max-samples", type=int, default=10_000,
                        help="largest number of samples (the grid runs 1, 2, 5, 10, ... up to it)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def sample_counts(largest: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to and including ``largest``."""
    if largest < 2:
        raise ValueError(f"--max-samples must be at least 2, got {largest}")
    counts = [m * 10 ** e for e in range(len(str(largest))) for m in (1, 2, 5)]
    return sorted({n for n in counts if n < largest} | {largest})


def build_models(rng: np.random.Generator) -> tuple[LinearGaussian, LinearGaussian]:
    """The exact model, and the same model whose encoder is the imperfect proposal q(z|x)."""
    W, b = rng.normal(size=(X_DIM, Z_DIM)), rng.normal(size=X_DIM)
    exact = LinearGaussian(W, b, NOISE_SD)

    def proposal(x):
        posterior = exact.posterior(x)
        return Independent(Normal(posterior.loc,
                                  PROPOSAL_WIDENING * posterior.variance.sqrt()), 1)

    return exact, LinearGaussian(W, b, NOISE_SD, encoder=proposal)


def estimate_table(model, x: np.ndarray, counts: list[int], rng: np.random.Generator) -> dict:
    """For each n: (estimate, standard error) per point, from fresh draws, for both methods."""
    table = {"prior sampling": [], "importance sampling": []}
    for n in counts:
        table["prior sampling"].append(prior_sampling_log_likelihood(model, x, n, rng))
        table["importance sampling"].append(importance_sampling_log_likelihood(model, x, n, rng))
    return {method: (np.array([row[0] for row in rows]), np.array([row[1] for row in rows]))
            for method, rows in table.items()}  # each: (len(counts), points) arrays


def draw(path: Path, counts: list[int], table: dict, exact: np.ndarray, titles: list[str]) -> Path:
    figure = new_figure(1200, 580)
    styles = {"prior sampling": ("tab:orange", "s"), "importance sampling": ("tab:blue", "o")}
    for column, title in enumerate(titles):
        axes = figure.add_subplot(1, len(titles), column + 1)
        floor = exact[column] - BELOW_CHART
        for shift, (method, (estimates, errors)) in zip((0.93, 1.07), table.items()):
            color, marker = styles[method]
            shown, error = estimates[:, column], errors[:, column]
            error = np.where(np.isfinite(error), error, 0.0)  # one draw: no error bar to draw
            on_chart = shown >= floor
            xs = np.array(counts) * shift  # side by side, so the bars do not hide each other
            axes.errorbar(xs[on_chart], shown[on_chart], yerr=error[on_chart], color=color,
                          marker=marker, capsize=3, linestyle="none", label=f"{method} ± SE")
            if not on_chart.all():  # estimates far below: a marker on the chart's floor
                axes.plot(xs[~on_chart], np.full((~on_chart).sum(), floor + 0.3), "v",
                          color=color, label=f"{method}: below the chart")
        axes.axhline(exact[column], color="black", linestyle="--", label="exact log p(x)")
        axes.set_xscale("log")
        axes.set_ylim(floor, exact[column] + 3.0)
        axes.set_xlabel("samples n")
        axes.set_ylabel("estimate of log p(x) (nats)")
        axes.set_title(title)
    figure.legend(*axes.get_legend_handles_labels(), loc="lower center", ncol=4)
    figure.subplots_adjust(bottom=0.2, wspace=0.25)
    figure.suptitle(f"Linear-Gaussian model ({X_DIM}-dimensional x, {Z_DIM}-dimensional z): "
                    "log of the average of n weights, fresh draws for every n")
    return save_png(figure, path)


def main(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(args.seed)
    counts = sample_counts(args.max_samples)
    exact_model, model = build_models(rng)
    typical = exact_model.sample(1, rng)[0][0]
    atypical = (exact_model.W.data @ ATYPICAL_LATENT + exact_model.b.data
                + NOISE_SD * rng.normal(size=X_DIM))
    x = np.stack([typical, atypical])
    exact = exact_model.log_marginal(x).data
    table = estimate_table(model, x, counts, rng)
    titles = [f"typical x (log p(x) = {exact[0]:.2f})",
              f"atypical x, z far in the prior's tail (log p(x) = {exact[1]:.2f})"]
    path = draw(Path(args.out) / "importance_sampling.png", counts, table, exact, titles)

    def cell(method, row, column):
        estimate, error = (values[row, column] for values in table[method])
        error_text = f"{error:.2f}" if np.isfinite(error) else "—"
        return f"{estimate:9.2f} ± {error_text:>5}"

    print(f"exact log p(x): typical {exact[0]:.3f}, atypical {exact[1]:.3f}")
    print(f"{'n':>6}  {'typical: prior':>17}  {'typical: IS':>17}  "
          f"{'atypical: prior':>17}  {'atypical: IS':>17}")
    for row, n in enumerate(counts):
        print(f"{n:6d}  " + "  ".join(cell(method, row, column) for column in (0, 1)
                                     for method in ("prior sampling", "importance sampling")))
    print(f"(estimate ± standard error; '—': one sample gives no standard error)\n{path}")
    return {"counts": counts, "exact": exact, "table": table, "path": path}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

"""Demo: a trained discriminator recovers a density ratio, and JSD grows toward log 2.

Writes two pictures to ``--out``:

* density_ratio.png — draws from P₁ = N(1, 0.8²) and P₀ = N(0, 1.3²); a logistic regression on
  (x, x²) and a small MLP are trained to maximize E₁[log D] + E₀[log(1 − D)].  Top: f₀, the true
  f₁ and the recovered f₁ ≈ f₀ D/(1 − D) = exp(log f₀ + logit D).  Bottom: the estimated and
  true log ratio log f₁/f₀ = logit D*, and D(x) against D* = f₁/(f₀ + f₁);
* jensen_shannon.png — JSD(N(0, 1)‖N(δ, 1)) by quadrature for growing δ, rising from 0 toward
  its disjoint-support value log 2.

    python demos/density_ratio.py --out runs/density_ratio
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.distributions import Normal
from minivae.divergences.discriminator import (
    LogisticDiscriminator,
    MLPDiscriminator,
    optimal_discriminator,
)
from minivae.divergences.jensen_shannon import jensen_shannon_1d
from minivae.divergences.quadrature import uniform_grid
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import add_quiet_argument, demo_parser, run_reporting_errors

LOC1, SCALE1, LOC0, SCALE0 = 1.0, 0.8, 0.0, 1.3


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/density_ratio", help="output folder")
    parser.add_argument("--n", type=int, default=5000, help="draws from each distribution")
    parser.add_argument("--steps", type=int, default=500, help="Adam steps per discriminator")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def log_normal(loc: float, scale: float):
    """x ↦ log N(x; loc, scale²) as a NumPy function."""
    return lambda x: Normal(loc, scale).log_prob(np.asarray(x, dtype=np.float64)).data


def density_ratio_figure(path: Path, n: int, steps: int, rng: np.random.Generator,
                         progress: bool) -> Path:
    log_f1, log_f0 = log_normal(LOC1, SCALE1), log_normal(LOC0, SCALE0)
    x1 = rng.normal(LOC1, SCALE1, n)
    x0 = rng.normal(LOC0, SCALE0, n)
    models = {"logistic on (x, x²)": LogisticDiscriminator(degree=2),
              "MLP (16 tanh units)": MLPDiscriminator(hidden=(16,), rng=rng)}
    settings = {"logistic on (x, x²)": 0.05, "MLP (16 tanh units)": 0.03}
    for name, model in models.items():
        model.fit(x1, x0, steps=steps, lr=settings[name], progress=progress)
    grid = np.linspace(-4.0, 5.0, 400)
    central = (grid > -1.5) & (grid < 2.5)
    true_log_ratio = log_f1(grid) - log_f0(grid)

    figure = new_figure(1000, 880)
    top = figure.add_subplot(2, 1, 1)
    top.hist(x0, 80, density=True, alpha=0.25, color="tab:blue", label=f"draws of P₀ (n={n:,})")
    top.hist(x1, 80, density=True, alpha=0.25, color="tab:orange",
             label=f"draws of P₁ (n={n:,})")
    top.plot(grid, np.exp(log_f0(grid)), color="tab:blue", label="f₀ = N(0, 1.3²)")
    top.plot(grid, np.exp(log_f1(grid)), "k", linewidth=2.5, label="true f₁ = N(1, 0.8²)")
    styles = ("--", ":")
    print(f"P1 = N({LOC1}, {SCALE1}²), P0 = N({LOC0}, {SCALE0}²), {n} draws each, {steps} steps")
    for (name, model), style in zip(models.items(), styles):
        estimate = model.log_density_estimate(grid, log_f0)
        top.plot(grid, np.exp(estimate), style, linewidth=2, label=f"f₀·D/(1 − D), {name}")
        error = np.abs(model.log_density_ratio(grid) - true_log_ratio)[central]
        print(f"  {name}: max |log-ratio error| on [-1.5, 2.5] = {error.max():.4f}, "
              f"mean = {error.mean():.4f}")
    top.set_title("Recovering f₁ from f₀ and a trained discriminator: f₁ = f₀ D*/(1 − D*)")
    top.set_xlabel("x")
    top.set_ylabel("density")
    top.legend(fontsize=8)

    bottom = figure.add_subplot(2, 1, 2)
    bottom.plot(grid, true_log_ratio, "k", linewidth=2.5, label="true log f₁/f₀ = logit D*")
    right = bottom.twinx()
    right.plot(grid, optimal_discriminator(log_f1(grid), log_f0(grid)), color="gray",
               linewidth=2.5, alpha=0.5, label="D* = f₁/(f₀ + f₁)")
    for (name, model), style in zip(models.items(), styles):
        bottom.plot(grid, model.log_density_ratio(grid), style, linewidth=2,
                    label=f"logit D(x), {name}")
        right.plot(grid, model.probability(grid), style, color="gray", alpha=0.7,
                   label=f"D(x), {name}")
    bottom.axvspan(-1.5, 2.5, color="tab:green", alpha=0.07, label="central region")
    bottom.set_ylim(-8, 3)
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("D(x) (grey)")
    bottom.set_xlabel("x")
    bottom.set_ylabel("log density ratio")
    bottom.set_title("Estimated vs true log ratio (left axis) and D(x) vs D* (grey, right axis);\n"
                     "outside the data the MLP's logit flattens: it only learns where draws are",
                     fontsize=10)
    lines, labels = bottom.get_legend_handles_labels()
    more_lines, more_labels = right.get_legend_handles_labels()
    # below the axes: inside, any corner would cover a curve
    bottom.legend(lines + more_lines, labels + more_labels, fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16), ncol=3)
    figure.subplots_adjust(hspace=0.35, left=0.08, right=0.92, top=0.95, bottom=0.15)
    return save_png(figure, path)


def jensen_shannon_figure(path: Path) -> Path:
    shifts = np.linspace(0.0, 12.0, 61)
    grid = uniform_grid(-14.0, 26.0, 8001)
    log_f = log_normal(0.0, 1.0)
    values = np.array([jensen_shannon_1d(log_f, log_normal(d, 1.0), grid) for d in shifts])
    figure = new_figure(760, 460)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(shifts, values, "o-", markersize=3, label="JSD(N(0, 1)‖N(δ, 1)) by quadrature")
    axes.axhline(np.log(2), color="k", linestyle="--",
                 label=f"log 2 = {np.log(2):.4f}: disjoint supports")
    print("JSD(N(0,1) || N(delta,1)):")
    for d in (0.0, 1.0, 2.0, 4.0, 8.0, 12.0):
        value = values[np.argmin(np.abs(shifts - d))]
        print(f"  delta = {d:4.1f}: JSD = {value:.6f}  (log 2 - JSD = {np.log(2) - value:.2e})")
        if d in (1.0, 2.0, 4.0):
            axes.annotate(f"{value:.3f}", (d, value), textcoords="offset points", xytext=(8, -12))
    axes.set_xlabel("shift δ between the means")
    axes.set_ylabel("JSD (nats)")
    axes.set_ylim(-0.02, 0.75)
    axes.set_title("Jensen–Shannon divergence rises from 0 toward log 2 as the overlap vanishes")
    axes.legend(loc="lower right")
    return save_png(figure, path)


def main(args: argparse.Namespace) -> list[Path]:
    checks.int_at_least(args.n, "--n", 100), checks.int_at_least(args.steps, "--steps")
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)
    return [density_ratio_figure(out / "density_ratio.png", args.n, args.steps, rng,
                                 not args.quiet),
            jensen_shannon_figure(out / "jensen_shannon.png")]


def run() -> None:
    for written in main(parse_args()):
        print(f"wrote {written}")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(run))

"""Demo: tightening the ELBO over q = Ber(λ) on the lecture's two-component Gaussian mixture.

p(x) = Σ_c π_c N(x; μ_c, Σ_c) with the lecture's θ (π₁ = 0.33, μ₁ = (4.04, 3.83), …), latent
c ∈ {0, 1}, q(c) = Ber(c; λ).  For one observed x,

    ELBO(λ) = λ log(π₁ N(x; μ₁, Σ₁)/λ) + (1 − λ) log(π₀ N(x; μ₀, Σ₀)/(1 − λ))
            = log p(x) − KL(Ber(λ) ‖ Ber(β)),     β = p(c = 1 | x),

so the ELBO is highest, and equal to log p(x), at λ* = β: the family of q contains the exact
posterior.  The lecture gives β = 0.76 but its x only in a figure; by default x is the point
on the segment from μ₀ to μ₁ where β = 0.76 (found by bisection; ``--x`` picks another).
Writes elbo_tightening.png to ``--out``: the components with x and the curve β = 0.76, and
ELBO(λ) under log p(x) with the gap KL shaded and λ* marked.

    python demos/elbo_tightening.py --out runs/elbo_tightening
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.objectives.discrete_latent import (
    bernoulli_q,
    elbo,
    gaussian_mixture_log_joint,
    kl_to_posterior,
    log_evidence,
    posterior,
)
from minivae.program import demo_parser, run_reporting_errors

WEIGHTS = np.array([0.67, 0.33])  # π₀, π₁
MEANS = np.array([[1.10, 0.86], [4.04, 3.83]])
COVARIANCES = np.array([[[1.20, -0.97], [-0.97, 1.15]], [[1.79, -0.10], [-0.10, 2.00]]])
LECTURE_BETA = 0.76


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/elbo_tightening", help="output folder")
    parser.add_argument("--x", type=float, nargs=2, metavar=("X1", "X2"),
                        help="the observed point (default: where p(c = 1 | x) = 0.76 on the "
                             "segment from μ₀ to μ₁)")
    parser.add_argument("--resolution", type=int, default=401, help="points of the λ grid")
    return parser.parse_args(argv)


def log_joint(x) -> np.ndarray:
    return gaussian_mixture_log_joint(x, WEIGHTS, MEANS, COVARIANCES)


def lecture_point(beta: float = LECTURE_BETA) -> np.ndarray:
    """The x = μ₀ + t (μ₁ − μ₀) with p(c = 1 | x) = beta, by bisection on t ∈ [0, 1]
    (the posterior of component 1 rises from 0.001 to 1 along the segment)."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if posterior(log_joint(MEANS[0] + middle * (MEANS[1] - MEANS[0])))[1] < beta:
            low = middle
        else:
            high = middle
    return MEANS[0] + 0.5 * (low + high) * (MEANS[1] - MEANS[0])


def draw(path: Path, x, lam, curve, evidence, beta) -> Path:
    figure = new_figure(1300, 540)
    axes = figure.add_subplot(1, 2, 1)
    g1, g2 = np.meshgrid(np.linspace(-2.5, 8, 300), np.linspace(-2.5, 8, 300))
    grid = np.stack([g1, g2], axis=-1)
    joint = log_joint(grid)
    axes.contourf(g1, g2, np.exp(log_evidence(joint)), levels=20, cmap="Greys")
    contour = axes.contour(g1, g2, posterior(joint)[..., 1], levels=[0.5, LECTURE_BETA],
                           colors=["tab:gray", "tab:red"], linestyles=[":", "-"])
    axes.clabel(contour, fmt={0.5: "β = 0.5", LECTURE_BETA: f"β = {LECTURE_BETA}"}, fontsize=8)
    circle = np.stack([np.cos(np.linspace(0, 2 * np.pi, 100)),
                       np.sin(np.linspace(0, 2 * np.pi, 100))])
    for c, color in ((0, "tab:blue"), (1, "tab:orange")):
        ellipse = MEANS[c][:, None] + 2 * np.linalg.cholesky(COVARIANCES[c]) @ circle
        axes.plot(*ellipse, color=color, label=f"component {c}: π = {WEIGHTS[c]}, 2σ")
        axes.plot(*MEANS[c], "+", color=color, markersize=12)
    axes.plot(*x, "o", color="black", label=f"x = ({x[0]:.3f}, {x[1]:.3f})")
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    axes.set_title("the mixture p(x), x, and the curve where p(c = 1 | x) = 0.76", fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    axes = figure.add_subplot(1, 2, 2)
    axes.axhline(evidence, color="black", linestyle="--", label=f"log p(x) = {evidence:.4f}")
    axes.fill_between(lam, curve, evidence, color="tab:red", alpha=0.25,
                      label="gap = KL(Ber(λ) ‖ p(c|x))")
    axes.plot(lam, curve, color="tab:blue", linewidth=2, label="ELBO(λ)")
    axes.axvline(beta, color="tab:green", linestyle=":")
    axes.plot(beta, evidence, "*", color="tab:green", markersize=16,
              label=f"λ* = p(c = 1 | x) = {beta:.4f}")
    axes.set_xlabel("λ = q(c = 1)")
    axes.set_ylabel("nats")
    axes.set_title("ELBO(λ) = log p(x) − KL: it touches log p(x) at the posterior", fontsize=10)
    axes.legend(loc="lower center", fontsize=8)
    figure.subplots_adjust(left=0.06, right=0.98, wspace=0.2)
    return save_png(figure, path)


def main(args: argparse.Namespace) -> dict:
    checks.int_at_least(args.resolution, "--resolution", 3)
    x = lecture_point() if args.x is None else np.array(args.x)
    checks.finite(x, "--x")
    out = output_folder(args.out)
    joint = log_joint(x)
    evidence, beta = float(log_evidence(joint)), float(posterior(joint)[1])
    lam = np.linspace(0.0, 1.0, args.resolution)
    q = bernoulli_q(lam)
    curve, kl = elbo(q, joint), kl_to_posterior(q, joint)
    best = lam[np.argmax(curve)]
    print(f"x = ({x[0]:.6f}, {x[1]:.6f})")
    print(f"log p(x, c=0) = {joint[0]:.6f}, log p(x, c=1) = {joint[1]:.6f}")
    print(f"log p(x) = {evidence:.6f}   (p(x) = {np.exp(evidence):.6e})")
    print(f"λ* = p(c = 1 | x) = σ(log p(x,1) − log p(x,0)) = {beta:.6f}"
          f"   (the lecture: {LECTURE_BETA}; grid argmax {best:.4f})")
    print(f"ELBO(λ*) = {float(elbo(bernoulli_q(beta), joint)):.6f} = log p(x); "
          f"largest |ELBO + KL − log p(x)| on the grid: {np.abs(curve + kl - evidence).max():.1e}")
    print(f"ELBO at the ends: λ = 0 gives log p(x, c=0) = {curve[0]:.4f}, "
          f"λ = 1 gives log p(x, c=1) = {curve[-1]:.4f}")
    path = draw(out / "elbo_tightening.png", x, lam, curve, evidence, beta)
    print(path)
    return {"x": x, "lam": lam, "elbo": curve, "kl": kl, "log_evidence": evidence, "beta": beta,
            "path": path}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

"""Demo: lower bounds on KL(p‖q) from a trained critic, R1[T] ≤ R2[T] ≤ KL.

A small MLP critic T is trained on samples of two Gaussians by maximizing either
R1[T] = E_p[T] − E_q[e^(T−1)] or R2[T] = E_p[T] − log E_q[e^T]; both bounds are tracked on
held-out samples.  Writes bounds.png:

* top: two 2-D Gaussians, held-out R1 and R2 during training of a critic on R1 (left) and on R2
  (right), with the closed-form KL as a horizontal line;
* bottom left: in 1-D, the learned critics against the optimal ones, T = log(p/q) + 1 for R1
  and T − log E_q[e^T] = log(p/q) for R2 (which fixes T only up to a constant);
* bottom right: the held-out bounds of the 1-D critics during training.

Also writes conjugates.png: for each f-divergence generator f (top) its tangent line of slope
t₀ = f′(u₀), t₀ u − f*(t₀), which touches f at u₀ (Fenchel–Young with equality) and stays
below it elsewhere; below, the conjugate f*(t) in closed form with the point (t₀, f*(t₀)).

    python demos/divergence_bounds.py --out runs/divergence_bounds
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae import Tensor, checks, kl_divergence, logsumexp
from minivae.distributions import Normal
from minivae.divergences.bounds import train_critic
from minivae.divergences.conjugates import GENERATORS, conjugate, generator_slope, generator_value
from minivae.engine.tensor import no_grad
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import add_quiet_argument, demo_parser, run_reporting_errors

# p and q of the 2-D case: independent coordinates, so KL is the sum of the 1-D KLs.
LOC_P_2D, SCALE_P_2D = np.array([1.0, -0.5]), np.array([0.8, 1.2])
LOC_Q_2D, SCALE_Q_2D = np.zeros(2), np.ones(2)
# The 1-D case; σ_p² < 2σ_q² keeps Var_q[p/q] finite, so the estimates have finite variance.
LOC_P_1D, SCALE_P_1D, LOC_Q_1D, SCALE_Q_1D = 1.0, 0.7, 0.0, 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/divergence_bounds", help="output folder")
    parser.add_argument("--n", type=int, default=8000, help="samples of each distribution "
                        "(half of them held out)")
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per critic")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def gaussian_kl(loc_p, scale_p, loc_q, scale_q) -> float:
    """Closed-form KL between Gaussians with independent coordinates (summed over them)."""
    return float(np.sum(kl_divergence(Normal(np.asarray(loc_p, float), np.asarray(scale_p, float)),
                                      Normal(np.asarray(loc_q, float), np.asarray(scale_q, float)))
                        .data))


def train_pair(p, q, args, rng):
    """A critic trained on R1 and one trained on R2, on the same samples."""
    return {bound: train_critic(p, q, bound, steps=args.steps, eval_every=max(1, args.steps // 150),
                                rng=rng, progress=not args.quiet)
            for bound in ("r1", "r2")}


def plot_history(axes, history, kl: float, title: str) -> None:
    axes.plot(history.step, history.r1, color="tab:orange", label="R1 (held out)")
    axes.plot(history.step, history.r2, color="tab:blue", label="R2 (held out)")
    axes.axhline(kl, color="k", linestyle="--", label=f"KL(p‖q) = {kl:.3f}")
    axes.set_title(f"{title}\nfinal R1 = {history.r1[-1]:.3f}, R2 = {history.r2[-1]:.3f}",
                   fontsize=10)
    axes.set_xlabel("Adam step")
    axes.set_ylabel("bound (nats)")
    low = min(history.r1.min(), history.r2.min())
    axes.set_ylim(max(low, -0.5) - 0.05, kl * 1.25 + 0.05)
    axes.legend(loc="lower right", fontsize=8)


def critic_on(critic, x: np.ndarray) -> np.ndarray:
    with no_grad():
        return critic(Tensor(x.reshape(-1, 1))).data.ravel()


def conjugates_figure(path, touching: float = 2.5) -> Path:
    figure = new_figure(1800, 640)
    u = np.linspace(0.0, 6.0, 400)
    for column, name in enumerate(GENERATORS):
        slope = float(generator_slope(name, touching))
        intercept = -float(conjugate(name, slope))
        axes = figure.add_subplot(2, len(GENERATORS), column + 1)
        axes.plot(u, generator_value(name, u), color="tab:blue", label="f(u)")
        axes.plot(u, slope * u + intercept, "--", color="tab:red",
                  label=f"t₀u − f*(t₀), t₀ = f′({touching:g})")
        axes.plot(touching, generator_value(name, touching), "ko", markersize=4)
        axes.set_ylim(-1.5, 4.0)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("u")
        if column == 0:
            axes.legend(loc="upper left", fontsize=7)
        low, high, _ = GENERATORS[name].conjugate_domain
        t = np.linspace(-4.0, min(high, 4.0), 400)
        axes = figure.add_subplot(2, len(GENERATORS), len(GENERATORS) + column + 1)
        axes.plot(t, conjugate(name, t), color="tab:green", label="f*(t)")
        axes.plot(slope, -intercept, "ko", markersize=4, label=f"(t₀, f*(t₀)) = "
                  f"({slope:.2f}, {-intercept:.2f})")
        if high < np.inf:
            axes.axvline(high, color="0.6", linestyle=":", label=f"f* = +∞ beyond {high:.3g}")
        axes.set_ylim(-2.0, 6.0)
        axes.set_xlabel("t")
        axes.legend(loc="upper left", fontsize=7)
    figure.subplots_adjust(left=0.03, right=0.99, wspace=0.3, hspace=0.35, top=0.93)
    return save_png(figure, path)


def main(args: argparse.Namespace) -> list[Path]:
    checks.int_at_least(args.n, "--n", 100), checks.int_at_least(args.steps, "--steps")
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)

    p2 = LOC_P_2D + SCALE_P_2D * rng.standard_normal((args.n, 2))
    q2 = LOC_Q_2D + SCALE_Q_2D * rng.standard_normal((args.n, 2))
    kl2 = gaussian_kl(LOC_P_2D, SCALE_P_2D, LOC_Q_2D, SCALE_Q_2D)
    fits2 = train_pair(p2, q2, args, rng)

    p1 = LOC_P_1D + SCALE_P_1D * rng.standard_normal(args.n)
    q1 = LOC_Q_1D + SCALE_Q_1D * rng.standard_normal(args.n)
    kl1 = gaussian_kl(LOC_P_1D, SCALE_P_1D, LOC_Q_1D, SCALE_Q_1D)
    fits1 = train_pair(p1, q1, args, rng)

    figure = new_figure(1200, 900)
    for column, bound in enumerate(("r1", "r2")):
        plot_history(figure.add_subplot(2, 2, column + 1), fits2[bound][1], kl2,
                     f"2-D Gaussians: critic trained on {bound.upper()}")

    axes = figure.add_subplot(2, 2, 3)
    x = np.linspace(-2.5, 3.5, 300)
    log_ratio = (Normal(LOC_P_1D, SCALE_P_1D).log_prob(x).data
                 - Normal(LOC_Q_1D, SCALE_Q_1D).log_prob(x).data)
    t_r1 = critic_on(fits1["r1"][0], x)
    t_r2 = critic_on(fits1["r2"][0], x)
    # log E_q[e^T] on the q sample: R2 leaves T's constant free, this fixes it
    log_normalizer = float(logsumexp(Tensor(critic_on(fits1["r2"][0], q1))).data) - np.log(args.n)
    axes.plot(x, log_ratio + 1, "k--", label="log(p/q) + 1 (optimal for R1)")
    axes.plot(x, t_r1, color="tab:orange", label="T learned on R1")
    axes.plot(x, log_ratio, "k:", label="log(p/q)")
    axes.plot(x, t_r2 - log_normalizer, color="tab:blue", label="T − log E_q[e^T], learned on R2")
    density = axes.twinx()
    density.fill_between(x, np.exp(Normal(LOC_P_1D, SCALE_P_1D).log_prob(x).data), alpha=0.15,
                         color="tab:red", label="p")
    density.fill_between(x, np.exp(Normal(LOC_Q_1D, SCALE_Q_1D).log_prob(x).data), alpha=0.15,
                         color="tab:green", label="q")
    density.set_ylabel("density (shaded)")
    density.set_ylim(0, 1.6)
    density.legend(loc="lower right", fontsize=8)
    axes.set_zorder(density.get_zorder() + 1)
    axes.patch.set_visible(False)
    axes.set_title(f"1-D: p = N({LOC_P_1D}, {SCALE_P_1D}²), q = N({LOC_Q_1D}, {SCALE_Q_1D}²); "
                   "learned critics vs optimal", fontsize=10)
    axes.set_xlabel("x")
    axes.set_ylabel("critic value")
    # below the axes: the critics fill the panel's upper half, the densities its lower one
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)

    axes = figure.add_subplot(2, 2, 4)
    for bound, color in (("r1", "tab:orange"), ("r2", "tab:blue")):
        history = fits1[bound][1]
        axes.plot(history.step, getattr(history, bound), color=color,
                  label=f"held-out {bound.upper()} of the critic trained on {bound.upper()}")
    axes.axhline(kl1, color="k", linestyle="--", label=f"KL(p‖q) = {kl1:.3f}")
    axes.set_ylim(-0.45, kl1 * 1.3 + 0.05)
    axes.set_title("1-D: each critic's own bound during training", fontsize=10)
    axes.set_xlabel("Adam step")
    axes.set_ylabel("bound (nats)")
    axes.legend(loc="lower right", fontsize=8)
    figure.subplots_adjust(hspace=0.55, wspace=0.42, bottom=0.14, top=0.93)
    path = save_png(figure, out / "bounds.png")

    for name, fits, kl in (("2-D", fits2, kl2), ("1-D", fits1, kl1)):
        for bound in ("r1", "r2"):
            history = fits[bound][1]
            print(f"{name} critic trained on {bound.upper()}: held-out R1 = {history.r1[-1]:.4f}, "
                  f"R2 = {history.r2[-1]:.4f}; KL = {kl:.4f}")
    paths = [path, conjugates_figure(out / "conjugates.png")]
    for path in paths:
        print(path.resolve())
    return paths


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

"""Demo: reverse KL seeks a mode, forward KL covers them all, on a two-mode Gaussian mixture.

The target is p = ½ N(−m, s²) + ½ N(m, s²); q = N(μ, σ²).  Writes two pictures to ``--out``:

* kl_fits.png — p with the reverse-KL fits (one started left, one right: mirror images on
  the two modes; one started wide: stuck in the centred local minimum) and the forward-KL fit
  (moment matching, spread over both modes);
* kl_landscape.png — the exact KL(q‖p) over (μ, log σ) by quadrature, its local minima and the
  fitting paths; beside it KL(p‖q), with its single minimum at the moments of p;
* kl_access.png — the table of which KL direction each kind of access to p and q allows (✓/✗),
  with each ✓ estimated from that access alone (``--draws`` draws) on p = N(0.4, 0.9²),
  q = N(0, 1), p̃ = e^3.7 p, next to the closed form.

Prints the same table, the estimates, and the fitted numbers.

    python demos/kl_directions.py --out runs/kl_directions
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.distributions import GaussianMixture
from minivae.divergences.kl_access import KL_ACCESS_TABLE, estimate_kl, format_kl_access_table
from minivae.divergences.kl_directions import (
    fit_forward_kl,
    fit_reverse_kl,
    forward_kl_1d,
    local_minima,
    reverse_kl_1d,
)
from minivae.divergences.quadrature import uniform_grid
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import add_quiet_argument, demo_parser, run_reporting_errors

PAIR = dict(p_loc=0.4, p_scale=0.9, q_loc=0.0, q_scale=1.0, log_z=3.7)  # the access table's pair
VERDICT_COLOURS = {"unbiased": "#c7e9c0", "consistent": "#fdf0b2", "up to −H(p)": "#fdf0b2",
                   "no": "#f6c6c6"}
STARTS = (("started left", -1.0, 0.5, "tab:blue"), ("started right", 1.0, 0.5, "tab:red"),
          ("started wide", 2.0, 5.0, "tab:purple"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/kl_directions", help="output folder")
    parser.add_argument("--separation", type=float, default=3.0, help="m: modes at ±m")
    parser.add_argument("--width", type=float, default=1.0, help="s: each mode's std")
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per reverse-KL fit")
    parser.add_argument("--samples", type=int, default=256, help="draws of q per step")
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--draws", type=int, default=20_000, help="samples of p for forward KL")
    parser.add_argument("--resolution", type=int, default=121, help="landscape points per axis")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def fits_figure(path, grid, density, fits, forward, m, s) -> Path:
    figure = new_figure(900, 480)
    axes = figure.add_subplot(1, 1, 1)
    axes.fill_between(grid, density, color="0.85",
                      label=f"p = ½N(−{m:g}, {s:g}²) + ½N({m:g}, {s:g}²)")
    for (label, _, _, color), fit in zip(STARTS, fits):
        mu, sigma = fit.loc[0], fit.scale[0]
        q = np.exp(-0.5 * ((grid - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        axes.plot(grid, q, color=color, linewidth=2,
                  label=f"reverse KL(q‖p), {label}: μ = {mu:+.3f}, σ = {sigma:.3f}")
    mu, sigma = forward.loc[0], forward.scale[0]
    q = np.exp(-0.5 * ((grid - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    axes.plot(grid, q, "k--", linewidth=2,
              label=f"forward KL(p‖q) = moment matching: μ = {mu:+.3f}, σ = {sigma:.3f}")
    axes.set_xlim(-m - 4 * s, m + 4 * s)
    axes.set_ylim(0, 0.5 / s)
    axes.set_xlabel("x")
    axes.set_ylabel("density")
    axes.set_title("Reverse KL seeks one mode (which one depends on the start); "
                   "forward KL covers both")
    axes.legend(loc="upper left", fontsize=8)
    return save_png(figure, path)


def landscape_figure(path, mus, log_sigmas, reverse, forward, fits, moments) -> Path:
    figure = new_figure(1300, 560)
    extent = dict(levels=40, cmap="viridis")
    axes = figure.add_subplot(1, 2, 1)
    # log of the excess over the minimum: the basins stay visible next to the steep walls
    shown = np.log10(reverse - reverse.min() + 1e-3)
    contour = axes.contourf(mus, log_sigmas, shown.T, **extent)
    figure.colorbar(contour, ax=axes, label="log₁₀(KL(q‖p) − min + 10⁻³)")
    for (label, _, _, color), fit in zip(STARTS, fits):
        axes.plot(fit.locs[:, 0], np.log(fit.scales[:, 0]), color=color, linewidth=1.2,
                  label=f"Adam path, {label}")
        axes.plot(fit.locs[0, 0], np.log(fit.scales[0, 0]), "o", color=color, markersize=5)
    for i, j in local_minima(reverse):
        axes.plot(mus[i], log_sigmas[j], "w*", markersize=14, markeredgecolor="k")
        axes.annotate(f"({mus[i]:+.2f}, {np.exp(log_sigmas[j]):.2f})\nKL = {reverse[i, j]:.3f}",
                      (mus[i], log_sigmas[j]), textcoords="offset points", xytext=(6, 8),
                      color="w", fontsize=8)
    axes.set_xlabel("μ")
    axes.set_ylabel("log σ")
    axes.set_title("reverse KL(q‖p): local minima ★ (annotated (μ, σ))", fontsize=10)
    axes.legend(loc="lower left", fontsize=7)
    axes = figure.add_subplot(1, 2, 2)
    contour = axes.contourf(mus, log_sigmas, np.log10(forward - forward.min() + 1e-3).T, **extent)
    figure.colorbar(contour, ax=axes, label="log₁₀(KL(p‖q) − min + 10⁻³)")
    for i, j in local_minima(forward):
        axes.plot(mus[i], log_sigmas[j], "w*", markersize=14, markeredgecolor="k")
    mu, sigma = moments
    axes.plot(mu, np.log(sigma), "r+", markersize=16, markeredgewidth=2,
              label=f"moments of p: μ = {mu:.2f}, σ = {sigma:.3f}")
    axes.set_xlabel("μ")
    axes.set_ylabel("log σ")
    axes.set_title("forward KL(p‖q): one minimum ★, at the moments of p", fontsize=10)
    axes.legend(loc="lower left", fontsize=8)
    figure.subplots_adjust(left=0.05, right=0.97, wspace=0.15)
    return save_png(figure, path)


def gaussian_kl(mu1, s1, mu2, s2) -> float:
    """KL(N(μ₁, s₁²) ‖ N(μ₂, s₂²)) = log(s₂/s₁) + (s₁² + (μ₁ − μ₂)²)/(2s₂²) − ½."""
    return float(np.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - 0.5)


def access_estimates(rng, n) -> list[dict]:
    """Per row of the access table and direction: the estimate from that row's access alone and
    the exact value it estimates (KL, or KL + H(p) for the cross-entropy); None where ✗."""
    p_loc, p_scale, q_loc, q_scale, log_z = PAIR.values()
    def log_normal(x, loc, scale):
        return -0.5 * np.log(2 * np.pi) - np.log(scale) - 0.5 * ((x - loc) / scale) ** 2
    everything = {"samples of p": ("p_samples", rng.normal(p_loc, p_scale, n)),
                  "log p": ("log_p", lambda x: log_normal(x, p_loc, p_scale)),
                  "log p̃": ("log_p_tilde", lambda x: log_normal(x, p_loc, p_scale) + log_z),
                  "samples of q": ("q_samples", rng.normal(q_loc, q_scale, n)),
                  "log q": ("log_q", lambda x: log_normal(x, q_loc, q_scale))}
    exact = {"forward": gaussian_kl(p_loc, p_scale, q_loc, q_scale),
             "reverse": gaussian_kl(q_loc, q_scale, p_loc, p_scale)}
    entropy = 0.5 * np.log(2 * np.pi * np.e * p_scale**2)
    table = []
    for row in KL_ACCESS_TABLE:
        access = dict(everything[name] for name in row.access)
        cells = {}
        for direction in ("forward", "reverse"):
            if getattr(row, direction) == "no":
                cells[direction] = None
                continue
            estimate = estimate_kl(direction, **access)
            shift = entropy if estimate.kind == "up to −H(p)" else 0.0
            cells[direction] = (estimate, exact[direction] + shift)
        table.append(cells)
    return table


def access_figure(path, estimates) -> Path:
    figure = new_figure(1400, 120 + 70 * len(KL_ACCESS_TABLE))
    axes = figure.add_subplot(1, 1, 1)
    axes.set_axis_off()
    text, colours = [], []
    for row, cells in zip(KL_ACCESS_TABLE, estimates):
        line, line_colours = [row.scenario, row.label], ["white", "white"]
        for direction in ("forward", "reverse"):
            verdict, cell = getattr(row, direction), cells[direction]
            if cell is None:
                line.append("✗  not computable")
            else:
                estimate, exact = cell
                extra = " + H(p)" if verdict == "up to −H(p)" else ""
                line.append(f"✓ {verdict}: {estimate.value:.4f} ± {estimate.standard_error:.4f}"
                            f"\n(exact KL{extra} = {exact:.4f})")
            line_colours.append(VERDICT_COLOURS[verdict])
        text.append(line)
        colours.append(line_colours)
    table = axes.table(cellText=text, cellColours=colours, loc="center", cellLoc="center",
                       colLabels=["scenario", "access", "forward KL(p‖q)", "reverse KL(q‖p)"],
                       colWidths=[0.16, 0.3, 0.27, 0.27])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 3.2)
    p_loc, p_scale, q_loc, q_scale, log_z = PAIR.values()
    axes.set_title(f"What each kind of access allows, estimated from that access alone: "
                   f"p = N({p_loc}, {p_scale}²), q = N({q_loc}, {q_scale}²), p̃ = e^{log_z} p "
                   "(estimate ± SE)", fontsize=10)
    return save_png(figure, path)


def main(args: argparse.Namespace) -> list[Path]:
    m, s = args.separation, args.width
    checks.positive(m, "--separation"), checks.positive(s, "--width")
    checks.int_at_least(args.resolution, "--resolution", 5)
    checks.int_at_least(args.draws, "--draws", 2)
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)
    target = GaussianMixture(np.zeros(2), np.array([[-m], [m]]), np.array([[s], [s]]))
    print(format_kl_access_table(), end="\n\n")
    estimates = access_estimates(rng, args.draws)
    for row, cells in zip(KL_ACCESS_TABLE, estimates):
        for direction, cell in cells.items():
            if cell is not None:
                print(f"{row.scenario:<26} {direction:<7} {cell[0].kind:<12} "
                      f"{cell[0].value:.4f} ± {cell[0].standard_error:.4f}, exact {cell[1]:.4f}")
    print()

    fits = [fit_reverse_kl(target.log_prob, loc * m / 3, scale * s, steps=args.steps,
                           samples=args.samples, lr=args.lr, rng=rng,
                           progress=not args.quiet) for _, loc, scale, _ in STARTS]
    forward = fit_forward_kl(target.sample(rng, (args.draws,)).data)
    moments = (0.0, float(np.sqrt(s**2 + m**2)))

    mus = np.linspace(-2 * m, 2 * m, args.resolution)
    log_sigmas = np.linspace(np.log(0.3 * s), np.log(2 * moments[1]), args.resolution)
    reach = 2 * m + 13 * 2 * moments[1]  # every q of the landscape lies well inside the grid
    grid = uniform_grid(-reach, reach, 8001)
    log_p = target.log_prob(grid[:, None]).data
    mu_grid, sigma_grid = np.meshgrid(mus, np.exp(log_sigmas), indexing="ij")
    reverse = reverse_kl_1d(log_p, mu_grid, sigma_grid, grid)
    forward_landscape = forward_kl_1d(log_p, mu_grid, sigma_grid, grid)

    for (label, *_), fit in zip(STARTS, fits):
        exact = reverse_kl_1d(log_p, fit.loc[0], fit.scale[0], grid)
        print(f"reverse KL(q‖p), {label:<13}: μ = {fit.loc[0]:+.4f}, σ = {fit.scale[0]:.4f}, "
              f"exact KL(q‖p) = {exact:.4f}")
    print(f"forward KL(p‖q), moment matched: μ = {forward.loc[0]:+.4f}, "
          f"σ = {forward.scale[0]:.4f}  (p has mean 0, σ = √(s² + m²) = {moments[1]:.4f}), "
          f"exact KL(p‖q) = {forward_kl_1d(log_p, forward.loc[0], forward.scale[0], grid):.4f}")
    for i, j in local_minima(reverse):
        print(f"reverse-KL landscape local minimum: μ = {mus[i]:+.3f}, "
              f"σ = {np.exp(log_sigmas[j]):.3f}, KL = {reverse[i, j]:.4f}")

    density = np.exp(log_p)
    paths = [fits_figure(out / "kl_fits.png", grid, density, fits, forward, m, s),
             landscape_figure(out / "kl_landscape.png", mus, log_sigmas, reverse,
                              forward_landscape, fits, moments),
             access_figure(out / "kl_access.png", estimates)]
    for path in paths:
        print(path.resolve())
    return paths


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

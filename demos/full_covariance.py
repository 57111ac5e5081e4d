"""Demo: posterior ellipses of a diagonal-Gaussian VAE and a full-covariance VAE, with z_dim = 2.

The models differ only in q(z|x): the VAE's N(μ, diag σ²) has axis-aligned ellipses, the
FullCovarianceVAE's N(μ, LLᵀ) can tilt them.  With two latent dimensions the true posterior
p(z|x) ∝ p(x|z) p(z) can be computed on a grid, so the pictures show how well each q fits it:

    latent_space.png  test codes μ(x) coloured by digit, and q(z|x)'s 1- and 2-σ ellipses
                      (Mahalanobis radius 1 and 2: 39% and 86% of q's mass) for one test digit
                      of each class; a panel per model;
    posteriors.png    for the same digits, p(z|x) on a grid (blue: the regions holding 39% and
                      86% of its mass) with q's ellipses on top; a row per model.

The first table gives each model's test ELBO, log p(x) (importance sampling) and the gap
log p(x) − ELBO = E_x[KL(q(z|x) ‖ p(z|x))].  The two models are trained separately, so they end
with different decoders, and their log p(x) can differ by more than the tenths of a nat that a
tilted q can gain.  The second table isolates that gain without noise: for each shown digit,
KL(q ‖ p(z|x)) by quadrature for the encoder's q and for the best Gaussian of each family
(found by minimizing the quadrature KL), so that

    log p(x) − ELBO(q_φ) = [KL(q_φ ‖ p) − min_q KL(q ‖ p)] + min_q KL(q ‖ p)
                           amortization (the encoder)      approximation (the family)

and the approximation term is what the full covariance shrinks.

    python demos/full_covariance.py --epochs 20 --out runs/full_covariance
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.patches import Ellipse
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.distributions import MultivariateNormal, scale_tril_from_unconstrained
from minivae.engine.tensor import Tensor, no_grad
from minivae.io.json_text import write_json
from minivae.io.plots import new_figure, save_png
from minivae.models import VAE
from minivae.models.full_covariance import FullCovarianceVAE
from minivae.objectives.likelihood import importance_sampling_log_likelihood, standard_error
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.train import TEST_BINARIZATION_SEED

Z_DIM = 2
RADII = (1.0, 2.0)  # Mahalanobis radii: in 2-D, P(‖L⁻¹(z − μ)‖ ≤ r) = 1 − exp(−r²/2)
MASSES = tuple(1.0 - np.exp(-0.5 * r * r) for r in RADII)  # 0.39, 0.86
RUNS = {"diagonal": "VAE, q = N(μ, diag σ²)", "full": "FullCovarianceVAE, q = N(μ, LLᵀ)"}
GRID_POINTS = 121
COLUMNS = (("elbo", "test ELBO", 17), ("log_px", "log p(x)", 17), ("gap", "gap", 14))


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[200])
    parser.add_argument("--k-eval", type=int, default=1000,
                        help="importance samples per test image for log p(x)")
    parser.add_argument("--elbo-draws", type=int, default=20,
                        help="noise draws averaged into each test image's ELBO")
    parser.add_argument("--n-test", type=int, default=1000,
                        help="score N test images spread evenly over the split")
    parser.add_argument("--max-train", type=int, default=None,
                        help="train on N training images only, spread evenly (quick checks)")
    parser.add_argument("--fit-steps", type=int, default=200,
                        help="Adam steps for each shown digit's best Gaussian of each family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/full_covariance")
    add_quiet_argument(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "k_eval", "elbo_draws", "n_test", "fit_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got "
                         f"{getattr(args, name)}")
    return args


def spread(total: int, n: int | None) -> np.ndarray:
    """n indices spread evenly over 0..total−1 (all of them if n is None or ≥ total): mnist-5k
    is sorted by digit, so the first n images would hold only a few classes."""
    if n is None or n >= total:
        return np.arange(total)
    return np.linspace(0, total - 1, n).round().astype(int)


def build(run: str, args) -> VAE:
    model_class = FullCovarianceVAE if run == "full" else VAE
    return model_class(784, hidden=tuple(args.hidden), z_dim=Z_DIM,
                       rng=np.random.default_rng(args.seed))


def train_model(model, pixels: np.ndarray, args, run: str) -> list[float]:
    """Adam on −ELBO with a fresh binarization each epoch; the mean training ELBO per epoch."""
    optimizer = Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed + 1)
    history = []
    for _ in tqdm(range(args.epochs), desc=f"{run}: training epochs", disable=args.quiet,
                  leave=False):
        total = 0.0
        batches = minibatches(binarize_dynamic(pixels, rng), args.batch_size, rng)
        for batch in threads.adaptive(batches):  # BLAS threads measured (minivae.threads)
            model.zero_grad()
            elbo = model.elbo(batch, rng)
            (-elbo.mean()).backward()
            optimizer.step()
            total += float(elbo.data.sum(dtype=np.float64))
        history.append(total / len(pixels))
    return history


def posterior_moments(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q(z|x)'s means (B, 2) and covariances (B, 2, 2), for either kind of encoder."""
    with no_grad():
        q = model.encode(x)
        if isinstance(q, MultivariateNormal):
            return q.loc.data, q.covariance_matrix.data
        return q.loc.data, (q.scale.data ** 2)[:, :, None] * np.eye(Z_DIM)


def score_test_set(model, x: np.ndarray, args) -> dict[str, np.ndarray]:
    """Per-image ELBO (averaged over noise draws) and importance-sampled log p(x)."""
    rng = np.random.default_rng(args.seed + 2)
    with no_grad():
        elbo = np.mean([model.elbo(x, rng).data for _ in range(args.elbo_draws)], axis=0)
    log_px, _ = importance_sampling_log_likelihood(model, x, args.k_eval, rng, batch_size=100,
                                                   progress=not args.quiet)
    return {"elbo": elbo.astype(np.float64), "log_px": log_px,
            "gap": log_px - elbo.astype(np.float64)}


def posterior_on_grid(model, x_row, center, half_width) -> dict:
    """log p(z|x) on a GRID_POINTS² grid: points z (G, 2), their log densities, the cell area,
    log p(x) = log Σ p(x, z) · cell (the midpoint rule), and p's mean and covariance."""
    axes = [np.linspace(c - half_width, c + half_width, GRID_POINTS) for c in center]
    z = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, Z_DIM)
    with no_grad():
        log_joint = model.log_joint(x_row[None], Tensor(z[:, None].astype(x_row.dtype))).data
    log_joint = log_joint[:, 0].astype(np.float64)
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    peak = log_joint.max()
    log_px = peak + np.log(np.exp(log_joint - peak).sum() * cell)
    p = np.exp(log_joint - log_px) * cell  # probability of each cell
    mean = p @ z
    covariance = (p[:, None] * (z - mean)).T @ (z - mean)
    return {"axes": axes, "z": z, "log_density": log_joint - log_px, "cell": cell,
            "p": p.reshape(GRID_POINTS, GRID_POINTS), "log_px": log_px, "mean": mean,
            "covariance": covariance}


def exact_posterior(model, x_row, q_mean, q_covariance) -> dict:
    """p(z|x) on a grid found in two passes: a wide one around q, then one fitted to p."""
    largest_q = np.sqrt(np.linalg.eigvalsh(q_covariance).max())
    wide = posterior_on_grid(model, x_row, q_mean, 6.0 * largest_q)
    largest = max(largest_q, np.sqrt(np.linalg.eigvalsh(wide["covariance"]).max()))
    return posterior_on_grid(model, x_row, wide["mean"], 3.5 * largest)


def kl_on_grid(loc, scale_tril, grid: dict) -> Tensor:
    """KL(q ‖ p(z|x)) = ∫ q(z) [log q(z) − log p(z|x)] dz by the midpoint rule on the grid."""
    log_q = MultivariateNormal(loc, scale_tril, validate_args=False).log_prob(grid["z"])
    return (log_q.exp() * (log_q - grid["log_density"])).sum() * grid["cell"]


def best_gaussian_kl(grid: dict, family: str, steps: int) -> float:
    """min over q = N(m, S) in the family ("diagonal" or "full") of KL(q ‖ p(z|x)), by Adam,
    started from p's mean and (the diagonal of) its covariance.  The variables are m and the
    unconstrained entries of S's Cholesky factor (softplus diagonal), in units of p's
    marginal standard deviations; this rescaling maps each family onto itself."""
    sd = np.sqrt(np.diag(grid["covariance"]))
    standardized = {"z": (grid["z"] - grid["mean"]) / sd, "cell": grid["cell"] / sd.prod(),
                    "log_density": grid["log_density"] + np.log(sd).sum()}
    correlation_matrix = grid["covariance"] / np.outer(sd, sd)
    mask = np.tril(np.ones((Z_DIM, Z_DIM))) if family == "full" else np.eye(Z_DIM)
    start = np.linalg.cholesky(correlation_matrix if family == "full" else np.eye(Z_DIM))
    start[np.diag_indices(Z_DIM)] = np.log(np.expm1(np.diag(start)))  # softplus⁻¹
    loc, raw = Tensor(np.zeros(Z_DIM), requires_grad=True), Tensor(start, requires_grad=True)
    optimizer, best = Adam([loc, raw], lr=0.02), np.inf
    for _ in range(steps):
        optimizer.zero_grad()
        kl = kl_on_grid(loc, scale_tril_from_unconstrained(raw * mask), standardized)
        best = min(best, float(kl.data))
        kl.backward()
        optimizer.step()
    return best


def correlation(covariance: np.ndarray) -> float:
    return float(covariance[0, 1] / np.sqrt(covariance[0, 0] * covariance[1, 1]))


def draw_ellipses(axes, mean, covariance, color) -> None:
    values, vectors = np.linalg.eigh(covariance)  # ascending: the major axis is the last
    angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
    for radius, style in zip(RADII, ("-", "--")):
        width, height = 2 * radius * np.sqrt(values[::-1])
        axes.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, color=color,
                               linestyle=style, linewidth=1.6))


def draw_latent_space(path: Path, moments: dict, labels: np.ndarray, shown: np.ndarray) -> Path:
    figure = new_figure(600 * len(RUNS), 640)
    for column, run in enumerate(RUNS):
        axes = figure.add_subplot(1, len(RUNS), column + 1)
        means, covariances = moments[run]
        for digit in range(10):
            axes.scatter(*means[labels == digit].T, s=4, color=f"C{digit}", alpha=0.25)
        for i in shown:
            draw_ellipses(axes, means[i], covariances[i], f"C{labels[i]}")
            axes.annotate(str(labels[i]), means[i], fontsize=11, weight="bold", ha="center",
                          va="center")
        axes.set_title(f"{RUNS[run]}\ndots: test μ(x); q's 1σ (solid) and 2σ (dashed)",
                       fontsize=10)
        axes.set_xlabel("z₁")
        axes.set_ylabel("z₂")
        axes.set_aspect("equal", adjustable="datalim")
    return save_png(figure, path, tight_layout=True)


def draw_posteriors(path: Path, exact: dict, moments: dict, shown, labels) -> Path:
    figure = new_figure(150 * len(shown) + 80, 150 * len(RUNS) + 60)
    for row, run in enumerate(RUNS):
        means, covariances = moments[run]
        for column, i in enumerate(shown):
            axes = figure.add_subplot(len(RUNS), len(shown), row * len(shown) + column + 1)
            grid = exact[run][column]
            ranked = np.sort(grid["p"].ravel())[::-1]  # highest-density levels holding MASSES
            levels = [ranked[min(np.searchsorted(np.cumsum(ranked), m), len(ranked) - 1)]
                      for m in MASSES[::-1]]
            axes.contourf(*grid["axes"], grid["p"].T, levels=[*levels, ranked[0] * 1.01],
                          colors=["#c6dbef", "#6baed6"])
            draw_ellipses(axes, means[i], covariances[i], "C3")
            axes.set_xticks([])
            axes.set_yticks([])
            axes.set_aspect("equal", adjustable="datalim")
            if row == 0:
                axes.set_title(f"digit {labels[i]}", fontsize=10)
            if column == 0:
                axes.set_ylabel(run.replace("_", " "), fontsize=10)
    figure.suptitle("p(z|x) on a grid (blue: its 39% and 86% regions) and q(z|x)'s 1σ and 2σ "
                    "ellipses (red)", fontsize=11)
    return save_png(figure, path, tight_layout=True)


def summarize(values: np.ndarray) -> list[float]:
    return [float(values.mean()), standard_error(values)]


def print_table(scores: dict, exact: dict, moments: dict, labels, shown, args) -> dict:
    n_test = len(scores["diagonal"]["elbo"])
    print(f"\n{args.dataset}, z_dim = 2, 784-{'-'.join(map(str, args.hidden))}-2 tanh, "
          f"{args.epochs} epochs, Adam lr {args.lr:g}, batch {args.batch_size}, seed {args.seed}; "
          f"{n_test} test images binarized once (seed {TEST_BINARIZATION_SEED}).\nNats per image "
          f"± standard error over images; ELBO averaged over {args.elbo_draws} draws, log p(x) "
          f"by importance sampling with k = {args.k_eval}; gap = log p(x) − ELBO.")
    rows = {run: {key: summarize(scores[run][key]) for key, _, _ in COLUMNS} for run in RUNS}
    rows["full − diagonal"] = {key: summarize(scores["full"][key] - scores["diagonal"][key])
                               for key, _, _ in COLUMNS}
    print(f"\n{'q(z|x)':>16}" + "".join(f"{title:>{width}}" for _, title, width in COLUMNS))
    for name, row in rows.items():
        cells = "".join(f"{f'{row[key][0]:+.2f} ± {row[key][1]:.2f}':>{width}}"
                        for key, _, width in COLUMNS)
        print(f"{name:>16}{cells}" + ("   (paired, same images)" if "−" in name else ""))
    print(f"\nShown digits, p(z|x) on a {GRID_POINTS}² grid: log p(x) by quadrature, the "
          f"correlation ρ of p(z|x) and of the encoder's q,\nand KL(· ‖ p(z|x)) by quadrature "
          f"(no sampling noise) for the encoder's q and for the best diagonal and best full "
          f"Gaussian\n(min over each family, {args.fit_steps} Adam steps; the full family "
          f"contains the diagonal one, so its minimum is never larger:\nthe difference is "
          f"what tilting q can buy).")
    print(f"\n{'model':>8} {'digit':>5} {'log p(x)':>9} {'ρ(p)':>6} {'ρ(q)':>6} "
          f"{'KL(q_φ‖p)':>10} {'min diag KL':>12} {'min full KL':>12}")
    keys = ("log_px", "rho_p", "rho_q", "kl_encoder", "kl_diagonal", "kl_full")
    for run in RUNS:
        rows[f"shown_{run}"] = []
        for column, i in enumerate(shown):
            grid = exact[run][column]
            covariance = moments[run][1][i]
            values = (grid["log_px"], correlation(grid["covariance"]), correlation(covariance),
                      grid["kl_encoder"], grid["kl_diagonal"], grid["kl_full"])
            rows[f"shown_{run}"].append({"digit": int(labels[i]), **dict(zip(keys, values))})
            print(f"{run:>8} {labels[i]:5d} {values[0]:9.2f} {values[1]:+6.2f} {values[2]:+6.2f} "
                  f"{values[3]:10.3f} {values[4]:12.3f} {values[5]:12.3f}")
        means = [np.mean([row[key] for row in rows[f"shown_{run}"]]) for key in keys[3:]]
        print(f"{run:>8} {'mean':>5} {'':>9} {'':>6} {'':>6} {means[0]:10.3f} {means[1]:12.3f} "
              f"{means[2]:12.3f}")
    return rows


def main(args: argparse.Namespace) -> list[Path]:
    out = Path(args.out)
    train = load_dataset(args.dataset, "train", root=args.data_root).pixels(np.float32)
    test = load_dataset(args.dataset, "test", root=args.data_root)
    train = train[spread(len(train), checks.positive_int(args.max_train, "--max-train",
                                                         optional=True))]
    chosen = spread(len(test), args.n_test)
    test_x = binarize_dynamic(test.pixels(np.float32)[chosen],
                              np.random.default_rng(TEST_BINARIZATION_SEED))
    labels = test.labels[chosen]
    shown = np.array([np.flatnonzero(labels == d)[0] for d in range(10) if np.any(labels == d)])
    models, history, scores, moments, exact, seconds = {}, {}, {}, {}, {}, {}
    for run in RUNS:
        start = time.perf_counter()
        models[run] = build(run, args)
        history[run] = train_model(models[run], train, args, run)
        scores[run] = score_test_set(models[run], test_x, args)
        moments[run] = means, covariances = posterior_moments(models[run], test_x)
        exact[run] = [exact_posterior(models[run], test_x[i], means[i], covariances[i])
                      for i in shown]
        for grid, i in tqdm(list(zip(exact[run], shown)), desc=f"{run}: best Gaussians",
                            disable=args.quiet, leave=False):
            q = [Tensor(means[i].astype(np.float64)),
                 Tensor(np.linalg.cholesky(covariances[i].astype(np.float64)))]
            grid["kl_encoder"] = float(kl_on_grid(*q, grid).data)
            for family in ("diagonal", "full"):
                grid[f"kl_{family}"] = best_gaussian_kl(grid, family, args.fit_steps)
        seconds[run] = time.perf_counter() - start
        print(f"{run}: trained and scored in {seconds[run]:.0f} s, last training ELBO "
              f"{history[run][-1]:.2f}", flush=True)
    pictures = [draw_latent_space(out / "latent_space.png", moments, labels, shown),
                draw_posteriors(out / "posteriors.png", exact, moments, shown, labels)]
    rows = print_table(scores, exact, moments, labels, shown, args)
    write_json(out / "results.json", {"args": vars(args), "rows": rows, "seconds": seconds,
                                      "train_elbo": history})
    print("\n" + "\n".join(map(str, pictures)) + f"\n{out / 'results.json'}")
    return pictures


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

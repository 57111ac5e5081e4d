"""Demo: what reparameterized samplers draw, next to the distributions they stand for.

Writes four pictures to ``--out``:

* exponential.png — the inverse-CDF sampler z = −log(1 − u)/λ against NumPy's own exponential
  sampler and the density λe^(−λz): the same distribution, but only the first is a
  differentiable function of λ;
* gumbel_softmax.png — relaxed one-hot samples softmax((l + G)/τ) at several temperatures: hot
  samples are smeared over the classes, cold ones approach the one-hot draws of the Categorical
  whose probabilities are drawn alongside;
* gumbel_argmax.png — the argmax of relaxed samples at τ = 0.1, 1 and 10 against direct
  Categorical draws, for a = (0.1, 0.2, 0.5, 0.2): the argmax is an exact categorical draw at
  every τ (scipy's χ² goodness-of-fit p-values in the legend);
* gaussian.png — draws of z = μ + Lε and the 1-, 2- and 3-σ ellipses of Σ = LLᵀ.

    python demos/samplers.py --out runs/samplers
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from minivae import checks
from minivae.distributions import (
    Categorical,
    Exponential,
    MultivariateNormal,
    RelaxedOneHotCategorical,
)
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.program import demo_parser, run_reporting_errors


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/samplers", help="output folder for the pictures")
    parser.add_argument("--n", type=int, default=20_000, help="draws per histogram")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def exponential_figure(path: Path, n: int, rng: np.random.Generator) -> Path:
    rate = 1.5
    reparameterized = Exponential(rate).rsample(rng, (n,)).data
    direct = rng.exponential(1.0 / rate, n)
    figure = new_figure(720, 420)
    axes = figure.add_subplot(1, 1, 1)
    bins = np.linspace(0.0, 4.0, 61)
    axes.hist(direct, bins, density=True, alpha=0.45, label="NumPy's sampler")
    axes.hist(reparameterized, bins, density=True, histtype="step", linewidth=2,
              label="inverse CDF: −log(1 − u)/λ")
    grid = np.linspace(0.0, 4.0, 200)
    axes.plot(grid, rate * np.exp(-rate * grid), "k--", label="density λe^(−λz)")
    axes.set_title(f"Exponential(λ = {rate}): {n:,} draws each")
    axes.set_xlabel("z")
    axes.legend()
    return save_png(figure, path)


def gumbel_softmax_figure(path: Path, n: int, rng: np.random.Generator) -> Path:
    probs = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = np.log(probs)
    temperatures = (5.0, 1.0, 0.5, 0.1)
    figure = new_figure(1100, 520)
    classes = np.arange(len(probs))
    for column, tau in enumerate(temperatures):
        samples = RelaxedOneHotCategorical(tau, logits=logits).rsample(rng, (n,)).data
        axes = figure.add_subplot(2, len(temperatures), column + 1)
        for row in samples[:6]:  # six single draws, as stacked bars
            axes.plot(classes, row, marker="o", alpha=0.7)
        axes.set_ylim(-0.05, 1.05)
        axes.set_title(f"τ = {tau}: six draws")
        axes.set_xticks(classes)
        axes = figure.add_subplot(2, len(temperatures), len(temperatures) + column + 1)
        axes.hist(samples.max(axis=1), np.linspace(0, 1, 41), color="tab:purple")
        axes.set_xlabel("largest coordinate")
        if column == 0:
            axes.set_ylabel("count")
    hard = Categorical(logits=logits).sample(rng, (n,))
    hard = np.asarray(getattr(hard, "data", hard)).astype(int)
    frequencies = np.bincount(hard, minlength=len(probs)) / n
    figure.suptitle("Gumbel-softmax softmax((l + G)/τ) with p = "
                    + ", ".join(f"{p:.2f}" for p in probs)
                    + ";  Gumbel-max frequencies " + ", ".join(f"{f:.2f}" for f in frequencies))
    figure.subplots_adjust(hspace=0.45, wspace=0.3)
    return save_png(figure, path)


def gumbel_argmax_figure(path: Path, n: int, rng: np.random.Generator) -> Path:
    probs = np.array([0.1, 0.2, 0.5, 0.2])
    classes = np.arange(len(probs))
    direct = np.asarray(Categorical(probs=probs).sample(rng, (n,))).astype(int)
    counts = {"Categorical(a).sample": np.bincount(direct, minlength=len(probs))}
    for tau in (0.1, 1.0, 10.0):
        y = RelaxedOneHotCategorical(tau, probs=probs).rsample(rng, (n,)).data
        counts[f"argmax of Gumbel-softmax, τ = {tau:g}"] = np.bincount(np.argmax(y, axis=-1),
                                                                        minlength=len(probs))
    figure = new_figure(820, 460)
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / len(counts)
    for i, (name, count) in enumerate(counts.items()):
        p_value = stats.chisquare(count, n * probs).pvalue
        axes.bar(classes + (i - (len(counts) - 1) / 2) * width, count / n, width,
                 label=f"{name} (χ² p = {p_value:.2f})")
    axes.plot(classes, probs, "k_", markersize=40, markeredgewidth=2, label="a (exact)")
    axes.set_xticks(classes)
    axes.set_xlabel("class")
    axes.set_ylabel(f"frequency in {n:,} draws")
    axes.set_title("one_hot(argmax softmax((log a + G)/τ)) is Categorical(a) at every τ")
    axes.legend(fontsize=8, loc="upper right")
    return save_png(figure, path, tight_layout=True)


def gaussian_figure(path: Path, n: int, rng: np.random.Generator) -> Path:
    loc = np.array([1.0, -0.5])
    scale_tril = np.array([[1.2, 0.0], [0.9, 0.5]])
    draws = MultivariateNormal(loc, scale_tril).rsample(rng, (min(n, 3000),)).data
    covariance = scale_tril @ scale_tril.T
    figure = new_figure(560, 560)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(draws[:, 0], draws[:, 1], s=3, alpha=0.3, label="μ + Lε")
    # the k-σ ellipse is μ + k L (cos t, sin t): L maps the unit circle onto it
    t = np.linspace(0.0, 2.0 * np.pi, 200)
    circle = np.stack([np.cos(t), np.sin(t)])
    for k in (1, 2, 3):
        ellipse = loc[:, None] + k * scale_tril @ circle
        axes.plot(ellipse[0], ellipse[1], "k", linewidth=1)
    sample_covariance = np.cov(draws.T)
    axes.set_title("z = μ + Lε with Σ = LLᵀ = "
                   f"[[{covariance[0, 0]:.2f}, {covariance[0, 1]:.2f}], "
                   f"[{covariance[1, 0]:.2f}, {covariance[1, 1]:.2f}]]\n"
                   f"sample covariance [[{sample_covariance[0, 0]:.2f}, "
                   f"{sample_covariance[0, 1]:.2f}], [{sample_covariance[1, 0]:.2f}, "
                   f"{sample_covariance[1, 1]:.2f}]]", fontsize=9)
    axes.set_aspect("equal")
    axes.set_xlabel("z₁")
    axes.set_ylabel("z₂")
    axes.plot([], [], "k", linewidth=1, label="1-, 2-, 3-σ ellipses of Σ")
    axes.legend(loc="upper left")
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> list[Path]:
    checks.int_at_least(args.n, "--n", 100)
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)
    paths = [exponential_figure(out / "exponential.png", args.n, rng),
             gumbel_softmax_figure(out / "gumbel_softmax.png", args.n, rng),
             gumbel_argmax_figure(out / "gumbel_argmax.png", args.n, rng),
             gaussian_figure(out / "gaussian.png", args.n, rng)]
    for path in paths:
        print(path.resolve())
    return paths


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

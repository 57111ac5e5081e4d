"""Demo: how noisy five ELBO gradient estimators are while a VAE learns real digits.

A small Bernoulli VAE is trained on the embedded 5,000 MNIST digits with the pathwise
(reparameterization) estimator.  Every ``--every`` steps, on one fixed batch, the gradient of the
ELBO with respect to the encoder's outputs (μ, log σ²) is estimated ``--replicas`` times with
fresh noise by each estimator of ``minivae.objectives.gradients``:

* score function (REINFORCE), (f − b) ∇ log q(z) with b = 0;
* score function with the leave-one-out baseline b_s = mean of the other sample's f;
* pathwise, z = μ + σε;
* sticking the landing (STL): pathwise without the score term ∇ log q(z)|_z;
* the score term as a control variate: path − c · score, with the c of least variance fitted
  on other draws (c = 1 is pathwise, c = 0 is STL; ``optimal_score_weight``).

Each estimate averages 2 samples (the leave-one-out baseline needs two), the same for all five.
The mean over coordinates of the per-coordinate variance is plotted on a log scale to
gradient_variance.png in ``--out`` and printed as a table with the fitted c, next to the
variance as a function of c at the last measurement (a parabola through STL and pathwise).

    python demos/gradient_estimators.py --out runs/gradient_estimators
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from minivae import checks
from minivae.data import binarize_dynamic, load_dataset
from minivae.distributions import DiagonalNormal
from minivae.engine.tensor import Tensor, no_grad
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.models import VAE
from minivae.objectives.gradients import elbo_surrogate, optimal_score_weight
from minivae.optim import Adam
from minivae.program import demo_parser, run_reporting_errors

# name shown → (estimator, baseline); the control variate's weight is fitted at each step
ESTIMATORS = {"score": ("score", None), "score + baseline": ("score", "mean"),
              "pathwise": ("pathwise", None), "STL": ("stl", None),
              "control variate": ("control_variate", None)}
SAMPLES_PER_ESTIMATE = 2
PROBE_BATCH = 16  # images in the fixed batch the variances are measured on


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gradient_estimators",
                        help="output folder for the picture")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (Adam)")
    parser.add_argument("--every", type=int, default=100,
                        help="measure the variances every this many steps")
    parser.add_argument("--replicas", type=int, default=50,
                        help="independent estimates per variance measurement")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class EncoderOutputs:
    """The VAE's decoder with q fixed to N(μ, diag exp(log σ²)) for given leaf Tensors, so that
    backward() leaves ∂/∂μ and ∂/∂log σ² in them: the model protocol of ``elbo_surrogate``."""

    def __init__(self, vae: VAE, loc: Tensor, log_var: Tensor):
        self.vae, self.q = vae, DiagonalNormal(loc, log_var)

    def encode(self, x) -> DiagonalNormal:
        return self.q

    def log_joint(self, x, z) -> Tensor:
        return self.vae.log_joint(x, z)


def encoder_gradients(vae: VAE, x: np.ndarray, outputs: np.ndarray, replicas: int,
                      rng: np.random.Generator, estimator: str, baseline=None,
                      score_weight=None) -> tuple[np.ndarray, float]:
    """``replicas`` independent estimates of ∂ELBO/∂(μ, log σ²) on the batch x, shape
    (replicas, coordinates), and the mean ELBO estimate.

    The batch is stacked ``replicas`` times with the encoder ``outputs`` copied into leaf
    Tensors: replica r of image i is an independent estimate, and its gradient lands in its
    own row.
    """
    loc = Tensor(np.tile(outputs[:, :vae.z_dim], (replicas, 1)), requires_grad=True)
    log_var = Tensor(np.tile(outputs[:, vae.z_dim:], (replicas, 1)), requires_grad=True)
    value = elbo_surrogate(EncoderOutputs(vae, loc, log_var), np.tile(x, (replicas, 1)), rng,
                           estimator, SAMPLES_PER_ESTIMATE, baseline, score_weight)
    value.sum().backward()
    grads = np.concatenate([loc.grad, log_var.grad], axis=1).reshape(replicas, -1)
    vae.zero_grad()  # the decoder's parameters received gradients too; training must not see them
    return grads.astype(np.float64), float(value.data.mean(dtype=np.float64))


def path_and_score(vae: VAE, x: np.ndarray, outputs: np.ndarray, replicas: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Paired draws of the path term (STL's gradient) and the score term (STL's minus the
    pathwise gradient with the same noise ε)."""
    def with_noise(estimator):
        return encoder_gradients(vae, x, outputs, replicas, np.random.default_rng(seed),
                                 estimator)[0]
    path = with_noise("stl")
    return path, path - with_noise("pathwise")


def gradient_variances(vae: VAE, x: np.ndarray, replicas: int,
                       rng: np.random.Generator) -> tuple[dict, float, dict]:
    """Mean per-coordinate variance of each estimator of ∂ELBO/∂(μ, log σ²) on the batch x,
    the pathwise ELBO estimate, and the control variate's fitted c with the parabola
    Var(c) = Var(path) − 2c Cov + c² Var(score) (means over coordinates) it minimizes."""
    with no_grad():
        outputs = vae.encoder(Tensor(x)).data
    # c is fitted on draws of its own, so that it is independent of the draws it is used on
    path, score = path_and_score(vae, x, outputs, replicas, int(rng.integers(2 ** 63)))
    fit = {"c": optimal_score_weight(path, score), "var_path": float(path.var(0, ddof=1).mean()),
           "var_score": float(score.var(0, ddof=1).mean()),
           "cov": float(((path - path.mean(0)) * (score - score.mean(0))).sum(0).mean()
                        / (len(path) - 1))}
    variances, elbo = {}, float("nan")
    for name, (estimator, baseline) in ESTIMATORS.items():
        weight = fit["c"] if estimator == "control_variate" else None
        grads, value = encoder_gradients(vae, x, outputs, replicas, rng, estimator, baseline,
                                         weight)
        variances[name] = float(grads.var(axis=0, ddof=1).mean())
        if estimator == "pathwise":
            elbo = value
    return variances, elbo, fit


def plot(path: Path, table: list[dict]) -> Path:
    figure = new_figure(1500, 460)
    steps = [row["step"] for row in table]
    axes = figure.add_subplot(1, 3, 1)
    for name in ESTIMATORS:
        axes.plot(steps, [row[name] for row in table], marker="o", label=name)
    axes.set_yscale("log")
    axes.set_xlabel("training step")
    axes.set_ylabel("variance per coordinate of ∂ELBO/∂(μ, log σ²)")
    axes.set_title(f"gradient estimators ({SAMPLES_PER_ESTIMATE} samples each)")
    axes.legend()
    axes = figure.add_subplot(1, 3, 2)
    axes.plot(steps, [row["elbo"] for row in table], marker="o", color="black")
    axes.set_xlabel("training step")
    axes.set_ylabel("ELBO (nats per image)")
    axes.set_title("ELBO on the fixed batch (pathwise training)")
    axes = figure.add_subplot(1, 3, 3)
    for row, color in ((table[0], "tab:blue"), (table[-1], "tab:red")):
        c = np.linspace(min(-1.5, row["c"] - 0.5), max(1.5, row["c"] + 0.5), 200)
        axes.plot(c, row["var_path"] - 2 * c * row["cov"] + c ** 2 * row["var_score"],
                  color=color, label=f"step {row['step']}: fitted on other draws")
        for name, weight, marker in (("STL", 0.0, "s"), ("pathwise", 1.0, "^"),
                                     ("control variate", row["c"], "o")):
            axes.plot([weight], [row[name]], marker=marker, color=color, linestyle="none",
                      label=f"{name} (c = {weight:.2f}), measured")
    axes.set_yscale("log")
    axes.set_xlabel("c in path − c · score")
    axes.set_ylabel("variance per coordinate")
    axes.set_title("variance against c (STL: c = 0, pathwise: c = 1)")
    axes.legend(fontsize=7)
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> list[dict]:
    for name in ("steps", "every", "batch_size"):
        checks.int_at_least(getattr(args, name), f"--{name.replace('_', '-')}")
    checks.int_at_least(args.replicas, "--replicas (a variance needs two)", 2)
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)
    pixels = load_dataset("mnist-5k", "train").pixels(np.float32)
    probe = binarize_dynamic(pixels[rng.choice(len(pixels), PROBE_BATCH, replace=False)], rng)
    vae = VAE(pixels.shape[1], hidden=(128,), z_dim=8, rng=rng, dtype=np.float32)
    optimizer = Adam(vae.parameters(), lr=1e-3)

    table, start = [], time.perf_counter()
    for step in range(args.steps + 1):
        if step % args.every == 0 or step == args.steps:
            variances, elbo, fit = gradient_variances(vae, probe, args.replicas, rng)
            table.append({"step": step, "elbo": elbo, **variances, **fit})
        if step == args.steps:
            break
        batch = pixels[rng.integers(0, len(pixels), args.batch_size)]
        optimizer.zero_grad()
        loss = -elbo_surrogate(vae, binarize_dynamic(batch, rng), rng, "pathwise").mean()
        loss.backward()
        optimizer.step()

    print(f"Variance per coordinate of ∂ELBO/∂(μ, log σ²), {args.replicas} estimates of "
          f"{SAMPLES_PER_ESTIMATE} samples each, on {PROBE_BATCH} fixed digits:")
    print(f"{'step':>6}  {'ELBO':>8}" + "".join(f"  {name:>16}" for name in ESTIMATORS)
          + f"  {'fitted c':>8}")
    for row in table:
        print(f"{row['step']:6d}  {row['elbo']:8.1f}"
              + "".join(f"  {row[name]:16.4g}" for name in ESTIMATORS) + f"  {row['c']:8.3f}")
    path = plot(out / "gradient_variance.png", table)
    print(f"\n{time.perf_counter() - start:.0f} s. Picture: {path.resolve()}")
    return table


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

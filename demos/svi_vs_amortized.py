"""Demo: per-datapoint λ_i (the lecture's Algorithm 1) against an encoder (Algorithm 2, the VAE).

Both learn the same Bernoulli decoder p_θ(x|z) (784 → hidden → z, tanh, the same initial
weights) on the same binarized mnist-5k digits, with the same number of Adam steps on θ, the
same minibatch size and step size:

* Algorithm 1 (minivae.objectives.svi_learning): every training digit has its own
  q_i = N(μ_i, diag σ_i²); each iteration takes K Adam steps on the λ_i of a minibatch, then
  one step on θ.  A held-out digit has no λ yet: it is fitted by SVI with θ fixed
  (``svi_fit``, from the prior), which is what its held-out ELBO costs.
* Algorithm 2: an encoder q_φ(z|x) gives every λ; one step on (θ, φ) per minibatch.

Writes svi_vs_amortized.png: the ELBO on training and held-out digits against θ-steps and
against training wall time (evaluation not counted), and the final held-out ELBOs with the
encoder's amortization gap (ELBO of per-digit SVI from q_φ, minus the encoder's ELBO).

    python demos/svi_vs_amortized.py --out runs/svi_vs_amortized
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from minivae import checks
from minivae.data import binarize_dynamic, load_dataset
from minivae.engine.tensor import Tensor, no_grad
from minivae.io.json_text import write_json
from minivae.io.plots import new_figure, output_folder, save_png
from minivae.models import VAE
from minivae.objectives.svi import amortization_gap, svi_fit
from minivae.objectives.svi_learning import StochasticVariationalLearning, local_elbo
from minivae.optim import Adam
from minivae.program import add_quiet_argument, demo_parser, run_reporting_errors

EVAL_SAMPLES = 10  # reparameterized draws per ELBO estimate on the curves


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/svi_vs_amortized", help="output folder")
    parser.add_argument("--train", type=int, default=500, help="training digits")
    parser.add_argument("--held-out", type=int, default=100, help="held-out digits")
    parser.add_argument("--steps", type=int, default=300, help="θ-steps of each algorithm")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--inner-steps", type=int, default=3,
                        help="K: Algorithm 1's steps on the λ_i of a minibatch per θ-step")
    parser.add_argument("--local-lr", type=float, default=0.05, help="Adam step size for λ_i")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam step size for θ (and φ)")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--z-dim", type=int, default=10)
    parser.add_argument("--eval-every", type=int, default=50, help="θ-steps between points")
    parser.add_argument("--eval-svi-steps", type=int, default=100,
                        help="SVI steps fitting a held-out digit's λ (and q* for the gap)")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def mean_elbo(model, x, loc, log_scale, rng) -> float:
    with no_grad():
        values = local_elbo(model, x, Tensor(loc), Tensor(log_scale), rng, EVAL_SAMPLES)
    return float(values.data.mean(dtype=np.float64))


def encoder_elbo(model, x, rng) -> float:
    """The VAE's ELBO with its encoder's q_φ(z|x)."""
    with no_grad():
        q = model.encode(x)
    return mean_elbo(model, x, q.loc.data, 0.5 * q.log_var.data, rng)


def fitted_elbo(model, x, rng, steps: int, lr: float) -> float:
    """Algorithm 1 on new digits: fit λ by SVI with θ fixed, then the ELBO at that λ."""
    fit = svi_fit(x, model, rng, steps=steps, lr=lr, n_samples=4, final_lr=lr / 10)
    return mean_elbo(model, x, fit.loc, np.log(fit.scale), rng)


def save_picture(path, curves: dict, final: dict, gap: tuple[float, float]):
    figure = new_figure(1500, 480)
    by_step, by_time, bars = figure.subplots(1, 3)
    styles = {"Algorithm 1 (λ_i per digit)": "tab:blue", "Algorithm 2 (encoder, VAE)": "tab:orange"}
    for name, color in styles.items():
        c = curves[name]
        for split, style in (("train", "-"), ("held-out", "--")):
            by_step.plot(c["steps"], c[split], style, color=color, marker="o", markersize=3,
                         label=f"{name}, {split}")
            by_time.plot(c["seconds"], c[split], style, color=color, marker="o", markersize=3)
    by_step.set_xlabel("θ-steps")
    by_time.set_xlabel("training wall time (s)")
    for axes in (by_step, by_time):
        axes.set_ylabel("ELBO (nats per digit)")
        axes.grid(True, alpha=0.3)
    by_step.legend(fontsize=8)
    by_step.set_title("ELBO against θ-steps (the same number for both)")
    by_time.set_title("against training time: Algorithm 1 pays K + 1 passes a θ-step")
    names, values = list(final), list(final.values())
    floor = min(values) - 10  # bars rise from a floor below the lowest, not from 0
    bars.bar(range(len(values)), np.subtract(values, floor), bottom=floor,
             color=["tab:blue", "tab:orange", "tab:red"])
    for i, value in enumerate(values):
        bars.text(i, value + 0.5, f"{value:.1f}", ha="center", fontsize=9)
    bars.set_xticks(range(len(values)), names, fontsize=8)
    bars.set_ylim(floor, max(values) + 5)
    bars.set_ylabel("held-out ELBO (nats per digit)")
    bars.set_title(f"amortization gap of the encoder: {gap[0]:.2f} ± {gap[1]:.2f} nats")
    bars.grid(True, axis="y", alpha=0.3)
    return save_png(figure, path, tight_layout=True)


def main(args: argparse.Namespace) -> dict:
    for flag in ("train", "held_out", "steps", "batch_size", "inner_steps", "hidden", "z_dim",
                 "eval_every", "eval_svi_steps"):
        checks.positive_int(getattr(args, flag), f"--{flag.replace('_', '-')}")
    checks.positive(args.local_lr, "--local-lr", number=True)
    checks.positive(args.lr, "--lr", number=True)
    pixels = load_dataset("mnist-5k", "train").pixels(np.float32)
    if args.train + args.held_out > len(pixels):
        raise ValueError(f"--train + --held-out must be at most {len(pixels)}")
    out = output_folder(args.out)
    rng = np.random.default_rng(args.seed)
    # binarized once: Algorithm 1's λ_i belong to one fixed x_i
    # a random subset: the embedded digits are stored grouped by class
    chosen = rng.permutation(len(pixels))[:args.train + args.held_out]
    x = binarize_dynamic(pixels[chosen], rng)
    x_train, x_held = x[:args.train], x[args.train:]
    x_watch = x_train[:args.held_out]  # the training digits the curves score

    def new_model():  # the same initial decoder for both algorithms
        return VAE(x.shape[1], hidden=(args.hidden,), z_dim=args.z_dim,
                   rng=np.random.default_rng(args.seed))
    per_digit, vae = new_model(), new_model()
    learner = StochasticVariationalLearning(
        per_digit, x_train, np.random.default_rng(args.seed + 1), args.batch_size,
        args.inner_steps, args.local_lr, args.lr, parameters=per_digit.decoder.parameters())
    vae_optimizer = Adam(vae.parameters(), lr=args.lr)
    vae_rng = np.random.default_rng(args.seed + 2)
    names = ("Algorithm 1 (λ_i per digit)", "Algorithm 2 (encoder, VAE)")
    curves = {name: {"steps": [], "seconds": [], "train": [], "held-out": []} for name in names}
    seconds = [0.0, 0.0]
    eval_rng = np.random.default_rng(args.seed + 3)

    for step in tqdm(range(1, args.steps + 1), desc="θ-steps", disable=args.quiet):
        start = time.perf_counter()
        learner.iterate()
        seconds[0] += time.perf_counter() - start
        start = time.perf_counter()
        batch = x_train[vae_rng.choice(len(x_train), size=learner.batch_size, replace=False)]
        vae_optimizer.zero_grad()
        (-vae.elbo(batch, vae_rng).mean()).backward()
        vae_optimizer.step()
        seconds[1] += time.perf_counter() - start
        if step % args.eval_every and step != args.steps:
            continue
        rows = [(mean_elbo(per_digit, x_watch, learner.loc[:len(x_watch)],
                           learner.log_scale[:len(x_watch)], eval_rng),
                 fitted_elbo(per_digit, x_held, eval_rng, args.eval_svi_steps, args.local_lr)),
                (encoder_elbo(vae, x_watch, eval_rng), encoder_elbo(vae, x_held, eval_rng))]
        for name, spent, (train_elbo, held_elbo) in zip(names, seconds, rows):
            c = curves[name]
            c["steps"].append(step)
            c["seconds"].append(spent)
            c["train"].append(train_elbo)
            c["held-out"].append(held_elbo)

    gap = amortization_gap(vae, x_held, eval_rng, svi_steps=args.eval_svi_steps,
                           n_samples=200, svi_lr=args.local_lr, svi_final_lr=args.local_lr / 10,
                           svi_samples=4)
    mean_gap = float(gap.gap.mean())
    gap_se = float(gap.gap.std(ddof=1) / np.sqrt(len(gap.gap))) if len(gap.gap) > 1 else 0.0
    final = {"Alg. 1:\nλ fitted by SVI": curves[names[0]]["held-out"][-1],
             "Alg. 2:\nencoder q_φ": float(gap.elbo_encoder.mean()),
             "Alg. 2 + SVI\nfrom q_φ (q*)": float(gap.elbo_svi.mean())}
    picture = save_picture(out / "svi_vs_amortized.png", curves, final, (mean_gap, gap_se))
    summary = {"curves": curves, "final_held_out": {k.replace("\n", " "): v
                                                    for k, v in final.items()},
               "amortization_gap": mean_gap, "amortization_gap_se": gap_se,
               "training_seconds": dict(zip(names, seconds))}
    write_json(out / "svi_vs_amortized.json", summary)

    print(f"{args.train} training, {args.held_out} held-out digits; {args.steps} θ-steps each")
    for name, spent in zip(names, seconds):
        c = curves[name]
        print(f"  {name:<28} ELBO train {c['train'][-1]:8.2f}  held-out {c['held-out'][-1]:8.2f}"
              f"   training time {spent:6.1f} s")
    print(f"  amortization gap on held-out digits: {mean_gap:.2f} ± {gap_se:.2f} nats "
          f"(ELBO(q*) {final[list(final)[2]]:.2f} − ELBO(q_φ) {final[list(final)[1]]:.2f})")
    print(picture.resolve())
    return summary


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

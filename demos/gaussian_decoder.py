"""Demo: a VAE with Gaussian pixels, p(x|z) = N(μ(z), σ²), with σ fixed, learned, or σ(z).

The digits are taken as grey levels, dequantized: an 8-bit value k becomes x = (k + u)/256 with
u ~ U(0, 1), a continuous value in its own bin, drawn afresh each epoch.  Three decoders are
trained on them; their reconstruction term is the seed's

    −log p(x|z) = Σᵢ (xᵢ − μᵢ)² / (2σᵢ²) + Σᵢ log(σᵢ √(2π))     (= ‖x − μ‖²/(2σ²) + D log(σ√(2π))
                                                                  for one shared σ)
* σ fixed (--fixed-sigma, 1 by default, the "plain MSE" choice): σ only weighs the squared
  error against the KL; σ = 1 makes reconstruction cheap to neglect, so the codes say little;
* σ learned, one shared value: it settles at the root-mean-squared reconstruction error;
* σ(z) per pixel from the decoder (the lecture's Σ_θ(z) = diag σ²(NN(z))), floored at
  --min-sigma: small on the always-blank border, large where strokes may or may not be.

The picture shows, per model, the decoder mean μ(z) — the blur: an average over every digit the
code could be — next to draws x = μ(z) + σ ⊙ ε from p(x|z) — the noise: what the model says a
digit looks like.  The means look better than the model is; a shared σ sprinkles noise over
the blank background, a σ(z) puts it on the strokes' edges.

The test ELBO is in nats per image: a bound on log p(x), a density (continuous x), not a
probability, so it depends on the unit of x and can be positive.  With dequantized 8-bit pixels,
ELBO − D log 256 is a lower bound on log P(the 8-bit image) (P = ∫ over the image's bin of p,
and Jensen), which can be compared with discrete models: bits per pixel = −that / (D log 2).

Writes gaussian_decoder.png and prints a table.  See docs/derivations.md, "The lecture's general
model (learnable prior, σ(z) decoder) and Gaussian decoders in pictures".

    python demos/gaussian_decoder.py                  # about a minute on 4,500 digits
    python demos/gaussian_decoder.py --prior learnable --fixed-sigma 0.1
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.data import load_dataset, minibatches
from minivae.engine.tensor import no_grad
from minivae.io.plots import image_grid, new_figure, output_folder, save_png
from minivae.models.gaussian_decoder import GaussianDecoderVAE
from minivae.objectives.likelihood import standard_error
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)

TEST_DEQUANTIZATION_SEED = 12345  # one fixed dequantization of the test images
LEVELS = 256  # 8-bit grey levels: the width of a bin on [0, 1] is 1/256
SHOWN = 8  # images per cell of the picture, in two rows


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/gaussian_decoder", help="folder for the picture")
    add_data_arguments(parser)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--fixed-sigma", type=float, default=1.0,
                        help="σ of the model whose σ is fixed")
    parser.add_argument("--min-sigma", type=float, default=1e-3,
                        help="floor under a learned σ (8-bit quantization noise is 1/(256 √12) "
                             "≈ 0.0011)")
    parser.add_argument("--prior", choices=["standard", "learnable"], default="standard",
                        help="p(z): N(0, I), or N(μ_z, σ_z² I) learned with the rest")
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def dequantize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x = (k + u) / 256, u ~ U(0, 1): 8-bit images (N, H, W) as continuous rows (N, H·W)."""
    levels = images.reshape(len(images), -1).astype(np.float32)
    return (levels + rng.random(levels.shape, dtype=np.float32)) / LEVELS


def train(model, images: np.ndarray, args, rng, description: str) -> None:
    """Adam on −mean ELBO over minibatches of freshly dequantized images, ``args.epochs``."""
    optimizer = Adam(model.parameters(), lr=args.lr)
    for _ in tqdm(range(args.epochs), desc=description, disable=args.quiet, leave=False):
        for x in threads.adaptive(minibatches(dequantize(images, rng), args.batch_size, rng)):
            loss = -model.elbo(x, rng).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def test_elbo(model, x: np.ndarray, shown: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Per-image one-sample ELBO of ``x`` in float64, and the decoder's σ at the posterior
    means of the images ``shown`` (rows of σᵢ, for the picture and the table)."""
    with no_grad():
        elbo = np.concatenate([model.elbo(x[i:i + 500], rng).data.astype(np.float64)
                               for i in range(0, len(x), 500)])
        sigma = np.exp(model.decode(model.encode(shown).loc).log_scale.data)
    return elbo, np.broadcast_to(sigma, shown.shape)


def pictures(model, x: np.ndarray, rng) -> dict:
    """Decoder means and draws x ~ p(x|z), for the codes of ``x`` and for z ~ p(z)."""
    with no_grad():
        p_x_given_z = model.decode(model.encode(x).loc)
        mean, scale = p_x_given_z.loc.data, np.exp(p_x_given_z.log_scale.data)
        draw = mean + scale * rng.standard_normal(mean.shape).astype(mean.dtype)
    sample_rng = np.random.default_rng(rng.integers(2**32))
    return {"reconstruction, mean μ(z)": np.clip(mean, 0, 1),
            "reconstruction, x ~ p(x|z)": np.clip(draw, 0, 1),
            "sample, mean μ(z), z ~ p(z)": model.sample(SHOWN, np.random.default_rng(
                sample_rng.integers(2**32))),
            "sample, x ~ p(x|z), z ~ p(z)": model.sample(SHOWN, np.random.default_rng(
                sample_rng.integers(2**32)), noise=True)}


def main(args: argparse.Namespace) -> dict:
    for value, flag in ((args.epochs, "--epochs"), (args.z_dim, "--z-dim"),
                        (args.batch_size, "--batch-size")):
        checks.positive_int(value, flag)
    checks.positive(args.fixed_sigma, "--fixed-sigma", number=True)
    checks.real(args.min_sigma, "--min-sigma", 0, low_open=True)
    checks.positive(args.lr, "--lr", number=True)
    data_rng, *model_rngs = np.random.default_rng(args.seed).spawn(4)
    images = load_dataset(args.dataset, "train", root=args.data_root).images
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        images = images[data_rng.permutation(len(images))[:args.max_train]]
    test_rng = np.random.default_rng(TEST_DEQUANTIZATION_SEED)
    test_x = dequantize(load_dataset(args.dataset, "test", root=args.data_root).images, test_rng)
    shown = test_x[test_rng.permutation(len(test_x))[:SHOWN]]  # the test set is sorted by digit
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    x_dim = test_x.shape[1]
    decoders = {f"σ fixed at {args.fixed_sigma:g}": args.fixed_sigma,
                "σ learned (shared)": "learned_shared", "σ(z) per pixel": "z_dependent"}
    results = {}
    for (name, sigma), rng in zip(decoders.items(), model_rngs):
        model = GaussianDecoderVAE(x_dim, hidden=tuple(args.hidden), z_dim=args.z_dim, rng=rng,
                                   sigma=sigma, min_sigma=args.min_sigma, prior=args.prior,
                                   init_sigma=max(0.1, 2 * args.min_sigma))
        train(model, images, args, rng, name)
        elbo, sigma_shown = test_elbo(model, test_x, shown, rng)
        log_probability = elbo - x_dim * math.log(LEVELS)  # bound on log P(8-bit image)
        results[name] = {"test_elbo": float(elbo.mean()), "standard_error": standard_error(elbo),
                         "median_elbo": float(np.median(elbo)),
                         "bits_per_pixel": float(-log_probability.mean() / (x_dim * math.log(2))),
                         "median_sigma": float(np.median(sigma_shown)), "sigma": sigma_shown,
                         "pictures": pictures(model, shown, rng)}
    picture = draw(results, shown, args.min_sigma, out)
    print_table(results, args, x_dim, picture)
    return {name: {key: value for key, value in result.items()
                   if key not in ("sigma", "pictures")} for name, result in results.items()}


def draw(results: dict, originals: np.ndarray, min_sigma: float, out: Path) -> Path:
    """One column per model: the test images, reconstructions and samples (means and draws),
    and the decoder's σ at the test images' codes."""
    # σ on one log scale for all three, from the floor (black) to the largest shown (white)
    low, high = math.log(min_sigma), max(math.log(r["sigma"].max()) for r in results.values())
    rows = ["test images x", *next(iter(results.values()))["pictures"],
            f"log σ at the codes of x (black: σ = {min_sigma:g}, white: {math.exp(high):.2f})"]
    figure = new_figure(1200, 1450)
    for column, (name, result) in enumerate(results.items()):
        log_sigma = (np.log(result["sigma"]) - low) / max(high - low, 1e-12)
        cells = [originals, *result["pictures"].values(), log_sigma]
        for row, (label, images) in enumerate(zip(rows, cells)):
            axes = figure.add_subplot(len(rows), len(results), row * len(results) + column + 1)
            colormap = "magma" if row == len(rows) - 1 else "gray_r"
            axes.imshow(image_grid(np.asarray(images), SHOWN // 2), cmap=colormap, vmin=0.0,
                        vmax=1.0, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
            if row == 0:
                axes.set_title(f"{name}\ntest ELBO {result['test_elbo']:.0f} nats, "
                               f"{result['bits_per_pixel']:.2f} bits/pixel\n{label}",
                               fontsize=9)
            else:
                axes.set_title(label, fontsize=9)
    return save_png(figure, out / "gaussian_decoder.png", tight_layout=True)


def print_table(results: dict, args, x_dim: int, picture: Path) -> None:
    print(f"\nGaussian decoders on dequantized {args.dataset} digits (D = {x_dim}, prior "
          f"{args.prior}, {args.epochs} epochs)")
    print("| decoder σ | median σ | test ELBO (nats/image) | median ELBO | bits/pixel of the "
          "8-bit images |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        print(f"| {name} | {result['median_sigma']:.3f} | {result['test_elbo']:.1f} ± "
              f"{result['standard_error']:.1f} | {result['median_elbo']:.1f} | "
              f"{result['bits_per_pixel']:.3f} |")
    print(f"The ELBO bounds log p(x), a density of continuous x on [0, 1]^{x_dim}: it changes with "
          f"the unit of x and is positive when p(x) > 1.  ELBO − {x_dim} log {LEVELS} bounds the "
          f"log-probability of the 8-bit image, comparable across models: fewer bits are better.")
    print(f"  {picture.resolve()}  — means (blur) vs draws (noise), and σ(z)")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

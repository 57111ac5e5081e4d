"""Demo: attribute vectors — add "thicker strokes" or "more like digit b" to a digit's code.

A VAE is trained on binarized digits (or loaded with --checkpoint from
``python -m minivae train``).  Two vectors are formed as differences of mean codes μ(x):

* thin → thick: the 20% of training digits with the most ink minus the 20% with the least,
  taken within each class (with --pooled, over all digits at once: then 1s are most of the
  thin group and 0s and 8s most of the thick one, and the vector also turns digits into 0s);
* digit a → digit b: the training digits labelled b minus those labelled a.

Each is added with scales s (default −1 … 2) to the codes of test digits and decoded:
decode(μ(x) + s · v).  Writes thickness.png and digits.png (one row per test digit, one
column per scale) and prints, per scale, the mean ink of the thickened digits, the fraction
of them a nearest-class-mean classifier (fitted on the training pixels) still calls by their
label, and the fractions of decoded a's it calls a and b.

    python demos/attribute_vectors.py --out runs/attribute_vectors
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.io.plots import output_folder, save_image_grid
from minivae.models import VAE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.topics.attributes import (
    apply_attribute,
    attribute_vector,
    ink_groups,
    ink_mass,
    label_groups,
)

BINARIZATION_SEED = 12345  # one fixed binarization of the images that are encoded


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/attribute_vectors", help="output folder")
    add_data_arguments(parser)
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint.npz from `python -m minivae train` (skips training)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[400])
    parser.add_argument("--z-dim", type=int, default=20)
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--fraction", type=float, default=0.2, help="size of the ink groups")
    parser.add_argument("--pooled", action="store_true",
                        help="ink groups over all digits at once, not within each class")
    parser.add_argument("--digits", type=int, nargs=2, default=[4, 9], metavar=("A", "B"))
    parser.add_argument("--scales", type=float, nargs="+",
                        default=[-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--rows", type=int, default=8, help="test digits shown per picture")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def train_vae(args, x: np.ndarray) -> VAE:
    """A Bernoulli VAE fitted by Adam on the one-sample ELBO, fresh binarization per epoch."""
    model_rng, data_rng, noise_rng = np.random.default_rng(args.seed).spawn(3)
    vae = VAE(x.shape[1], hidden=tuple(args.hidden), z_dim=args.z_dim, rng=model_rng)
    optimizer = Adam(vae.parameters(), lr=args.lr)
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        batches = minibatches(binarize_dynamic(x, data_rng), args.batch_size, data_rng)
        for batch in threads.adaptive(batches):  # BLAS threads measured (minivae.threads)
            elbo = vae.elbo(batch, noise_rng)
            optimizer.zero_grad()
            (-elbo.mean()).backward()
            optimizer.step()
            total += float(elbo.data.sum(dtype=np.float64))
        if not args.quiet:
            print(f"epoch {epoch:3d}  train ELBO {total / len(x):8.2f}", flush=True)
    return vae


def nearest_class_mean(images: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """argmin_c ‖x − m_c‖² for each row x: a crude digit classifier with no training loop."""
    distances = (images**2).sum(1)[:, None] - 2 * images @ centroids.T + (centroids**2).sum(1)
    return distances.argmin(axis=1)


def picture(decoded: np.ndarray, rows: int) -> np.ndarray:
    """(S, B, D) → (rows · S, D): one row per digit, its scales left to right."""
    return decoded[:, :rows].transpose(1, 0, 2).reshape(-1, decoded.shape[-1])


def main(args: argparse.Namespace) -> dict:
    digit_a, digit_b = args.digits
    train, test = (load_dataset(args.dataset, split, root=args.data_root)
                   for split in ("train", "test"))
    train_pixels, train_labels = train.pixels(np.float32), train.labels
    # a random subset (the files may be sorted by class); x[:0] or x[:-10] would not be one
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        keep = np.random.default_rng(args.seed).permutation(len(train_labels))[:args.max_train]
        train_pixels, train_labels = train_pixels[keep], train_labels[keep]
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    start = time.perf_counter()
    if args.checkpoint:
        from minivae.io.resume import load_model
        vae, _ = load_model(args.checkpoint)
    else:
        vae = train_vae(args, train_pixels)
    seconds = time.perf_counter() - start

    fixed = np.random.default_rng(BINARIZATION_SEED)
    train_x = binarize_dynamic(train_pixels, fixed).astype(vae.dtype)
    test_x = binarize_dynamic(test.pixels(np.float32), fixed).astype(vae.dtype)
    if args.pooled:
        thin, thick = ink_groups(train_x, args.fraction)
    else:  # thin and thick within each class, so the vector does not also change the digit
        pairs = [ink_groups(train_x[train_labels == c], args.fraction)
                 for c in np.unique(train_labels)]
        thin, thick = (np.concatenate(group) for group in zip(*pairs))
    thickening = attribute_vector(vae, thin, thick)
    morphing = attribute_vector(vae, *label_groups(train_x, train_labels, digit_a, digit_b))

    order = np.random.default_rng(args.seed).permutation(len(test_x))
    shown, shown_labels = test_x[order], test.labels[order]
    thicker = apply_attribute(vae, shown, thickening, args.scales)  # (S, N, D)
    test_a = test_x[test.labels == digit_a]
    morphed = apply_attribute(vae, test_a, morphing, args.scales)
    centroids = np.stack([train_pixels[train_labels == c].mean(0) for c in range(10)])
    ink = thicker.sum(-1, dtype=np.float64).mean(-1)
    kept = np.array([np.mean(nearest_class_mean(images, centroids) == shown_labels)
                     for images in thicker])
    called_b = np.array([np.mean(nearest_class_mean(images, centroids) == digit_b)
                         for images in morphed])
    called_a = np.array([np.mean(nearest_class_mean(images, centroids) == digit_a)
                         for images in morphed])

    scales_text = ", ".join(f"{s:g}" for s in args.scales)
    save_image_grid(out / "thickness.png", picture(thicker, args.rows), ncols=len(args.scales),
                    title=f"decode(μ(x) + s·v_thin→thick), s = {scales_text}")
    save_image_grid(out / "digits.png", picture(morphed, args.rows), ncols=len(args.scales),
                    title=f"decode(μ(x) + s·v_{digit_a}→{digit_b}), s = {scales_text}")

    source = args.checkpoint or f"trained {args.epochs} epochs in {seconds:.0f} s"
    print(f"\nVAE (z_dim {vae.z_dim}) on {args.dataset}, {source}")
    print(f"‖v_thin→thick‖ = {np.linalg.norm(thickening):.2f},  "
          f"‖v_{digit_a}→{digit_b}‖ = {np.linalg.norm(morphing):.2f}; "
          f"{len(test_x)} test digits ({len(test_a)} of them {digit_a}s)")
    print(f"{'':6}  {'thin → thick':^23}  {f'{digit_a} → {digit_b}':^26}")
    print(f"{'scale':>6}  {'mean ink':>9}  {'called label':>12}  "
          f"{f'{digit_a}s called {digit_a}':>12}  {f'{digit_a}s called {digit_b}':>12}")
    for s, i, k, a, b in zip(args.scales, ink, kept, called_a, called_b):
        print(f"{s:6.2f}  {i:9.1f}  {k:12.0%}  {a:12.0%}  {b:12.0%}")
    print(f"(mean ink of the training groups: thinnest {args.fraction:.0%} "
          f"{ink_mass(thin).mean():.1f}, thickest {args.fraction:.0%} "
          f"{ink_mass(thick).mean():.1f}; pictures:)")
    for name, what in (("thickness.png", "test digits made thinner (left) and thicker (right)"),
                       ("digits.png", f"test {digit_a}s moved towards {digit_b}")):
        print(f"  {(out / name).resolve()}  — {what}")
    return {"scales": list(args.scales), "thin_to_thick_ink": ink.tolist(),
            "thin_to_thick_called_label": kept.tolist(),
            "called_a": called_a.tolist(), "called_b": called_b.tolist(), "seconds": seconds}


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

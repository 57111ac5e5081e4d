"""Demo: VaDE, a VAE with a Gaussian-mixture prior, clusters MNIST digits without labels.

Recipe (the initialization is half of VaDE):
1. pretrain encoder mean and decoder as a deterministic autoencoder: ``--pretrain layerwise``
   (the default) trains one denoising autoencoder per layer, stacks them and fine-tunes the
   stack on −log p(x | μ̃(x)) (minivae/topics/pretraining.py, DEC's recipe); ``--pretrain plain``
   trains the whole autoencoder from its random start; ``--pretrain end-to-end`` does too, as
   IDEC does (grey levels, ``--pretrain-batch-size``, Adam at ``--pretrain-lr``), on
   ``--pretrain-loss``: the cross-entropy −log p(x | μ̃(x)) or the squared error of the decoded
   means (DEC's and IDEC's loss), which also serves the layer-wise recipe's fine-tuning.  The
   result is saved to OUT/pretrained.npz, and ``--pretrained PATH`` starts from such a file instead;
   ``--self-train-epochs N`` then trains the autoencoder N epochs more on reconstruction (by
   the ``--pretrain-loss``) plus DEC's self-training target, which pulls the codes into
   clusters (IDEC; minivae/topics/self_training.py; 0, the default, skips it); with
   ``--partitions R`` a copy of the autoencoder is self-trained from each of R k-means
   partitions of its codes (the most likely fit first, then others that split the codes
   differently) and the copy of highest training ELBO is kept (on MNIST the ELBO chose the less
   accurate partition in three of four comparisons: docs/RESULTS.md, "Which k-means partition
   to self-train from");
2. fit a diagonal GMM with K components to the training set's codes μ̃(x): k-means from
   k-means++ seeds, then ``--gmm-iterations`` EM steps (1, the default, keeps the weights,
   means and variances of the k-means clusters, as DEC starts from k-means; EM run to
   convergence reaches a higher likelihood whose components cut across the digits); of
   ``--gmm-restarts`` fits the most likely is kept, labels play no part; then copy π, μ_c, σ_c²
   into the prior (``VaDE.initialize_prior``);
   with ``--starts R`` steps 1–2 run R times, from other random starts, and the start whose
   training ELBO is highest (a bound on log p(x) of the same data: comparable, label-free) is
   kept, the others' scores and test accuracies recorded;
3. train everything on the VaDE ELBO (Adam with ε = ``--adam-eps``, the learning rate
   × ``--lr-decay`` every ``--lr-decay-every`` epochs and no lower than ``--min-lr``; the
   paper's code: 2e-3, × 0.9 every 10 epochs, floor 2e-4, ε = 1e-4).
A test digit's cluster is argmax_c p(c | z = μ̃(x)).  Clustering accuracy uses the best one-to-one
matching of clusters to labels (Hungarian method); the labels are used for nothing else.

Writes samples_per_cluster.png (row c: digits decoded from z ~ N(μ_c, σ_c²)),
test_clusters.png (row c: test digits assigned to cluster c), curve.png, results.json (the
arguments, and per stage and epoch the test accuracy and ELBO), and prints a table.

    python demos/vade_clustering.py                          # a quick run on 5,000 digits
    python demos/vade_clustering.py --dataset mnist          # full MNIST, as in the paper
    python demos/vade_clustering.py --pretrained runs/vade_clustering/pretrained.npz  # reuse
    python demos/vade_clustering.py --dataset mnist --budget-minutes 60   # at most an hour

``--budget-minutes M`` bounds the whole recipe: every training loop (each pretraining stage's,
then VaDE's) ends after the epoch that finds M minutes spent since the start, each stage after
at least one epoch; ``--pretrain-minutes P`` ends the pretraining stages at P minutes, leaving
the rest of the budget to VaDE.

The default network is the paper's (784-500-500-2000-10, ReLU), trained for minutes rather than
hours.  Its matrices are small enough that one BLAS thread is best on a busy machine:
OPENBLAS_NUM_THREADS=1 before the command can make it many times faster there.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import checks, threads
from minivae.data import binarize_dynamic, load_dataset, minibatches
from minivae.engine.tensor import no_grad
from minivae.io.checkpoint import load_checkpoint, save_checkpoint
from minivae.io.json_text import write_json
from minivae.io.plots import output_folder, save_curve, save_image_grid
from minivae.models.vade import VaDE
from minivae.optim import Adam
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.stopping import Budget
from minivae.topics import pretraining, self_training
from minivae.topics.clustering import (
    clustering_accuracy,
    distinct_gmm_fits,
    match_clusters_to_labels,
)
from minivae.train import TEST_BINARIZATION_SEED  # the same binary test set as `train`

PAPER_ACCURACY = 94.46  # Jiang et al. (2017), MNIST, 784-500-500-2000-10, long SAE pretraining


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/vade_clustering", help="folder for the pictures")
    add_data_arguments(parser)
    parser.add_argument("--pretrain", choices=("layerwise", "plain", "end-to-end"),
                        default="layerwise",
                        help="stacked denoising autoencoders, one plain autoencoder (VaDE's "
                             "--lr and --batch-size), or one trained end to end on "
                             "--pretrain-loss (--pretrain-lr, --pretrain-batch-size)")
    parser.add_argument("--pretrain-loss", choices=pretraining.AUTOENCODER_LOSSES,
                        default="bernoulli",
                        help="loss of the end-to-end stages (end-to-end, the layer-wise "
                             "fine-tuning, --finetune-more): cross-entropy of the grey levels "
                             "or squared error of the decoded means")
    parser.add_argument("--pretrained", default=None,
                        help="start from this pretrained.npz instead of pretraining")
    parser.add_argument("--pixels", choices=("grey", "binary"), default="grey",
                        help="train and test on grey levels (soft Bernoulli targets) or on "
                             "binarized pixels")
    parser.add_argument("--layer-epochs", type=int, default=10,
                        help="epochs per denoising layer (layerwise)")
    parser.add_argument("--finetune-epochs", type=int, default=20,
                        help="epochs of the stacked autoencoder (layerwise)")
    parser.add_argument("--finetune-more", type=int, default=0,
                        help="with --pretrained: fine-tune it this many more epochs (and save)")
    parser.add_argument("--pretrain-epochs", type=int, default=5,
                        help="autoencoder epochs (plain, end-to-end)")
    parser.add_argument("--score-pretraining-every", type=int, default=0,
                        help="end-to-end: every N epochs, the test accuracy of a k-means fit "
                             "to the codes (as the GMM start fits it; for the report only; "
                             "0: never)")
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--pretrain-batch-size", type=int, default=256)
    parser.add_argument("--drop", type=float, default=0.2,
                        help="masking noise of the denoising layers (inverted dropout)")
    parser.add_argument("--self-train-epochs", type=int, default=0,
                        help="epochs of self-training after pretraining (0: none)")
    parser.add_argument("--self-train-weight", type=float, default=100.0,
                        help="weight of KL(p ‖ q) beside −log p(x | μ̃(x)) in self-training")
    parser.add_argument("--self-train-lr", type=float, default=1e-3)
    parser.add_argument("--self-train-minutes", type=float, default=None,
                        help="minutes after which self-training ends, counted from the start's "
                             "beginning (default: the budget's)")
    parser.add_argument("--epochs", type=int, default=8, help="VaDE epochs after pretraining")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-decay", type=float, default=0.9)
    parser.add_argument("--lr-decay-every", type=int, default=10)
    parser.add_argument("--min-lr", type=float, default=0.0,
                        help="VaDE's rate decays no lower than this (the paper's code: 2e-4)")
    parser.add_argument("--adam-eps", type=float, default=1e-8,
                        help="Adam's ε in VaDE's training (the paper's code: 1e-4)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500, 2000])
    parser.add_argument("--activation", default="relu")
    parser.add_argument("--z-dim", type=int, default=10)
    parser.add_argument("--n-clusters", type=int, default=10)
    parser.add_argument("--kmeans-steps", type=int, default=100,
                        help="k-means steps that start each GMM fit")
    parser.add_argument("--gmm-iterations", type=int, default=1,
                        help="EM iterations after k-means (1: the k-means clusters' moments)")
    parser.add_argument("--gmm-restarts", type=int, default=10,
                        help="EM runs from k-means++ seeds; the most likely fit is kept")
    parser.add_argument("--max-train", type=int, default=None, help="use N random training images")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="wall-clock minutes of the whole recipe (default: no limit)")
    parser.add_argument("--pretrain-minutes", type=float, default=None,
                        help="minutes after which pretraining ends, counted from the start's "
                             "beginning (default: the budget's)")
    parser.add_argument("--starts", type=int, default=1,
                        help="prepare this many starts (pretraining, self-training, GMM) one "
                             "after another and keep the one of highest training ELBO")
    parser.add_argument("--partitions", type=int, default=1,
                        help="with --self-train-epochs: self-train a copy of the autoencoder "
                             "from each of this many k-means partitions of its codes (the "
                             "most likely first, each splitting the codes differently) and "
                             "keep the copy of highest training ELBO")
    parser.add_argument("--seed", type=int, default=0)
    add_quiet_argument(parser)
    return parser.parse_args(argv)


def in_batches(function, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """A per-example function of the rows of x, evaluated in batches without a graph."""
    with no_grad():
        return np.concatenate([np.asarray(function(x[i:i + batch_size]))
                               for i in range(0, len(x), batch_size)])


def train_epoch(model, optimizer, pixels, objective, args, data_rng) -> float:
    """One pass over the pixels (freshly binarized unless grey levels are the data), maximizing
    objective(x); its mean per example."""
    data = pixels if args.pixels == "grey" else binarize_dynamic(pixels, data_rng)
    total = 0.0
    for x in threads.adaptive(minibatches(data, args.batch_size, data_rng)):  # BLAS threads
        value = objective(x)
        optimizer.zero_grad()
        (-value.mean()).backward()
        optimizer.step()
        total += float(value.data.sum(dtype=np.float64))
    return total / len(pixels)


def pretrain(model, train_pixels, args, rng, data_rng, say, budget: Budget,
             score_codes=None) -> dict:
    """Step 1 of the recipe: the encoder mean and decoder trained as an autoencoder; its losses
    (and, end to end with --score-pretraining-every N, every N epochs the test accuracy of
    ``score_codes()``)."""
    if args.pretrain == "plain":
        optimizer = Adam(model.parameters(), lr=args.lr)
        curve = []
        for epoch in range(1, args.pretrain_epochs + 1):
            if curve and budget.spent():
                break
            curve.append(train_epoch(model, optimizer, train_pixels, model.autoencoder_objective,
                                     args, data_rng))
            say(f"pretrain epoch {epoch:3d}  log p(x | μ̃(x)) {curve[-1]:9.2f}")
        return {"autoencoder": curve}
    options = {"batch_size": args.pretrain_batch_size, "lr": args.pretrain_lr,
               "progress": not args.quiet, "budget": budget, "loss": args.pretrain_loss}
    if args.pretrain == "end-to-end":
        scores = []

        def score(epoch):
            if args.score_pretraining_every and epoch % args.score_pretraining_every == 0:
                scores.append([epoch, score_codes()])
                say(f"pretraining epoch {epoch:3d}  test accuracy of k-means on the codes "
                    f"{100 * scores[-1][1]:6.2f}%")

        curve = pretraining.finetune(model, train_pixels, rng, args.pretrain_epochs,
                                     on_epoch=score, **options)
        say(f"autoencoder trained end to end {len(curve)} epochs: {args.pretrain_loss} loss "
            f"{curve[0]:.2f} → {curve[-1]:.2f} per image")
        return {"end_to_end": curve, "kmeans_test_accuracy": scores}
    layer_options = {name: value for name, value in options.items() if name != "loss"}
    layers, curves = pretraining.pretrain_layers(
        train_pixels, [train_pixels.shape[1], *args.hidden, args.z_dim], rng,
        epochs=args.layer_epochs, drop=args.drop, **layer_options)
    for k, curve in enumerate(curves, 1):
        say(f"denoising layer {k}: loss {curve[0]:.4g} → {curve[-1]:.4g} per example")
    pretraining.stack_into(model, layers)
    finetuned = pretraining.finetune(model, train_pixels, rng, args.finetune_epochs, **options)
    say(f"fine-tuned stack: {args.pretrain_loss} loss {finetuned[0]:.2f} → {finetuned[-1]:.2f} "
        f"per image (grey levels)")
    return {"layers": curves, "finetune": finetuned}


def pretrained_model(model, train_pixels, args, rng, data_rng, path: Path, say,
                     budget: Budget, score_codes=None) -> dict:
    """Load ``--pretrained`` (and fine-tune it ``--finetune-more`` epochs), or pretrain; a
    model trained here is saved to ``path`` (atomically)."""
    started = time.perf_counter()
    if args.pretrained is not None:
        arrays, meta = load_checkpoint(args.pretrained)
        model.load_state_dict(arrays)  # which names any layer of another shape
        say(f"pretrained autoencoder read from {args.pretrained} ({meta.get('pretrain')})")
        if not args.finetune_more:
            return {"from": str(args.pretrained)}
        more = pretraining.finetune(model, train_pixels, rng, args.finetune_more,
                                    args.pretrain_batch_size, args.pretrain_lr, not args.quiet,
                                    budget, loss=args.pretrain_loss)
        say(f"fine-tuned {args.finetune_more} more epochs: {args.pretrain_loss} loss "
            f"{more[0]:.2f} → {more[-1]:.2f}")
        curves = dict(meta.get("curves", {}))
        curves["finetune"] = [*curves.get("finetune", []), *more]
        seconds = meta.get("seconds", 0.0) + time.perf_counter() - started
    else:
        curves = pretrain(model, train_pixels, args, rng, data_rng, say, budget, score_codes)
        seconds = time.perf_counter() - started
    meta = {"pretrain": args.pretrain, "pretrain_loss": args.pretrain_loss, "seed": args.seed,
            "dataset": args.dataset, "max_train": args.max_train, "seconds": seconds,
            "curves": curves}
    save_checkpoint(path, model.state_dict(), meta)
    say(f"pretraining took {seconds:.0f} s in all; saved to {path}")
    return {"seconds": seconds, **curves}


def kmeans_means(model, train_pixels, args, rng, count: int = 1) -> list[np.ndarray]:
    """The means (K, z_dim) of mixtures fitted to the training codes μ̃(x) as the GMM start
    fits them (k-means, --gmm-iterations EM steps, --gmm-restarts runs): the most likely fit's
    first, then up to ``count`` − 1 more that split the codes differently, in falling
    likelihood."""
    fits = distinct_gmm_fits(self_training.codes_of(model, train_pixels), args.n_clusters, rng,
                             count, n_init=args.gmm_restarts, kmeans_steps=args.kmeans_steps,
                             iterations=args.gmm_iterations)
    return [fit.means.astype(model.dtype) for fit in fits]


def self_train(model, means, train_pixels, test_x, test_labels, args, rng, say,
               budget: Budget) -> dict:
    """Step 1b: self-training from centroids ``means`` (a k-means fit to the codes,
    ``kmeans_means``); per epoch the test accuracy of the clusters argmax_c q_ic."""
    accuracy = []

    def score(epoch, centroids):
        log_q = self_training.log_soft_assignments(self_training.codes_of(model, test_x),
                                                   centroids).data
        accuracy.append(clustering_accuracy(test_labels, log_q.argmax(axis=1)))
        say(f"self-training epoch {epoch:3d}  test accuracy of argmax q {100 * accuracy[-1]:6.2f}%")

    score(0, means)
    curves = self_training.refine(
        model, train_pixels, means, rng, epochs=args.self_train_epochs,
        batch_size=args.pretrain_batch_size, lr=args.self_train_lr,
        weight=args.self_train_weight, progress=not args.quiet, budget=budget, on_epoch=score,
        loss=args.pretrain_loss)
    return {**curves, "centroids": curves["centroids"].tolist(), "test_accuracy": accuracy}


def prepared_start(index, args, train_pixels, test_x, test_labels, rngs, out: Path, say,
                   budget: Budget) -> tuple[VaDE, dict]:
    """Steps 1, 1b and 2 of the recipe for start ``index`` (0, 1, …): a VaDE whose autoencoder is
    pretrained (saved to OUT/pretrained.npz, OUT/pretrained_1.npz, …), self-trained if asked,
    and whose prior is the GMM fitted to its codes.  Its score, by which the run keeps one of
    ``--starts`` starts, is the training set's ELBO: a bound on log p(x) of the same data under
    the same model, so comparable across autoencoders, and free of labels.  The test accuracy of
    the start is recorded beside it, for the report only.  Start 0 draws from the run's own
    generators (a run with one start is the run of earlier versions); start i > 0 from
    generators seeded by (--seed, i).  With ``--partitions R`` the pretrained autoencoder is
    self-trained R times, a copy from each of R k-means partitions of its codes
    (``kmeans_means``), and the copy of highest training ELBO is the start; partition 0 (the
    most likely) draws from the start's generators, partition r > 0 from generators seeded by
    (--seed, i, 5, r)."""
    model_rng, pretrain_rng, data_rng, gmm_rng = rngs
    if index:
        model_rng, pretrain_rng, data_rng, gmm_rng = np.random.default_rng(
            [args.seed, index]).spawn(4)
    began = time.perf_counter()
    # each counted from the beginning of this start, and ending with the whole budget
    pretrain_budget = budget.stage(args.pretrain_minutes)
    self_train_budget = budget.stage(args.self_train_minutes)

    def new_model(rng):
        return VaDE(train_pixels.shape[1], hidden=tuple(args.hidden), z_dim=args.z_dim,
                    activation=args.activation, n_clusters=args.n_clusters, rng=rng,
                    soft_targets=args.pixels == "grey")

    model = new_model(model_rng)
    if args.starts > 1:
        say(f"start {index} of {args.starts}")
    summary = {"start": index}
    name = "pretrained.npz" if index == 0 else f"pretrained_{index}.npz"
    score_rng = np.random.default_rng([args.seed, index, 4])  # the run's draws stay the same

    def score_codes():  # each test code to its nearest k-means mean
        (means,) = kmeans_means(model, train_pixels, args, score_rng)
        codes = self_training.codes_of(model, test_x)
        nearest = ((codes[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
        return clustering_accuracy(test_labels, nearest)

    summary["pretraining"] = pretrained_model(model, train_pixels, args, pretrain_rng, data_rng,
                                              out / name, say, pretrain_budget, score_codes)
    candidates = []
    partitions = (kmeans_means(model, train_pixels, args, gmm_rng, args.partitions)
                  if args.self_train_epochs else [])
    if len(partitions) > 1:  # each later partition self-trains a copy of this autoencoder
        pretrained = {key: value.copy() for key, value in model.state_dict().items()}
    for r, means in enumerate(partitions):
        if r and self_train_budget.spent():
            break
        partition_began = time.perf_counter()
        rngs = ((pretrain_rng, data_rng, gmm_rng) if r == 0 else
                np.random.default_rng([args.seed, index, 5, r]).spawn(3))
        if r:
            model = new_model(np.random.default_rng(0))  # every weight replaced just below
            model.load_state_dict(pretrained)
            say(f"self-training partition {r} of the codes (of {len(partitions)})")
        trained = self_train(model, means, train_pixels, test_x, test_labels, args, rngs[0],
                             say, self_train_budget)
        candidates.append((model, {"partition": r, "self_training": trained,
                                   **gmm_start(model, index, args, train_pixels, test_x,
                                               test_labels, rngs[1], rngs[2]),
                                   "partition_seconds": time.perf_counter() - partition_began}))
    if not partitions:
        candidates.append((model, gmm_start(model, index, args, train_pixels, test_x,
                                            test_labels, data_rng, gmm_rng)))
    model, chosen = max(candidates, key=lambda candidate: candidate[1]["train_elbo"])
    summary.update(chosen)
    summary["seconds"] = time.perf_counter() - began
    if args.partitions > 1:
        summary["partitions"] = [{key: value for key, value in candidate.items()
                                  if key != "self_training"} for _, candidate in candidates]
        say(f"partition {chosen['partition']} kept: the highest training ELBO ("
            + ", ".join(f"{c['train_elbo']:.2f} in {c['partition_seconds']:.0f} s"
                        for c in summary["partitions"]) + ")")
    if args.starts > 1:
        say(f"start {index}: training ELBO {summary['train_elbo']:.2f}, test accuracy "
            f"{100 * summary['test_accuracy']:.2f}% (not used to choose), "
            f"{summary['seconds']:.0f} s")
    return model, summary


def gmm_start(model, index, args, train_pixels, test_x, test_labels, data_rng, gmm_rng
              ) -> dict:
    """Step 2: the GMM fitted to the codes copied into the prior; the training ELBO, by which
    starts and partitions are chosen (with the same noise for every partition of a start), and
    the test accuracy (for the report only)."""
    codes_of = train_pixels if args.pixels == "grey" else binarize_dynamic(train_pixels,
                                                                            data_rng)
    codes = in_batches(lambda b: model.encode(b).loc.data, codes_of)
    gmm = model.initialize_prior(codes, gmm_rng, n_init=args.gmm_restarts,
                                 kmeans_steps=args.kmeans_steps, iterations=args.gmm_iterations)
    score_rng = np.random.default_rng([args.seed, index, 3])  # not the run's noise: start 0
    return {"gmm_log_likelihood": gmm.log_likelihoods[-1],
            "train_elbo": float(in_batches(lambda b: model.elbo(b, score_rng).data,
                                           codes_of).mean()),
            "test_accuracy": clustering_accuracy(test_labels, in_batches(model.predict, test_x))}


def main(args: argparse.Namespace) -> dict:
    model_rng, data_rng, noise_rng, gmm_rng = np.random.default_rng(args.seed).spawn(4)
    pretrain_rng = np.random.default_rng([args.seed, 1])
    # checked before the data and the pretraining: a typo must not cost an hour
    checks.integer(args.score_pretraining_every, "--score-pretraining-every", 0)
    for name in ("layer_epochs", "finetune_epochs", "pretrain_epochs", "epochs",
                 "lr_decay_every", "gmm_iterations", "gmm_restarts"):
        checks.positive_int(getattr(args, name), "--" + name.replace("_", "-"))
    checks.integer(args.kmeans_steps, "--kmeans-steps", 0)
    checks.integer(args.self_train_epochs, "--self-train-epochs", 0)
    checks.positive(args.self_train_weight, "--self-train-weight", number=True)
    checks.positive(args.self_train_lr, "--self-train-lr", number=True)
    checks.integer(args.finetune_more, "--finetune-more", 0)
    checks.real(args.drop, "--drop", 0.0, 1.0, high_open=True)
    for name in ("budget_minutes", "pretrain_minutes", "self_train_minutes"):
        checks.positive(getattr(args, name), "--" + name.replace("_", "-"), number=True,
                        optional=True)
    checks.positive_int(args.starts, "--starts")
    checks.positive_int(args.partitions, "--partitions")
    if args.partitions > 1 and not args.self_train_epochs:
        raise ValueError(f"--partitions {args.partitions} self-trains from that many k-means "
                         f"partitions: it needs --self-train-epochs > 0")
    checks.positive(args.lr, "--lr", number=True)
    checks.positive(args.adam_eps, "--adam-eps", number=True)
    checks.real(args.min_lr, "--min-lr", 0.0, args.lr)
    if args.starts > 1 and args.pretrained is not None:
        raise ValueError(f"--starts {args.starts} pretrains that many autoencoders: it cannot "
                         f"be combined with --pretrained (one autoencoder)")
    budget = Budget(args.budget_minutes)  # the whole recipe's, from here
    train = load_dataset(args.dataset, "train", root=args.data_root)
    test = load_dataset(args.dataset, "test", root=args.data_root)
    train_pixels = train.pixels(np.float32)
    # a random subset (the files may be sorted by class); x[:0] or x[:-10] would not be one
    if checks.positive_int(args.max_train, "--max-train", optional=True):
        train_pixels = train_pixels[data_rng.permutation(len(train_pixels))[:args.max_train]]
    out = output_folder(args.out)  # after data and checks: a failed start leaves no folder
    test_rng = np.random.default_rng(TEST_BINARIZATION_SEED)
    grey = args.pixels == "grey"
    test_x = test.pixels(np.float32) if grey else binarize_dynamic(test.pixels(np.float32),
                                                                    test_rng)

    history = {"stage": [], "epoch": [], "train": [], "test_accuracy": [], "test_elbo": []}

    def say(line):
        if not args.quiet:
            print(line, flush=True)

    start = time.perf_counter()
    model, starts = None, []
    for index in range(args.starts):
        if index and budget.spent():
            break
        candidate, summary = prepared_start(index, args, train_pixels, test_x, test.labels,
                                            (model_rng, pretrain_rng, data_rng, gmm_rng),
                                            out, say, budget)
        starts.append(summary)
        if model is None or summary["train_elbo"] > max(s["train_elbo"] for s in starts[:-1]):
            model, chosen = candidate, summary
    history.update({key: chosen[key] for key in ("pretraining", "self_training",
                                                 "gmm_log_likelihood", "partition",
                                                 "partitions") if key in chosen})
    if args.starts > 1:
        history["starts"], history["chosen_start"] = starts, chosen["start"]
        scores = ", ".join(f"{s['train_elbo']:.2f}" for s in starts)
        say(f"start {chosen['start']} kept: the highest training ELBO ({scores})")

    def record(stage, epoch, train_value=None):  # None: no training epoch behind this row
        accuracy = clustering_accuracy(test.labels, in_batches(model.predict, test_x))
        elbo = float(in_batches(lambda b: model.elbo(b, noise_rng).data, test_x).mean())
        for key, value in zip(history, (stage, epoch, train_value, accuracy, elbo)):
            history[key].append(value)
        trained = "—" if train_value is None else f"{train_value:.2f}"
        say(f"{stage:8s} epoch {epoch:3d}  train objective {trained:>9s}  "
            f"test accuracy {100 * accuracy:6.2f}%  test ELBO {elbo:9.2f}")

    record("GMM init", 0)

    # fresh moments for the new objective
    optimizer = Adam(model.parameters(), lr=args.lr, eps=args.adam_eps)
    rates = []  # VaDE's per epoch (kept apart: record() fills history's first five keys)
    bar = tqdm(range(1, args.epochs + 1), desc="VaDE", disable=args.quiet, leave=False)
    for epoch in bar:
        optimizer.lr = max(args.lr * args.lr_decay ** ((epoch - 1) // args.lr_decay_every),
                           args.min_lr)
        rates.append(optimizer.lr)
        value = train_epoch(model, optimizer, train_pixels,
                            lambda x: model.objective(x, noise_rng), args, data_rng)
        record("VaDE", epoch, value)
        if epoch < args.epochs and budget.spent():
            history["stopped"] = (f"stopped at the wall-clock budget of {args.budget_minutes:g} "
                                  f"minutes after VaDE epoch {epoch}")
            say(history["stopped"])
            break
    history["vade_learning_rate"] = rates
    history["seconds"] = time.perf_counter() - start
    history["accuracy_after_init"] = history["test_accuracy"][0]
    history["accuracy"] = history["test_accuracy"][-1]
    write_pictures(model, test_x, test.labels, history, out, args)
    write_json(out / "results.json", {"args": vars(args), **history})
    print_table(history, args, out)
    return history


def write_pictures(model, test_x, labels, history, out: Path, args) -> None:
    """Rows ordered by the label each cluster is matched to, so the rows read 0, 1, 2, …"""
    clusters = in_batches(model.predict, test_x)
    mapping = match_clusters_to_labels(labels, clusters)
    order = sorted(range(model.n_clusters), key=lambda c: mapping.get(c, model.n_clusters + c))
    rng = np.random.default_rng(args.seed)
    per_row = 12
    samples = np.concatenate([model.sample(per_row, rng, cluster=c) for c in order])
    save_image_grid(out / "samples_per_cluster.png", samples, ncols=per_row,
                    title="row c: decoded from z ~ N(μ_c, σ_c²), rows sorted by matched label")
    blank = np.zeros((1, test_x.shape[1]), test_x.dtype)
    rows = []
    for c in order:
        members = test_x[clusters == c][:per_row]
        rows.append(np.concatenate([members, np.repeat(blank, per_row - len(members), 0)]))
    save_image_grid(out / "test_clusters.png", np.concatenate(rows), ncols=per_row,
                    title="row c: test digits with argmax_c p(c | μ̃(x)) = c")
    save_curve(out / "curve.png", history["epoch"],
               {"test accuracy (%)": 100 * np.array(history["test_accuracy"])},
               ylabel="clustering accuracy (%)",
               title=f"VaDE on {args.dataset} (epoch 0: after pretraining + GMM)")


def print_table(history: dict, args, out: Path) -> None:
    architecture = "-".join(map(str, [784, *args.hidden, args.z_dim])) + f" {args.activation}"
    if args.pretrained is not None:
        pretrained = "AE from file"
    elif args.pretrain == "plain":
        pretrained = f"AE {len(history['pretraining']['autoencoder'])} ep"
    elif args.pretrain == "end-to-end":
        pretrained = (f"AE {len(history['pretraining']['end_to_end'])} ep "
                      f"({args.pretrain_loss} loss)")
    else:
        pretrained = f"SDAE {args.layer_epochs} ep/layer + {args.finetune_epochs} ep"
        curves = history["pretraining"]
        if "layers" in curves:  # a budget may have cut them short
            pretrained = (f"SDAE {'/'.join(str(len(c)) for c in curves['layers'])} ep/layer + "
                          f"{len(curves['finetune'])} ep")
    if "self_training" in history:
        pretrained += f" + self-training {len(history['self_training']['kl'])} ep"
    if "partitions" in history:
        pretrained += f" (best of {len(history['partitions'])} k-means partitions by ELBO)"
    init = (f"{pretrained} + diag. GMM ({args.kmeans_steps} k-means + {args.gmm_iterations} EM,"
            f" best of {args.gmm_restarts})")
    if "starts" in history:
        init += f", best of {len(history['starts'])} starts by training ELBO"
    rows = [("VaDE, Jiang et al. (2017), reported", "784-500-500-2000-10 relu",
             "pretrained SAE + GMM init (the paper's long runs)", PAPER_ACCURACY),
            ("minivae: pretrained autoencoder + GMM", architecture, init,
             100 * history["accuracy_after_init"]),
            ("minivae: VaDE", architecture, f"{init}, then {history['epoch'][-1]} ep VaDE",
             100 * history["accuracy"])]
    print(f"\nVaDE clustering on {args.dataset} (test set, {args.n_clusters} clusters, "
          f"best one-to-one matching of clusters to labels)")
    widths = (38, 27, 90)
    print("| " + " | ".join(f"{name:{w}s}" for name, w in
                            zip(("model", "architecture", "training"), widths)) + " | accuracy |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|----------|")
    for model, arch, training, accuracy in rows:
        print(f"| {model:{widths[0]}s} | {arch:{widths[1]}s} | {training:{widths[2]}s} | "
              f"{accuracy:7.2f}% |")
    for partition in history.get("partitions", []):
        kept = " (kept)" if partition["partition"] == history["partition"] else ""
        print(f"partition {partition['partition']}: training ELBO {partition['train_elbo']:.2f}, "
              f"test accuracy {100 * partition['test_accuracy']:.2f}%{kept}")
    for start in history.get("starts", []):
        kept = " (kept)" if start["start"] == history["chosen_start"] else ""
        print(f"start {start['start']}: training ELBO {start['train_elbo']:.2f}, test accuracy "
              f"{100 * start['test_accuracy']:.2f}%, {start['seconds']:.0f} s{kept}")
    pixels = "grey levels" if args.pixels == "grey" else "fixed binarization"
    print(f"test ELBO {history['test_elbo'][-1]:.2f} nats (one draw per digit, {pixels})"
          f"; {history['seconds']:.0f} s in all")
    for name, what in (("samples_per_cluster.png", "one row per cluster, z ~ N(μ_c, σ_c²)"),
                       ("test_clusters.png", "one row per cluster, test digits assigned to it"),
                       ("curve.png", "test accuracy per epoch"),
                       ("results.json", "the numbers of the table and the curves")):
        print(f"  {(out / name).resolve()}  — {what}")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

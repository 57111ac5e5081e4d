"""Demo: a VAE trained on the ELBO against the same VAE trained on the IWAE bounds L_5 and L_50.

Burda, Grosse & Salakhutdinov ("Importance Weighted Autoencoders", 2016) train one architecture
on L_k = E[log (1/k) Σ_i p(x, z_i)/q(z_i|x)] for several k and compare the test log-likelihood,
estimated by importance sampling with 5000 samples.  This demo does the same (dynamic
binarization, 784-200-200-50 tanh, as in their one-stochastic-layer rows), with far fewer
epochs than their 3,280, and prints its numbers next to their Table 1.  k = 1 is trained on the
ELBO with the KL in closed form (``objective="elbo"``), k > 1 on ``objective="iwae"``.

Like every demo it runs on the 5,000 embedded digits unless told otherwise; their table is on
full MNIST, which ``--dataset mnist`` reads (from ``--data-root``, ``$MINIVAE_DATA`` or
``~/.cache/minivae/mnist``, downloaded there when missing):

    OPENBLAS_NUM_THREADS=1 python demos/iwae.py --dataset mnist --epochs 5 --batch-size 20 \
        --n-test 1000

On full MNIST an epoch of L_50 does 50 decoder passes per image: about 160 s on one core at
batch 20 (L_5: 16 s, the ELBO: 6 s), and log p(x) with k = 5000 takes about 45 s per 1,000
test images, so that command (the defaults: 5 epochs, batch 20 as in the paper, log p(x) on the
first 1,000 test images) finishes in about 17 minutes.  One BLAS thread: on a shared 2-core
machine, two BLAS threads wait for each other whenever another process holds a core, and
batch-20 steps became 20 times slower in our measurements.

What one hour buys: each k trains for at most ``--budget-minutes`` of wall-clock time (the
checkpoint of the last epoch is kept and scored), ``--jobs 2`` trains two k at once, one BLAS
thread each, and ``--epochs`` takes one count per k, so that a cosine schedule ends about where
the budget does.  docs/RESULTS.md ("One hour per run") lists the ``train`` and ``evaluate``
commands that made its table; this one command runs the same three trainings:

    python demos/iwae.py --dataset mnist --batch-size 100 --lr-schedule cosine \
        --epochs 1100 430 55 --budget-minutes 60 --jobs 2 --n-test 0

(k = 1 and k = 5 together for an hour, then k = 50; each run scored by log p(x) on all
10,000 test images as it ends: about 2 h 20 min in all).

Writes each run's folder (checkpoint, metrics, pictures), nll_vs_k.png, curves.png (each run's
test ELBO against its minutes of training) and results.json.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from minivae import threads
from minivae.data import binarize_dynamic
from minivae.io.json_text import write_json
from minivae.io.plots import new_figure, save_png
from minivae.io.resume import load_model
from minivae.objectives.likelihood import importance_sampling_log_likelihood, standard_error
from minivae.program import (
    add_data_arguments,
    add_quiet_argument,
    demo_parser,
    run_reporting_errors,
)
from minivae.schedules import LR_SCHEDULES
from minivae.train import TEST_BINARIZATION_SEED, TrainConfig, load_binary_split, train

# Burda et al. (2016), Table 1, MNIST, one stochastic layer: test NLL (nats) by training k.
BURDA_VAE = {1: 86.76, 5: 86.47, 50: 86.35}
BURDA_IWAE = {1: 86.76, 5: 85.54, 50: 84.78}
BURDA_SETUP = ("784-200-200-50 tanh, batch 20, 3,280 epochs "
               "(Adam, ε 1e-4, lr 1e-3·10^(−i/7) for 3^i epochs, i = 0..7)")
EVAL_IMAGES_PER_CALL = 100  # test images scored together: bounds the memory of k = 5000


def parse_args(argv=None) -> argparse.Namespace:
    parser = demo_parser(__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 5, 50],
                        help="training samples k (1: the ELBO; more: the IWAE bound L_k)")
    parser.add_argument("--epochs", type=int, nargs="+", default=[5],
                        help="epochs of every run, or one count per k")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                        help="learning rate by epoch, as train's --lr-schedule (cosine: from "
                             "--lr towards 0 over the run's epochs)")
    parser.add_argument("--adam-eps", type=float, default=1e-4, help="Adam's ε (Burda et al.)")
    parser.add_argument("--budget-minutes", type=float, default=None,
                        help="stop each run after the step that spends M minutes of training "
                             "(default: no limit); its last epoch's checkpoint is scored")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained and scored at once, in processes of one BLAS thread "
                             "each (2 on a 2-core machine)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[200, 200])
    parser.add_argument("--z-dim", type=int, default=50)
    parser.add_argument("--k-eval", type=int, default=5000,
                        help="importance samples per test image for log p(x)")
    parser.add_argument("--n-test", type=int, default=1000,
                        help="evaluate log p(x) on the first N test images (0, or more "
                             "than the split holds: all of them, 500 in mnist-5k; k = 5000 "
                             "costs about 1 s per 10 images on 2 cores)")
    parser.add_argument("--max-train", type=int, default=None,
                        help="train on the first N training images only (quick checks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/iwae")
    add_quiet_argument(parser)
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.ks):
        parser.error(f"--ks must be positive integers, got {args.ks}")
    if len(args.epochs) not in (1, len(args.ks)) or any(e < 1 for e in args.epochs):
        parser.error(f"--epochs must be one positive integer, or one per k ({len(args.ks)} "
                     f"for --ks {' '.join(map(str, args.ks))}), got {args.epochs}")
    if args.n_test < 0:  # x[:-5] would silently drop the last five images
        parser.error(f"--n-test must be 0 (all) or a positive integer, got {args.n_test}")
    if args.jobs < 1:
        parser.error(f"--jobs must be a positive integer, got {args.jobs}")
    if args.budget_minutes is not None and not args.budget_minutes > 0:
        parser.error(f"--budget-minutes must be a positive number, got {args.budget_minutes}")
    return args


def epochs_of(args, k: int) -> int:
    return args.epochs[0] if len(args.epochs) == 1 else args.epochs[args.ks.index(k)]


def train_one(args, k: int) -> tuple[dict, float]:
    config = TrainConfig(dataset=args.dataset, data_root=args.data_root,
                         epochs=epochs_of(args, k), batch_size=args.batch_size, lr=args.lr,
                         lr_schedule=args.lr_schedule, adam_eps=args.adam_eps,
                         budget_minutes=args.budget_minutes, hidden=tuple(args.hidden),
                         z_dim=args.z_dim, activation="tanh", seed=args.seed,
                         max_train=args.max_train, objective="elbo" if k == 1 else "iwae", k=k,
                         out=str(Path(args.out) / f"k{k}"))
    start = time.perf_counter()
    metrics = train(config, progress=not args.quiet)
    return metrics, time.perf_counter() - start


def evaluate_log_likelihood(args, k: int) -> tuple[np.ndarray, float]:
    """Per-image log p̂(x) with ``--k-eval`` importance samples, and the seconds it took."""
    model, config = load_model(Path(args.out) / f"k{k}" / "checkpoint.npz")
    config.max_test = None  # the first rows of the binarized split: the same for every N
    test_x = binarize_dynamic(load_binary_split(config, "test"),
                              np.random.default_rng(TEST_BINARIZATION_SEED))[:args.n_test or None]
    rng = np.random.default_rng(args.seed + 1)
    start = time.perf_counter()
    starts = tqdm(range(0, len(test_x), EVAL_IMAGES_PER_CALL), disable=args.quiet, leave=False,
                  desc=f"k = {k}: log p(x), {args.k_eval} importance samples per image")
    log_px = np.concatenate([
        importance_sampling_log_likelihood(model, test_x[i:i + EVAL_IMAGES_PER_CALL],
                                           args.k_eval, rng)[0] for i in starts])
    return log_px, time.perf_counter() - start


def run_one(args, k: int) -> dict:
    """Train on k samples, then score log p(x): one run, in this process or in a job's."""
    metrics, train_seconds = train_one(args, k)
    log_px, eval_seconds = evaluate_log_likelihood(args, k)
    print(f"k = {k}: trained {train_seconds:.0f} s ({metrics['epoch'][-1]} epochs), evaluated "
          f"{eval_seconds:.0f} s, test NLL {-log_px.mean():.2f}", flush=True)
    return {"k": k, "metrics": metrics, "log_px": log_px, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds}


def run_in_job(args, k: int) -> dict:
    threads.set_num_threads(1)  # jobs share the cores: more BLAS threads would wait on each other
    args.quiet = True  # bars of several processes would overwrite each other's line
    return run_one(args, k)


def run_all(args) -> list[dict]:
    """Every k's run, ``--jobs`` at a time, in the order of ``--ks``."""
    if args.jobs == 1:
        return [run_one(args, k) for k in args.ks]
    # fork: the jobs start from this process's imports (a demo is not an importable module)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        runs = [pool.submit(run_in_job, args, k) for k in args.ks]
        for _ in tqdm(as_completed(runs), total=len(runs), disable=args.quiet,
                      desc=f"runs, {args.jobs} at a time"):
            pass
        return [run.result() for run in runs]


def table_rows(runs: list[dict]) -> list[dict]:
    rows, baseline = [], runs[0]["log_px"]
    for run in runs:
        log_px, metrics = run["log_px"], run["metrics"]
        rows.append({"k": run["k"], "objective": metrics["objective"],
                     "nll": float(-log_px.mean()), "nll_se": standard_error(log_px),
                     "n_test": len(log_px),
                     # the same images for every k, so differences have a paired error
                     "minus_first": float(-(log_px - baseline).mean()) + 0.0,  # no "−0.00"
                     "minus_first_se": standard_error(log_px - baseline),
                     "test_elbo": metrics["test_elbo"][-1], "epochs": metrics["epoch"][-1],
                     "stopped": metrics.get("stopped"), "train_seconds": run["train_seconds"],
                     "eval_seconds": run["eval_seconds"]})
    return rows


def draw(path: Path, rows: list[dict], args) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    ks = [row["k"] for row in rows]
    axes.errorbar(ks, [row["nll"] for row in rows], yerr=[row["nll_se"] for row in rows],
                  marker="o", capsize=3, label=f"minivae, {run_length(args)} (± SE over images)")
    for label, table, style in (("Burda et al. VAE", BURDA_VAE, "s--"),
                                ("Burda et al. IWAE", BURDA_IWAE, "^--")):
        axes.plot(list(table), list(table.values()), style, label=f"{label}, 3,280 epochs")
    axes.set_xscale("log")
    ticks = sorted({*ks, *BURDA_IWAE})
    axes.set_xticks(ticks, [str(k) for k in ticks])
    axes.minorticks_off()
    axes.set_xlabel("k (samples per image in the training objective)")
    axes.set_ylabel("test NLL = −log p(x), nats (lower is better)")
    axes.set_title(f"{args.dataset}: −log p(x) by importance sampling, k = {args.k_eval}, "
                   f"{rows[0]['n_test']} test images")
    axes.legend()
    return save_png(figure, path)


def draw_curves(path: Path, runs: list[dict], rows: list[dict]) -> Path:
    """Each run's test ELBO after every epoch against the minutes it had trained: at equal
    wall time, a k-sample bound has had fewer epochs."""
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for run, row in zip(runs, rows):
        minutes = np.cumsum(run["metrics"]["seconds"]) / 60
        name = "ELBO" if row["objective"] == "elbo" else f"L_{row['k']}"
        axes.plot(minutes, run["metrics"]["test_elbo"],
                  label=f"trained on the {name}: {row['epochs']} epochs, NLL {row['nll']:.2f}")
    axes.set_xlabel("minutes of training (scoring the test set not counted)")
    axes.set_ylabel("test ELBO, nats (one sample per image)")
    low = min(np.percentile(run["metrics"]["test_elbo"], 10) for run in runs)
    high = max(max(run["metrics"]["test_elbo"]) for run in runs)
    axes.set_ylim(low, high + 0.05 * (high - low) + 1e-9)  # the first epochs would flatten all
    axes.set_title("test ELBO while training (−log p(x) at the end: the legend)")
    axes.legend()
    return save_png(figure, path)


def main(args: argparse.Namespace) -> list[dict]:
    runs = run_all(args)
    rows = table_rows(runs)
    out = Path(args.out)
    pictures = [draw(out / "nll_vs_k.png", rows, args), draw_curves(out / "curves.png", runs, rows)]
    write_json(out / "results.json", {"args": vars(args), "rows": rows})
    print_table(rows, args)
    print("", *pictures, out / "results.json", sep="\n")
    return rows


def run_length(args) -> str:
    epochs = "/".join(map(str, args.epochs)) + " epochs"
    return epochs + (f" or {args.budget_minutes:g} minutes" if args.budget_minutes else "")


def print_table(rows: list[dict], args) -> None:
    ours = (f"{'-'.join(map(str, [784, *args.hidden, args.z_dim]))} tanh, batch "
            f"{args.batch_size}, {run_length(args)} (Adam, ε {args.adam_eps:g}, lr "
            f"{args.lr:g}, {args.lr_schedule})")
    print(f"\nTest NLL (nats, lower is better), −log p(x) by importance sampling with "
          f"k = {args.k_eval},\non the first {rows[0]['n_test']} {args.dataset} test images "
          f"(binarized once, seed {TEST_BINARIZATION_SEED}).")
    print(f"  ours:         {ours}")
    print(f"  Burda et al.: {BURDA_SETUP}, all 10,000 test images")
    first = rows[0]["k"]
    print(f"\n{'k':>4}  {'trained on':>10}  {'epochs':>6}  {'minutes':>7}  "
          f"{'ours: NLL ± SE':>16}  {f'Δ vs k={first}':>16}  {'test ELBO':>9}  "
          f"{'Burda VAE':>9}  {'Burda IWAE':>10}")
    for row in rows:
        name = "ELBO" if row["objective"] == "elbo" else f"L_{row['k']}"
        burda = [f"{table[row['k']]:.2f}" if row["k"] in table else "—"
                 for table in (BURDA_VAE, BURDA_IWAE)]
        print(f"{row['k']:4d}  {name:>10}  {row['epochs']:6d}  {row['train_seconds'] / 60:7.1f}  "
              f"{row['nll']:9.2f} ± {row['nll_se']:4.2f}  "
              f"{row['minus_first']:+9.2f} ± {row['minus_first_se']:4.2f}  "
              f"{row['test_elbo']:9.2f}  {burda[0]:>9}  {burda[1]:>10}")
    print("(SE: standard error over the test images; Δ is paired, on the same images; test ELBO:"
          "\n the one-sample ELBO averaged over the whole test split, as train() reports it;"
          "\n minutes: the run's wall time, scoring the test set each epoch included)")


if __name__ == "__main__":
    sys.exit(run_reporting_errors(lambda: main(parse_args())))

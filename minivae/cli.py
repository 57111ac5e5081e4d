"""Command line: ``python -m minivae train ...`` and ``python -m minivae evaluate ...``.

Whatever goes wrong, the command ends with one line on stderr, ``error: ...``, that names the
flag or the file at fault, and no traceback; ``minivae.program`` says how, and lists the exit
codes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from minivae import checks, threads
from minivae.models.registry import MODELS, default_activation
from minivae.nn import HIDDEN_ACTIVATIONS
from minivae.program import (
    DATA_ROOT_HELP,
    DATASET_HELP,
    OneLineParser,
    run_reporting_errors,
)


def build_parser() -> argparse.ArgumentParser:
    from minivae.config import BINARIZATIONS
    from minivae.config import TrainConfig as defaults  # its class attributes: the defaults
    from minivae.nn import INITIALIZATIONS
    from minivae.schedules import LR_SCHEDULES

    parser = OneLineParser(prog="python -m minivae",
                           description="Train and evaluate variational autoencoders.",
                           epilog="Errors are one line on stderr. Exit status: 0 done; 1 the run "
                                  "failed (training diverged, the output folder is in use by "
                                  "another run, a disk error); 2 a bad command, option or file; "
                                  "130 interrupted; 141 stdout was closed early.")
    commands = parser.add_subparsers(dest="command", required=True)

    # The train options have no defaults here (None): one left out takes TrainConfig's default
    # in a new run and the run's own value with --resume, so None means "not given", and the
    # help names TrainConfig's default itself.
    train = commands.add_parser(
        "train", help=f"train one of {len(MODELS)} models (default: the Bernoulli VAE)",
        description="Train a model: a Bernoulli VAE, or another in --model. Options left out "
                    "take the defaults shown, those of minivae.train.TrainConfig (with "
                    "--resume: the run's own values). After every epoch the test ELBO is the "
                    "one-sample ELBO of the test images, binarized once with a fixed seed, "
                    "with noise drawn from the run's own stream; evaluate scores the same "
                    "images with noise from its --seed, so its ELBO differs by Monte Carlo "
                    "noise alone.")
    train.add_argument("--dataset", help=f"{DATASET_HELP}; fashion-mnist likewise (default: "
                                         f"{defaults.dataset})")
    train.add_argument("--data-root", help=DATA_ROOT_HELP)
    train.add_argument("--epochs", type=int,
                       help=f"number of epochs the run trains in all (default: {defaults.epochs})")
    train.add_argument("--batch-size", type=int, help=f"(default: {defaults.batch_size})")
    train.add_argument("--lr", type=float, help=f"Adam's learning rate (default: {defaults.lr})")
    train.add_argument("--z-dim", type=int, help=f"latent dimensions (default: {defaults.z_dim})")
    train.add_argument("--hidden", type=int, nargs="+",
                       help=f"hidden layer widths, e.g. --hidden 400 400 (default: "
                            f"{' '.join(map(str, defaults.hidden))})")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS,
                       help="hidden activation (default: the model's own, tanh for the VAE)")
    train.add_argument("--leaky-slope", type=float,
                       help=f"negative slope of leaky_relu (default: {defaults.leaky_slope})")
    train.add_argument("--binarize", choices=BINARIZATIONS,
                       help="how the training images become binary: a fresh Bernoulli draw of "
                            "every pixel each epoch (dynamic), one draw kept for the whole run "
                            "(static), or x > 1/2 (round, as torch.round does); the test images "
                            "are thresholded too with round, else drawn once with a fixed seed "
                            f"(default: {defaults.binarize})")
    train.add_argument("--dtype", choices=["float32", "float64"],
                       help=f"(default: {defaults.dtype})")
    train.add_argument("--objective", choices=["elbo", "iwae"],
                       help="bound to maximize: the ELBO (one sample, exact KL) or the "
                            "importance-weighted bound L_k of Burda et al. (2016) (default: "
                            f"{defaults.objective})")
    train.add_argument("--k-train", type=int,
                       help="samples per image of L_k when --objective iwae (default: 5; "
                            "the ELBO uses 1)")
    train.add_argument("--model", choices=sorted(MODELS),
                       help=f"which model to train (default: {defaults.model}, the Bernoulli VAE)")
    train.add_argument("--option", action="append", metavar="KEY=VALUE", type=option_pair,
                       help="a model option, e.g. --option n_classes=10 (repeatable; VALUE is "
                            "read as JSON when it parses, else as a string)")
    train.add_argument("--labels", type=int,
                       help="how many training images keep their labels, as many of each "
                            "class, chosen by --seed (semi-supervised --model m2 only; the "
                            "paper's MNIST setting is 100)")
    train.add_argument("--lr-schedule", choices=LR_SCHEDULES,
                       help="the learning rate of each epoch e from --lr: constant; burda, "
                            "Burda et al. (2016)'s 3^i epochs at --lr·10^(-i/7), i = 0..7 "
                            "(3280 epochs); cosine, --lr·(1 + cos(π(e-1)/epochs))/2; step, "
                            "halved every 10 epochs (default: "
                            f"{defaults.lr_schedule})")
    train.add_argument("--kl-warmup", type=int, metavar="EPOCHS",
                       help="train on log p(x|z) - β KL with β = min(1, epoch/EPOCHS), rising "
                            "linearly epoch by epoch (--model vae, --objective elbo); the test "
                            f"ELBO is always the true one (default: {defaults.kl_warmup}, β = 1)")
    train.add_argument("--adam-eps", type=float,
                       help=f"Adam's ε (default: {defaults.adam_eps}; Burda et al. used 1e-4)")
    train.add_argument("--init", choices=INITIALIZATIONS,
                       help="weights of the linear layers: default U(±1/√fan_in) as in "
                            "PyTorch, glorot U(±√(6/(fan_in+fan_out))), he N(0, 2/fan_in); "
                            f"biases 0 but with default (default: {defaults.init})")
    train.add_argument("--validation", type=int, metavar="N",
                       help="hold N training images out, drawn by --seed, scored every epoch "
                            "(validation_elbo in metrics.json); best.npz keeps the weights of "
                            "the best epoch (default: none)")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without a better validation ELBO, "
                            "judged on the images of --validation (default: none)")
    train.add_argument("--budget-minutes", type=float, metavar="M",
                       help="stop after the step that spends M minutes of wall-clock time, "
                            "with the epoch's checkpoint and metrics written; --resume starts "
                            "a fresh budget (default: none)")
    train.add_argument("--seed", type=int, help=f"(default: {defaults.seed})")
    train.add_argument("--max-train", type=int,
                       help="use only the first N training images (default: all)")
    train.add_argument("--max-test", type=int,
                       help="score only the first N test images (default: all)")
    train.add_argument("--out", default=defaults.out, help="output folder")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, with the "
                            "options it was started with; --epochs N trains it to N epochs, "
                            "--data-root reads the data from elsewhere, --budget-minutes sets a "
                            "fresh budget, and any other option "
                            "given must equal the run's")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--threads", type=int,
                       help="BLAS threads for the matrix products (default: measured while "
                            "training, one or all cores, whichever is faster under the "
                            "machine's load; a fixed count makes runs bit-reproducible)")

    evaluate = commands.add_parser(
        "evaluate", help="test ELBO and importance-sampled log p(x) of a trained run",
        description="Score a checkpoint written by train on the test images train scored it "
                    "on (the run's data and --max-test, binarized once with the same fixed "
                    "seed): the one-sample test ELBO (for a model without an ELBO, its "
                    "objective) ± its standard error over the images, and, for models with "
                    "importance weights, log p(x) estimated by importance sampling with --k "
                    "samples per image. The ELBO's noise ε comes from --seed and train's from "
                    "the run's own stream, so the two test ELBOs are two Monte Carlo draws of "
                    "one mean: on 500 test images they differ by a few tenths of a nat, on "
                    "10,000 by a few hundredths.")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint.npz written by train")
    evaluate.add_argument("--k", type=int, default=5000,
                          help="importance samples per image for log p(x)")
    evaluate.add_argument("--n", type=int, default=None,
                          help="score the first N test images (default: those the run was "
                               "scored on, all or its --max-test)")
    evaluate.add_argument("--data-root", default=None,
                          help="folder holding the test files (default: the run's own "
                               "--data-root, else $MINIVAE_DATA, else ~/.cache/minivae/<dataset>)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="seed of the noise of the test ELBO and the importance samples")
    evaluate.add_argument("--save", metavar="FILE.npz", default=None,
                          help="also write each image's scores to FILE.npz (arrays elbo and, "
                               "for models with importance weights, log_px): two runs scored "
                               "with one --seed on one set give paired differences")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.add_argument("--threads", type=int,
                          help="BLAS threads for the matrix products (default: measured while "
                               "scoring log p(x), as train does)")
    return parser


def option_pair(pair: str) -> tuple[str, object]:
    """``"n_classes=10"`` → ``("n_classes", 10)``: the VALUE is read as JSON, except that
    true/false are accepted in any case (``True`` as in Python); anything else that is not
    JSON stays a string."""
    key, sep, value = pair.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--option must look like KEY=VALUE, got {pair!r}")
    if value.strip().lower() in ("true", "false"):
        return key, value.strip().lower() == "true"
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def parse_options(pairs: list) -> dict:
    """``["n_classes=10", "ema=true"]`` (or the pairs ``option_pair`` made of them) →
    ``{"n_classes": 10, "ema": True}``; a key given twice is a ValueError."""
    options = {}
    for key, value in (option_pair(p) if isinstance(p, str) else p for p in pairs):
        if key in options:
            raise ValueError(f"--option {key} is given twice ({options[key]!r} and {value!r})")
        options[key] = value
    return options


def train_flags(model_options=()) -> dict:
    """Each TrainConfig field's flag (``"batch_size"`` → ``"--batch-size"``, ``"k"`` →
    ``"--k-train"``) and each given model option's (``"n_classes"`` → ``"--option
    n_classes"``): the one table by which an error about a field names its flag."""
    from minivae.config import TrainConfig

    flags = {field.name: "--" + field.name.replace("_", "-")
             for field in dataclasses.fields(TrainConfig)}
    flags.update(k="--k-train", model_options="--option")
    return {**flags, **{key: f"--option {key}" for key in model_options}}


EVALUATE_FLAGS = {"max_test": "--n", "data_root": "--data-root"}


def given_train_fields(args) -> dict:
    """The TrainConfig fields that the command line sets (all but --out); options left out
    are None and so are absent here."""
    fields = dict(
        dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        z_dim=args.z_dim, hidden=args.hidden, activation=args.activation,
        leaky_slope=args.leaky_slope, binarize=args.binarize, seed=args.seed, dtype=args.dtype,
        data_root=args.data_root,
        max_train=args.max_train, max_test=args.max_test, objective=args.objective,
        k=args.k_train, model=args.model, labels=args.labels, lr_schedule=args.lr_schedule,
        kl_warmup=args.kl_warmup, adam_eps=args.adam_eps, init=args.init,
        validation=args.validation, early_stopping=args.early_stopping,
        budget_minutes=args.budget_minutes,
        model_options=None if args.option is None else parse_options(args.option))
    return {name: value for name, value in fields.items() if value is not None}


def new_run_config(out: str, fields: dict):
    """The config of a new run: ``fields`` over TrainConfig's defaults, where the activation
    defaults to the model's own and k to 5 for L_k (the ELBO has k = 1)."""
    from minivae.config import TrainConfig

    defaults = {"activation": default_activation(fields.get("model", "vae")),
                "k": 5 if fields.get("objective") == "iwae" else 1}
    return TrainConfig(out=out, **{**defaults, **fields})


def run_train(args) -> None:
    from minivae.io.resume import RUN_FILES, resume_config
    from minivae.train import bound_name, train

    fields = given_train_fields(args)
    if args.threads is not None:
        threads.set_num_threads(checks.positive_int(args.threads, "--threads"))
    # resuming: the run's own config, changed only where the command line says so (and allowed)
    config = (resume_config(args.out, **fields) if args.resume
              else new_run_config(args.out, fields))
    metrics = train(config, progress=not args.quiet, resume=args.resume)
    first, *others = (name for name in RUN_FILES.values() if (Path(args.out) / name).exists())
    epochs = metrics["epoch"][-1]
    stopped = f"{metrics['stopped']}; " if "stopped" in metrics else ""
    print(f"{stopped}final test {metrics['test_metric']} {metrics['test_elbo'][-1]:.3f} nats "
          f"after {epochs} epoch{'' if epochs == 1 else 's'} on the "
          f"{bound_name(config.objective, config.k, config.model)}; "
          f"wrote {Path(args.out) / first}, {', '.join(others)}")


def run_evaluate(args) -> None:
    from minivae.engine.tensor import no_grad
    from minivae.io.resume import load_model
    from minivae.objectives.likelihood import importance_sampling_log_likelihood, standard_error
    from minivae.train import (
        bound_name,
        scored_test_images,
        test_metric_name,
        training_data,
    )

    checks.positive_int(args.k, "--k"), checks.integer(args.seed, "--seed", 0)
    checks.positive_int(args.n, "--n", optional=True)
    if args.threads is not None:
        threads.set_num_threads(checks.positive_int(args.threads, "--threads"))
    if args.save is not None and (not args.save.endswith(".npz") or Path(args.save).is_dir()):
        raise ValueError(f"--save must name a file ending in .npz, got {args.save!r}")
    if Path(args.checkpoint).is_dir():
        raise IsADirectoryError(21, "--checkpoint must be a file, the checkpoint.npz in a run's "
                                    "folder, got a folder", str(Path(args.checkpoint)))
    model, config = load_model(args.checkpoint)
    # the run's own test images unless told otherwise: its --max-test and its --data-root
    config = dataclasses.replace(
        config, max_test=config.max_test if args.n is None else args.n,
        data_root=config.data_root if args.data_root is None else args.data_root)
    test_x = scored_test_images(model, training_data(config).test_pixels,  # the run's images
                                config.binarize)
    rng = np.random.default_rng(args.seed)
    metric = test_metric_name(model)
    score = model.elbo if metric == "ELBO" else model.objective
    with no_grad():  # in batches of 1000, as train scores them
        values = np.concatenate([score(test_x[i:i + 1000], rng).data.astype(np.float64)
                                 for i in range(0, len(test_x), 1000)])
    print(f"dataset {config.dataset} (test, {len(test_x)} images), model {config.model} "
          f"trained on the {bound_name(config.objective, config.k, config.model)}")
    print(f"test {metric:<17} {values.mean():10.3f} ± {standard_error(values):.3f} nats")
    scores = {"elbo" if metric == "ELBO" else "objective": values}
    if hasattr(model, "log_importance_weights"):
        log_px, _ = importance_sampling_log_likelihood(model, test_x, args.k, rng, batch_size=100,
                                                       progress=not args.quiet)
        print(f"log p(x), IS k={args.k:<5d} {log_px.mean():10.3f} ± "
              f"{standard_error(log_px):.3f} nats")
        scores["log_px"] = log_px.astype(np.float64)
    if args.save is not None:
        save_scores(args.save, scores, k=args.k, seed=args.seed)
        print(f"wrote {args.save}")


def save_scores(path: str, scores: dict, k: int, seed: int) -> None:
    """The per-image scores of ``evaluate --save`` as one .npz, written whole or not at all."""
    from minivae.io.atomic import atomic_write

    atomic_write(path, lambda tmp_path: np.savez(tmp_path, **scores, k=k, seed=seed))


def main(argv=None) -> int:
    """Run the command ``argv`` (default: sys.argv); return its exit code (the module
    docstring lists them).  argparse's own errors and ``--help`` end in SystemExit."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return run_reporting_errors(
            run_command, args, flags=train_flags(dict(args.option or [])),
            interrupted="interrupted (a training run continues from its last finished epoch "
                        "with --resume)")
    return run_reporting_errors(run_command, args, flags=EVALUATE_FLAGS)


def run_command(args) -> None:
    # NumPy's overflow warnings would add lines to the one that explains: a non-finite bound
    # or weight is caught by the training loop's own checks and reported as such.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        (run_train if args.command == "train" else run_evaluate)(args)


if __name__ == "__main__":
    sys.exit(main())

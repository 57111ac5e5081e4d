"""Command line: ``python -m minivae train ...`` and ``python -m minivae evaluate ...``.

Whatever goes wrong, the command ends with one line on stderr, ``error: ...``, that names the
flag or the file at fault, and no traceback.  Exit codes:

* 0: done;
* 1: the run failed although its input was valid: training diverged, another run holds the
  output folder, the disk failed;
* 2: the command or its input is wrong: an unknown flag or a bad value (argparse's own
  errors too, printed as one line rather than a usage block; ``--help`` shows the usage), a
  missing, damaged or foreign file, a folder that cannot be written to, sizes that cannot fit
  in memory;
* 130: interrupted (Ctrl-C); a training run continues from its last epoch with ``--resume``;
* 141: stdout was closed early (``python -m minivae evaluate ... | head -1``): the rest of the
  output is dropped silently, and the code is the shell's for a process ended by SIGPIPE, as
  for any Unix tool in that pipe.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from minivae import checks, threads
from minivae.models.registry import MODELS, default_activation
from minivae.nn import HIDDEN_ACTIVATIONS

USAGE_ERROR, RUN_FAILED, INTERRUPTED, OUTPUT_CLOSED = 2, 1, 130, 141


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one ``error:`` line like every other error
    (argparse would print the usage block first), and every option's default in ``--help``.
    The subcommands' parsers and the demos' are of this class too."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")

    def add_argument(self, *args, **kwargs):
        """argparse's, with " (default: X)" added to the help of an option whose default is
        a value.  None (not given: the help says what happens then) and False (an off
        switch) are not shown; argparse's own defaults formatter shows them, and shows no
        default for an option without a help text."""
        action = super().add_argument(*args, **kwargs)
        help_text = action.help or ""
        if (action.option_strings and action.default is not None
                and action.default is not False and action.default != argparse.SUPPRESS
                and help_text != argparse.SUPPRESS and "%(default)" not in help_text):
            action.help = f"{help_text} (default: %(default)s)".lstrip()
        return action


def demo_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a demo: one-line errors and defaults in --help, like the commands'."""
    return OneLineParser(description=description)


DATASET_HELP = ("mnist-5k: 4,500 + 500 real MNIST digits that ship with minivae[demo], no "
                "download; mnist: the full 60,000 + 10,000, downloaded once (see --data-root)")
DATA_ROOT_HELP = ("folder holding the dataset's four IDX .gz files, directly or in "
                  "FOLDER/<dataset>/ (default: $MINIVAE_DATA, else ~/.cache/minivae/<dataset>, "
                  "where a missing dataset is downloaded)")


def add_data_arguments(parser: argparse.ArgumentParser,
                       datasets: tuple[str, ...] = ("mnist-5k", "mnist")) -> None:
    """``--dataset`` (default: the embedded mnist-5k, so a demo runs offline) and
    ``--data-root``, found as ``python -m minivae train`` finds them."""
    parser.add_argument("--dataset", default="mnist-5k", choices=datasets, help=DATASET_HELP)
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)


def build_parser() -> argparse.ArgumentParser:
    from minivae.config import TrainConfig as defaults  # its class attributes: the defaults

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
    train.add_argument("--seed", type=int, help=f"(default: {defaults.seed})")
    train.add_argument("--max-train", type=int,
                       help="use only the first N training images (default: all)")
    train.add_argument("--max-test", type=int,
                       help="score only the first N test images (default: all)")
    train.add_argument("--out", default=defaults.out, help="output folder")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, with the "
                            "options it was started with; --epochs N trains it to N epochs, "
                            "--data-root reads the data from elsewhere, and any other option "
                            "given must equal the run's")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
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
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.add_argument("--threads", type=int,
                          help="BLAS threads for the matrix products (default: all cores)")
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


def in_flag_terms(message: str, flags: dict) -> str:
    """``message`` with the field it starts with ("seed must be ...", "every hidden width
    ...") called by its flag ("--seed must be ...", "every --hidden width ...")."""
    subject = re.match(r"(every )?([a-z_]+) ", message)
    if subject is None or subject[2] not in flags:
        return message
    return message[:subject.start(2)] + flags[subject[2]] + message[subject.end(2):]


def given_train_fields(args) -> dict:
    """The TrainConfig fields that the command line sets (all but --out); options left out
    are None and so are absent here."""
    fields = dict(
        dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        z_dim=args.z_dim, hidden=args.hidden, activation=args.activation,
        leaky_slope=args.leaky_slope, seed=args.seed, dtype=args.dtype, data_root=args.data_root,
        max_train=args.max_train, max_test=args.max_test, objective=args.objective,
        k=args.k_train, model=args.model,
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
    first, *others = RUN_FILES.values()
    print(f"final test {metrics['test_metric']} {metrics['test_elbo'][-1]:.3f} nats after "
          f"{config.epochs} epoch{'' if config.epochs == 1 else 's'} on the "
          f"{bound_name(config.objective, config.k, config.model)}; "
          f"wrote {Path(args.out) / first}, {', '.join(others)}")


def run_evaluate(args) -> None:
    from minivae.engine.tensor import no_grad
    from minivae.io.resume import load_model
    from minivae.objectives.likelihood import importance_sampling_log_likelihood, standard_error
    from minivae.train import (
        bound_name,
        load_binary_split,
        scored_test_images,
        test_metric_name,
    )

    checks.positive_int(args.k, "--k"), checks.integer(args.seed, "--seed", 0)
    checks.positive_int(args.n, "--n", optional=True)
    if args.threads is not None:
        threads.set_num_threads(checks.positive_int(args.threads, "--threads"))
    if Path(args.checkpoint).is_dir():
        raise IsADirectoryError(21, "--checkpoint must be a file, the checkpoint.npz in a run's "
                                    "folder, got a folder", str(Path(args.checkpoint)))
    model, config = load_model(args.checkpoint)
    # the run's own test images unless told otherwise: its --max-test and its --data-root
    config = dataclasses.replace(
        config, max_test=config.max_test if args.n is None else args.n,
        data_root=config.data_root if args.data_root is None else args.data_root)
    test_x = scored_test_images(model, load_binary_split(config, "test"))
    rng = np.random.default_rng(args.seed)
    metric = test_metric_name(model)
    score = model.elbo if metric == "ELBO" else model.objective
    with no_grad():  # in batches of 1000, as train scores them
        values = np.concatenate([score(test_x[i:i + 1000], rng).data.astype(np.float64)
                                 for i in range(0, len(test_x), 1000)])
    print(f"dataset {config.dataset} (test, {len(test_x)} images), model {config.model} "
          f"trained on the {bound_name(config.objective, config.k, config.model)}")
    print(f"test {metric:<17} {values.mean():10.3f} ± {standard_error(values):.3f} nats")
    if hasattr(model, "log_importance_weights"):
        log_px, _ = importance_sampling_log_likelihood(model, test_x, args.k, rng, batch_size=100,
                                                       progress=not args.quiet)
        print(f"log p(x), IS k={args.k:<5d} {log_px.mean():10.3f} ± "
              f"{standard_error(log_px):.3f} nats")


# Input the user can correct (exit 2), and failures of a valid run (exit 1; a folder held by
# another run, FolderInUseError, too).  The project's CheckpointError and DatasetError are
# ValueErrors, DatasetNotFoundError a FileNotFoundError; a MemoryError means sizes too large
# for this machine (check_memory names the flag).
INPUT_ERRORS = (ValueError, TypeError, MemoryError, FileNotFoundError, FileExistsError,
                IsADirectoryError, NotADirectoryError, PermissionError)
# a file name the file system cannot take, a read-only file system: the user's choice too
INPUT_ERRNOS = (errno.ENAMETOOLONG, errno.ELOOP, errno.EROFS)
RUN_ERRORS = (FloatingPointError, OSError)  # diverged training, a failing disk


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


def run_reporting_errors(function, *args, flags: dict | None = None,
                         interrupted: str = "interrupted") -> int:
    """Call ``function(*args)`` and return the exit code of the module docstring: 0 when it
    returns, else the code of what it raised, reported as one ``error: ...`` line on stderr
    with no traceback (``interrupted`` is the line for Ctrl-C).  ``flags`` maps the fields an
    error message may start with to their flags (``in_flag_terms``).  The commands of
    ``python -m minivae`` run through it, and so does every demo's main::

        sys.exit(run_reporting_errors(lambda: main(parse_args())))
    """
    from minivae.io.lock import FolderInUseError

    try:
        function(*args)
        sys.stdout.flush()  # a closed pipe shows up here, not while the interpreter exits
        return 0
    except BrokenPipeError:
        silence_stdout()
        return OUTPUT_CLOSED
    except KeyboardInterrupt:
        return report(interrupted, INTERRUPTED)
    except INPUT_ERRORS as error:
        return report(in_flag_terms(describe(error), flags or {}), USAGE_ERROR)
    except (*RUN_ERRORS, FolderInUseError) as error:
        code = USAGE_ERROR if getattr(error, "errno", None) in INPUT_ERRNOS else RUN_FAILED
        return report(describe(error), code)


def describe(error: BaseException) -> str:
    """The error's message on one line (its type's name if it has none); an OSError's as
    "what: file", without the errno."""
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.strerror}: {error.filename}"
    else:
        text = str(error)
    return " ".join(text.split()) or type(error).__name__


def report(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def silence_stdout() -> None:
    """Point stdout at the null device: whatever is still buffered for the reader that has
    gone would fail again when the interpreter flushes it on exit."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (e.g. captured)
        pass


if __name__ == "__main__":
    sys.exit(main())

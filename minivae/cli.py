"""Command line: ``python -m minivae train ...`` and ``python -m minivae evaluate ...``."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from minivae.models.registry import MODELS, default_activation
from minivae.nn import HIDDEN_ACTIVATIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minivae",
                                     description="Train and evaluate variational autoencoders.")
    commands = parser.add_subparsers(dest="command", required=True)

    # The train options have no defaults here (None): one left out takes TrainConfig's default
    # in a new run and the run's own value with --resume, so None means "not given".
    train = commands.add_parser(
        "train", help="train a Bernoulli VAE",
        description="Train a model. Options left out take the defaults of "
                    "minivae.train.TrainConfig (with --resume: the run's own values).")
    train.add_argument("--dataset",
                       help="mnist, fashion-mnist or mnist-5k (embedded; needs minivae[demo])")
    train.add_argument("--data-root",
                       help="folder with the IDX .gz files (default: $MINIVAE_DATA, ~/.cache)")
    train.add_argument("--epochs", type=int, help="number of epochs the run trains in all")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--z-dim", type=int)
    train.add_argument("--hidden", type=int, nargs="+",
                       help="hidden layer widths, e.g. --hidden 400 400")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS,
                       help="hidden activation (default: the model's own, tanh for the VAE)")
    train.add_argument("--leaky-slope", type=float, help="negative slope of leaky_relu")
    train.add_argument("--dtype", choices=["float32", "float64"])
    train.add_argument("--objective", choices=["elbo", "iwae"],
                       help="bound to maximize: the ELBO (one sample, exact KL; the default) or "
                            "the importance-weighted bound L_k of Burda et al. (2016)")
    train.add_argument("--k-train", type=int,
                       help="samples per image of L_k when --objective iwae (default 5); "
                            "the ELBO uses 1")
    train.add_argument("--model", choices=sorted(MODELS),
                       help="which model to train (default: the Bernoulli VAE)")
    train.add_argument("--option", action="append", metavar="KEY=VALUE",
                       help="a model option, e.g. --option n_classes=10 (repeatable; VALUE is "
                            "read as JSON when it parses, else as a string)")
    train.add_argument("--seed", type=int)
    train.add_argument("--max-train", type=int, help="use only the first N training images")
    train.add_argument("--max-test", type=int, help="use only the first N test images")
    train.add_argument("--out", default="runs/vae", help="output folder (default %(default)s)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, with the "
                            "options it was started with; --epochs N trains it to N epochs, "
                            "--data-root reads the data from elsewhere, and any other option "
                            "given must equal the run's")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    evaluate = commands.add_parser("evaluate", help="test ELBO and importance-sampled log p(x)")
    evaluate.add_argument("--checkpoint", required=True, help="checkpoint.npz written by train")
    evaluate.add_argument("--k", type=int, default=5000, help="importance samples per image")
    evaluate.add_argument("--n", type=int, default=None, help="evaluate the first N test images")
    evaluate.add_argument("--data-root", default=None)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--quiet", action="store_true")
    return parser


def parse_options(pairs: list[str]) -> dict:
    """``["n_classes=10", "ema=true"]`` → ``{"n_classes": 10, "ema": True}``.

    Values are read as JSON, except that true/false are accepted in any case (``True`` as in
    Python); anything else that is not JSON stays a string.
    """
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise SystemExit(f"--option must look like KEY=VALUE, got {pair!r}")
        if value.strip().lower() in ("true", "false"):
            options[key] = value.strip().lower() == "true"
            continue
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


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


def run_train(args) -> int:
    from minivae.io.resume import resume_config
    from minivae.train import bound_name, train

    fields = given_train_fields(args)
    # resuming: the run's own config, changed only where the command line says so (and allowed)
    config = (resume_config(args.out, **fields) if args.resume
              else new_run_config(args.out, fields))
    metrics = train(config, progress=not args.quiet, resume=args.resume)
    print(f"final test {metrics['test_metric']} {metrics['test_elbo'][-1]:.3f} nats after "
          f"{config.epochs} epochs on the "
          f"{bound_name(config.objective, config.k, config.model)}; "
          f"wrote {args.out}/checkpoint.npz, metrics.json, recon.png, samples.png, curve.png")
    return 0


def run_evaluate(args) -> int:
    from minivae.data import binarize_dynamic
    from minivae.engine.tensor import no_grad
    from minivae.io.resume import load_model
    from minivae.objectives.likelihood import importance_sampling_log_likelihood, standard_error
    from minivae.train import (
        TEST_BINARIZATION_SEED,
        bound_name,
        load_binary_split,
        test_metric_name,
    )

    model, config = load_model(args.checkpoint)
    if args.data_root is not None:
        config.data_root = args.data_root
    config.max_test = args.n
    test_x = load_binary_split(config, "test")
    if getattr(model, "binary_data", True):
        test_x = binarize_dynamic(test_x, np.random.default_rng(TEST_BINARIZATION_SEED))
    rng = np.random.default_rng(args.seed)
    metric = test_metric_name(model)
    score = model.elbo if metric == "ELBO" else model.objective
    with no_grad():
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
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_train(args) if args.command == "train" else run_evaluate(args)
    except (ValueError, FileNotFoundError) as error:  # bad input: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except FloatingPointError as error:  # training diverged: a message, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

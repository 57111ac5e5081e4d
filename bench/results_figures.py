"""The curves in docs/RESULTS.md, drawn from the runs' own metrics.json files.

    python bench/results_figures.py --burda ELBO_RUN L5_RUN L50_RUN --m2 BALANCED_RUN PAPER_RUN

Each RUN is a folder written by ``python -m minivae train`` (its metrics.json).  Writes
docs/results/burda_one_hour.png (the test ELBO after each epoch against minutes of training,
one line per training bound) and docs/results/m2_test_error.png (M2's test error per epoch under
the two weightings of the labelled rows).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from minivae.io.plots import new_figure, save_png

OUT = Path(__file__).resolve().parent.parent / "docs" / "results"


def metrics(run: str) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


def burda_curves(runs: list[str], path: Path) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for run in map(metrics, runs):
        k = run["k"] if run["objective"] == "iwae" else 1
        name = "ELBO" if k == 1 else f"L_{k}"
        minutes = np.cumsum(run["seconds"]) / 60
        axes.plot(minutes, run["test_elbo"], label=f"trained on the {name}: "
                                                   f"{run['epoch'][-1]} epochs")
    axes.set_ylim(-112, -89)  # the first epochs (down to −540 nats) would flatten the rest
    axes.set_xlabel("minutes of training (scoring the test set each epoch not counted)")
    axes.set_ylabel("test ELBO, nats (one sample per image)")
    axes.set_title("784-200-200-50 tanh on MNIST, one core each, cosine learning rate")
    axes.grid(True, alpha=0.4)
    axes.legend()
    return save_png(figure, path)


def m2_curves(runs: list[str], labels: list[str], path: Path) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for run, label in zip(map(metrics, runs), labels):
        axes.plot(run["epoch"], 100 * np.asarray(run["test_error"]), marker="o", markersize=3,
                  label=label)
    axes.axhline(11.97, color="grey", linestyle="--", label="Kingma et al. (2014): 11.97 %")
    axes.set_xlabel("epoch")
    axes.set_ylabel("test error (%)")
    axes.set_title("M2 with 100 labels on full MNIST")
    axes.grid(True, alpha=0.4)
    axes.legend()
    return save_png(figure, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burda", nargs="+", default=[], help="run folders: ELBO, L_5, L_50")
    parser.add_argument("--m2", nargs=2, default=None, help="run folders: balanced, paper")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.burda:
        print(burda_curves(args.burda, OUT / "burda_one_hour.png"))
    if args.m2:
        print(m2_curves(args.m2, ["pairs weighted as they come (balanced)",
                                  "weighted as the paper's J^α"], OUT / "m2_test_error.png"))


if __name__ == "__main__":
    main()

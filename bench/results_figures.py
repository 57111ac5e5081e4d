"""The curves in docs/RESULTS.md, drawn from the runs' own metrics.json files.

    python bench/results_figures.py --burda ELBO_RUN L5_RUN L50_RUN [ELBO_2C_RUN] \
        --burda-labels "one core" "one core" "one core" "both cores" \
        --m2 BALANCED_RUN PAPER_RUN --m2-labels "balanced" "the paper's J^α" \
        --m2-draws DRAW_0 DRAW_1 DRAW_2 --m1m2-draws M1M2_0 M1M2_1 M1M2_2 \
        --vade VADE_0 VADE_1 VADE_2 --vade-compare OTHER_0 OTHER_1 OTHER_2

Each RUN is a folder written by ``python -m minivae train`` (its metrics.json).  Writes
docs/results/burda_one_hour.png (the test ELBO after each epoch against minutes of training,
one line per run, named by its bound and epochs and its --burda-labels entry),
docs/results/m2_test_error.png (M2's test error per epoch, one line per run, e.g. the two
weightings of the labelled rows) and docs/results/m2_label_draws.png (the same for the runs of
--m2-draws, named by their seeds: one labelled set each; another name with --m2-draws-figure).
An M1M2 run is a folder of ``demos/semi_supervised.py`` (its results.json):
docs/results/m1m2_label_draws.png draws M1+M2's test error per epoch, one line per label draw
(another name with --m1m2-draws-figure).
A VaDE run is a folder of ``demos/vade_clustering.py`` (its results.json):
docs/results/vade_seeds.png draws VaDE's test accuracy per epoch after the GMM start (epoch 0),
one solid line per --vade run and one dashed line per --vade-compare run, each named by its seed
(one colour per seed) and learning rate (another name with --vade-figure).
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


def burda_curves(runs: list[str], path: Path, labels: list[str] | None = None) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for i, run in enumerate(map(metrics, runs)):
        k = run["k"] if run["objective"] == "iwae" else 1
        name = "ELBO" if k == 1 else f"L_{k}"
        minutes = np.cumsum(run["seconds"]) / 60
        extra = f", {labels[i]}" if labels else ""
        axes.plot(minutes, run["test_elbo"], label=f"trained on the {name}: "
                                                   f"{run['epoch'][-1]} epochs{extra}")
    axes.set_ylim(-112, -89)  # the first epochs (down to −540 nats) would flatten the rest
    axes.set_xlabel("minutes of training (scoring the test set each epoch not counted)")
    axes.set_ylabel("test ELBO, nats (one sample per image)")
    axes.set_title("784-200-200-50 tanh on MNIST, cosine learning rate, one hour")
    axes.grid(True, alpha=0.4)
    axes.legend()
    return save_png(figure, path)


def m2_curves(runs: list[str], labels: list[str], path: Path,
              title: str = "M2 with 100 labels on full MNIST") -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for run, label in zip(map(metrics, runs), labels):
        axes.plot(run["epoch"], 100 * np.asarray(run["test_error"]), marker="o", markersize=3,
                  label=label)
    axes.axhline(11.97, color="grey", linestyle="--", label="Kingma et al. (2014): 11.97 %")
    axes.set_xlabel("epoch")
    axes.set_ylabel("test error (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.4)
    axes.legend()
    return save_png(figure, path)


def m1m2_curves(runs: list[str], path: Path) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for run in runs:
        result = json.loads((Path(run) / "results.json").read_text())
        curve = 100 * np.asarray(result["m1m2_curve"])
        axes.plot(np.arange(1, len(curve) + 1), curve,
                  label=f"labels drawn with seed {result['args']['seed']}: {curve[-1]:.2f} %")
    axes.axhline(5.0, color="black", linestyle=":", label="goal: 5 %")
    axes.axhline(3.33, color="grey", linestyle="--", label="Kingma et al. (2014): 3.33 %")
    axes.set_ylim(0, 20)  # the first epochs (near 90 %) would flatten the rest
    axes.set_xlabel("M1+M2 epoch")
    axes.set_ylabel("test error (%)")
    axes.set_title("M1+M2 with 100 labels on full MNIST, one label draw per line")
    axes.grid(True, alpha=0.4)
    axes.legend()
    return save_png(figure, path)


def vade_curves(runs: list[str], compare: list[str], path: Path) -> Path:
    figure = new_figure(760, 480)
    axes = figure.add_subplot(1, 1, 1)
    for folders, style in ((runs, "-"), (compare, "--")):
        for run in folders:
            result = json.loads((Path(run) / "results.json").read_text())
            # epoch 0 is the GMM start, then one row per VaDE epoch
            curve = 100 * np.asarray([a for a, stage in zip(result["test_accuracy"],
                                                            result["stage"])
                                      if stage in ("GMM init", "VaDE")])
            args = result["args"]
            axes.plot(np.arange(len(curve)), curve, linestyle=style,
                      color=f"C{args['seed'] % 10}",  # a seed's lines share a colour
                      label=f"seed {args['seed']}, Adam {args['lr']:g}: {curve[-1]:.2f} %")
    axes.axhline(85.0, color="black", linestyle=":", label="goal: 85 %")
    low, high = axes.get_ylim()
    axes.set_ylim(low - 0.4 * (high - low), high)  # room for the legend below the lines
    axes.set_xlabel("VaDE epoch (0: the GMM start)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("VaDE on full MNIST after pretraining and self-training, one seed per line")
    axes.grid(True, alpha=0.4)
    axes.legend(fontsize="small", loc="lower right", ncol=2)
    return save_png(figure, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burda", nargs="+", default=[], help="run folders: ELBO, L_5, L_50")
    parser.add_argument("--burda-labels", nargs="+", default=None,
                        help="one more word per --burda run (e.g. its cores)")
    parser.add_argument("--m2", nargs="+", default=None, help="M2 run folders")
    parser.add_argument("--m2-labels", nargs="+", default=None,
                        help="one label per --m2 run (default: the two weightings)")
    parser.add_argument("--m2-draws", nargs="+", default=None,
                        help="M2 runs of one setting, one label draw (seed) each")
    parser.add_argument("--m2-draws-figure", default="m2_label_draws.png",
                        help="file name, in docs/results/, of the --m2-draws picture")
    parser.add_argument("--m1m2-draws", nargs="+", default=None,
                        help="folders of demos/semi_supervised.py, one label draw each")
    parser.add_argument("--m1m2-draws-figure", default="m1m2_label_draws.png",
                        help="file name, in docs/results/, of the --m1m2-draws picture")
    parser.add_argument("--vade", nargs="+", default=[],
                        help="folders of demos/vade_clustering.py (solid lines)")
    parser.add_argument("--vade-compare", nargs="+", default=[],
                        help="more such folders, drawn dashed (e.g. another learning rate)")
    parser.add_argument("--vade-figure", default="vade_seeds.png",
                        help="file name, in docs/results/, of the --vade picture")
    args = parser.parse_args(argv)
    for runs, labels, flag in ((args.burda, args.burda_labels, "--burda-labels"),
                               (args.m2, args.m2_labels, "--m2-labels")):
        if labels is not None and len(labels) != len(runs or []):
            raise SystemExit(f"{flag} needs one label per run, got {len(labels)} for "
                             f"{len(runs or [])}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.burda:
        print(burda_curves(args.burda, OUT / "burda_one_hour.png", args.burda_labels))
    if args.m2:
        labels = args.m2_labels or ["pairs weighted as they come (balanced)",
                                    "weighted as the paper's J^α"][:len(args.m2)]
        print(m2_curves(args.m2, labels, OUT / "m2_test_error.png"))
    if args.m2_draws:
        draws = [f"labels drawn with seed {metrics(run)['config']['seed']}"
                 for run in args.m2_draws]
        print(m2_curves(args.m2_draws, draws, OUT / Path(args.m2_draws_figure).name,
                        "M2 with 100 labels on full MNIST, one hour per label draw"))

    if args.m1m2_draws:
        print(m1m2_curves(args.m1m2_draws, OUT / Path(args.m1m2_draws_figure).name))
    if args.vade or args.vade_compare:
        print(vade_curves(args.vade, args.vade_compare, OUT / Path(args.vade_figure).name))


if __name__ == "__main__":
    main()

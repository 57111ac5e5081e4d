"""The sampler demo runs and writes the pictures it promises; the training demos check their
training subset; every demo, run as a script, ends a mistake (a bad value, an unknown flag,
missing data) in one ``error:`` line with no traceback, and shows its defaults in --help."""
from __future__ import annotations

import json
import math
import runpy
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from minivae.io.checkpoint import load_checkpoint
from tests.helpers import (
    DEMOS,
    ROOT,
    assert_pictures,
    child_env,
    demo,
    demos_on_path,
    mnist_5k,
    run_demo,
)


def test_samplers_demo_writes_four_pictures(tmp_path):
    samplers = demo("samplers")
    paths = samplers.main(samplers.parse_args(["--out", str(tmp_path), "--n", "500"]))
    assert sorted(p.name for p in paths) == ["exponential.png", "gaussian.png",
                                             "gumbel_argmax.png", "gumbel_softmax.png"]
    for path in paths:
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) >= 400
        assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, no temporary files left


def test_samplers_demo_rejects_too_few_draws(tmp_path):
    samplers = demo("samplers")
    with pytest.raises(ValueError, match="--n must be at least 100"):
        samplers.main(samplers.parse_args(["--out", str(tmp_path), "--n", "5"]))


def test_overlapping_latents_demo_runs_with_tiny_settings(tmp_path):
    mnist_5k()
    result = run_demo("overlapping_latents", tmp_path, "--epochs", "1", "--pretrain-epochs", "1",
                      "--max-train", "400", "--hidden", "16", "--n-clusters", "3", "--quiet")
    for name in ("VAE", "VaDE"):
        assert 0 <= result[name]["knn_accuracy"] <= 1 and 0 < result[name]["class_overlap"] <= 1
    assert_pictures(tmp_path, "latent_spaces.png")


def test_vade_demo_pretrains_layerwise_saves_and_reuses_the_autoencoder(tmp_path):
    """Tiny layer-wise pretraining writes pretrained.npz; a second run from that file, with the
    same seed, fits the same GMM to the same codes, so it starts at the same accuracy."""
    mnist_5k()
    tiny = ["--max-train", "300", "--hidden", "24", "16", "--z-dim", "4", "--n-clusters", "4",
            "--gmm-restarts", "2", "--epochs", "1", "--quiet"]
    first = run_demo("vade_clustering", tmp_path / "a", "--layer-epochs", "1",
                     "--finetune-epochs", "2", *tiny)
    checkpoint = tmp_path / "a" / "pretrained.npz"
    assert len(first["pretraining"]["layers"]) == 3 and len(first["pretraining"]["finetune"]) == 2
    again = run_demo("vade_clustering", tmp_path / "b", "--pretrained", str(checkpoint), *tiny)
    assert again["accuracy_after_init"] == first["accuracy_after_init"]
    assert again["gmm_log_likelihood"] == first["gmm_log_likelihood"]
    assert not (tmp_path / "b" / "pretrained.npz").exists()
    more = run_demo("vade_clustering", tmp_path / "d", "--pretrained", str(checkpoint),
                    "--finetune-more", "1", *tiny)  # the stack trained on, and saved anew
    assert more["pretraining"]["finetune"][:2] == first["pretraining"]["finetune"]
    assert len(more["pretraining"]["finetune"]) == 3
    assert (tmp_path / "d" / "pretrained.npz").exists()
    assert 0 <= first["accuracy"] <= 1 and np.isfinite(first["test_elbo"]).all()
    assert_pictures(tmp_path / "a", "samples_per_cluster.png", "test_clusters.png", "curve.png")
    with pytest.raises(ValueError, match="state dict"):  # a checkpoint of another network
        run_demo("vade_clustering", tmp_path / "c", "--pretrained", str(checkpoint),
                 *tiny, "--hidden", "24")


def test_vade_demo_stops_the_whole_recipe_at_its_budget(tmp_path):
    """A budget spent at once: each pretraining stage trains one epoch of the five asked for,
    VaDE one of three, and the run says where it stopped."""
    mnist_5k()
    result = run_demo("vade_clustering", tmp_path, "--max-train", "200", "--hidden", "16", "8",
                      "--z-dim", "3", "--n-clusters", "3", "--gmm-restarts", "1",
                      "--layer-epochs", "5", "--finetune-epochs", "5", "--epochs", "3",
                      "--budget-minutes", "1e-6", "--quiet")
    assert [len(c) for c in result["pretraining"]["layers"]] == [1, 1, 1]
    assert len(result["pretraining"]["finetune"]) == 1
    assert result["epoch"] == [0, 1] and "after VaDE epoch 1" in result["stopped"]
    with pytest.raises(ValueError, match="--pretrain-minutes must be positive"):
        run_demo("vade_clustering", tmp_path / "x", "--pretrain-minutes", "0")


def test_vade_demo_pretrains_end_to_end_on_the_squared_error(tmp_path, capsys):
    """--pretrain end-to-end: one autoencoder trained from its random start on the squared error
    of its decoded means, its loss falling, the codes scored by k-means every 2 epochs; the
    loss is named in the table and kept with the checkpoint."""
    mnist_5k()
    result = run_demo("vade_clustering", tmp_path, "--max-train", "300", "--hidden", "24", "16",
                      "--z-dim", "4", "--n-clusters", "4", "--gmm-restarts", "2",
                      "--pretrain", "end-to-end", "--pretrain-loss", "squared",
                      "--pretrain-epochs", "4", "--pretrain-lr", "3e-3",
                      "--score-pretraining-every", "2", "--epochs", "1")
    curve = result["pretraining"]["end_to_end"]
    assert len(curve) == 4 and curve[-1] < curve[0]
    scores = result["pretraining"]["kmeans_test_accuracy"]
    assert [epoch for epoch, _ in scores] == [2, 4] and all(0 < a <= 1 for _, a in scores)
    assert "AE 4 ep (squared loss)" in capsys.readouterr().out
    _, meta = load_checkpoint(tmp_path / "pretrained.npz")
    assert meta["pretrain"] == "end-to-end" and meta["pretrain_loss"] == "squared"
    assert result["vade_learning_rate"] == [pytest.approx(2e-3)]  # VaDE's own --lr
    with pytest.raises(SystemExit):  # argparse refuses a loss it does not know
        run_demo("vade_clustering", tmp_path / "x", "--pretrain-loss", "absolute")
    with pytest.raises(ValueError, match="--score-pretraining-every"):
        run_demo("vade_clustering", tmp_path / "y", "--score-pretraining-every", "-1")


def test_vade_demo_decays_its_rate_to_a_floor(tmp_path):
    """--lr halved every epoch (--lr-decay 0.5 --lr-decay-every 1) stops at --min-lr, as the
    paper's code floors it; a floor above the rate, or ε ≤ 0, is refused before any work."""
    mnist_5k()
    result = run_demo("vade_clustering", tmp_path, "--max-train", "200", "--hidden", "16",
                      "--z-dim", "3", "--n-clusters", "3", "--gmm-restarts", "1",
                      "--pretrain", "plain", "--pretrain-epochs", "1", "--epochs", "4",
                      "--lr", "1e-3", "--lr-decay", "0.5", "--lr-decay-every", "1",
                      "--min-lr", "2e-4", "--adam-eps", "1e-4", "--quiet")
    assert result["vade_learning_rate"] == pytest.approx([1e-3, 5e-4, 2.5e-4, 2e-4])
    with pytest.raises(ValueError, match="--min-lr"):
        run_demo("vade_clustering", tmp_path / "x", "--lr", "1e-3", "--min-lr", "2e-3")
    with pytest.raises(ValueError, match="--adam-eps"):
        run_demo("vade_clustering", tmp_path / "y", "--adam-eps", "0")


def test_vade_demo_self_trains_between_pretraining_and_the_gmm(tmp_path, capsys):
    """--self-train-epochs N: N epochs of self-training, each scored on the test set after the
    k-means start (epoch 0), named in the table; a weight of zero is refused before any work."""
    mnist_5k()
    result = run_demo("vade_clustering", tmp_path, "--max-train", "300", "--hidden", "24", "16",
                      "--z-dim", "4", "--n-clusters", "4", "--gmm-restarts", "2",
                      "--layer-epochs", "1", "--finetune-epochs", "1", "--self-train-epochs", "2",
                      "--epochs", "1")
    trained = result["self_training"]
    assert len(trained["kl"]) == 2 and len(trained["test_accuracy"]) == 3
    assert all(0 <= a <= 1 for a in trained["test_accuracy"]) and np.isfinite(trained["kl"]).all()
    assert np.shape(trained["centroids"]) == (4, 4)
    assert "+ self-training 2 ep" in capsys.readouterr().out
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["self_training"]["test_accuracy"] == trained["test_accuracy"]
    assert written["test_accuracy"] == result["test_accuracy"]
    with pytest.raises(ValueError, match="--self-train-weight must be positive"):
        run_demo("vade_clustering", tmp_path / "x", "--self-train-weight", "0")


def test_vade_demo_keeps_the_start_of_highest_training_elbo(tmp_path, capsys):
    """--starts 2: two autoencoders pretrained (two files), each start scored by its training
    ELBO; the run goes on from the higher one (its test accuracy is the run's at the GMM start),
    and start 0 is the start of a one-start run with the same seed."""
    mnist_5k()
    tiny = ["--max-train", "300", "--hidden", "24", "16", "--z-dim", "4", "--n-clusters", "4",
            "--gmm-restarts", "2", "--layer-epochs", "1", "--finetune-epochs", "1",
            "--epochs", "1"]
    result = run_demo("vade_clustering", tmp_path / "two", *tiny, "--starts", "2")
    starts = result["starts"]
    assert [s["start"] for s in starts] == [0, 1]
    assert (tmp_path / "two" / "pretrained.npz").exists()
    assert (tmp_path / "two" / "pretrained_1.npz").exists()
    scores = [s["train_elbo"] for s in starts]
    assert np.isfinite(scores).all() and scores[0] != scores[1]
    kept = int(np.argmax(scores))
    assert result["chosen_start"] == kept
    assert result["accuracy_after_init"] == starts[kept]["test_accuracy"]
    assert result["pretraining"]["finetune"] == starts[kept]["pretraining"]["finetune"]
    assert "best of 2 starts by training ELBO" in capsys.readouterr().out
    one = run_demo("vade_clustering", tmp_path / "one", *tiny, "--quiet")
    assert one["accuracy_after_init"] == starts[0]["test_accuracy"]
    assert one["pretraining"]["finetune"] == starts[0]["pretraining"]["finetune"]
    with pytest.raises(ValueError, match="--starts must be"):
        run_demo("vade_clustering", tmp_path / "x", "--starts", "0")
    with pytest.raises(ValueError, match="--starts 2 .* --pretrained"):
        run_demo("vade_clustering", tmp_path / "y", "--starts", "2", "--pretrained",
                 str(tmp_path / "two" / "pretrained.npz"))


def test_vade_demo_keeps_the_partition_of_highest_training_elbo(tmp_path, capsys):
    """--partitions 2: the autoencoder is self-trained twice, from two k-means partitions of its
    codes, each copy scored by its training ELBO; the run goes on from the higher one, and
    partition 0 is the start of a one-partition run with the same seed.  Without
    self-training, --partitions 2 is refused before any work."""
    mnist_5k()
    tiny = ["--max-train", "300", "--hidden", "24", "16", "--z-dim", "4", "--n-clusters", "4",
            "--gmm-restarts", "4", "--layer-epochs", "1", "--finetune-epochs", "1",
            "--self-train-epochs", "2", "--epochs", "1"]
    result = run_demo("vade_clustering", tmp_path / "two", *tiny, "--partitions", "2")
    partitions = result["partitions"]
    assert [p["partition"] for p in partitions] == [0, 1]
    scores = [p["train_elbo"] for p in partitions]
    assert np.isfinite(scores).all() and scores[0] != scores[1]
    kept = int(np.argmax(scores))
    assert result["partition"] == kept
    assert result["accuracy_after_init"] == partitions[kept]["test_accuracy"]
    seconds = [p["partition_seconds"] for p in partitions]  # each partition's own share
    assert min(seconds) > 0 and sum(seconds) < result["seconds"] - result["pretraining"]["seconds"]
    assert "best of 2 k-means partitions by ELBO" in capsys.readouterr().out
    one = run_demo("vade_clustering", tmp_path / "one", *tiny, "--quiet")
    assert one["accuracy_after_init"] == partitions[0]["test_accuracy"]
    assert one["gmm_log_likelihood"] == partitions[0]["gmm_log_likelihood"]
    with pytest.raises(ValueError, match="--partitions 2 .* --self-train-epochs"):
        run_demo("vade_clustering", tmp_path / "x", "--partitions", "2")
    with pytest.raises(ValueError, match="--partitions must be"):
        run_demo("vade_clustering", tmp_path / "y", "--partitions", "0")


def test_vae_digits_demo_prints_the_elbos_it_recorded(tmp_path, capsys):
    """Two epochs on mnist-5k: the three pictures and metrics.json are written, and the printed
    table holds the recorded ELBOs: finite, ≤ 0 (log p(x|z) ≤ 0 for binary pixels and KL ≥ 0,
    so every single-draw ELBO is ≤ 0), and above −784 log 2, the ELBO of a decoder that says
    ½ for every pixel (the training learned something)."""
    import json
    import re

    mnist_5k()
    metrics = run_demo("vae_digits", tmp_path, "--epochs", "2", "--quiet")
    out = capsys.readouterr().out
    assert_pictures(tmp_path, "recon.png", "samples.png", "curve.png")
    recorded = json.loads((tmp_path / "metrics.json").read_text())
    rows = re.findall(r"^\s*(\d+)\s+(-?\d+\.\d\d)\s+(-?\d+\.\d\d)$", out, re.MULTILINE)
    assert [int(epoch) for epoch, *_ in rows] == recorded["epoch"] == metrics["epoch"] == [1, 2]
    for i, (_, train_elbo, test_elbo) in enumerate(rows):
        for printed, key in ((train_elbo, "train_elbo"), (test_elbo, "test_elbo")):
            assert float(printed) == pytest.approx(recorded[key][i], abs=0.005)
            assert -784 * np.log(2) < recorded[key][i] <= 0
    assert str(tmp_path / "recon.png") in out


def test_gaussian_decoder_demo_runs_with_tiny_settings(tmp_path):
    mnist_5k()
    result = run_demo("gaussian_decoder", tmp_path, "--epochs", "1", "--max-train", "200",
                      "--hidden", "16", "--z-dim", "2", "--prior", "learnable", "--quiet")
    assert len(result) == 3
    for scores in result.values():
        # bits per pixel of the 8-bit images = −(ELBO − D log 256) / (D log 2), D = 784
        bits = -(scores["test_elbo"] - 784 * math.log(256)) / (784 * math.log(2))
        assert math.isclose(scores["bits_per_pixel"], bits, rel_tol=1e-12)
        assert bits > 0 and scores["standard_error"] > 0 and scores["median_sigma"] >= 1e-3
    assert_pictures(tmp_path, "gaussian_decoder.png")


def test_dequantized_pixels_fill_their_bins():
    """x = (k + u)/256 lies in [k/256, (k+1)/256) and is uniform there: its offset within the
    bin has mean ½ and variance 1/12 (each within 5 standard errors)."""
    dequantize = demo("gaussian_decoder").dequantize
    images = np.random.default_rng(0).integers(0, 256, (400, 5, 5), dtype=np.uint8)
    x = dequantize(images, np.random.default_rng(1))
    offset = x * 256 - images.reshape(400, 25)
    assert x.shape == (400, 25) and np.all((offset >= 0) & (offset < 1))
    n = offset.size
    assert abs(offset.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(offset.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)  # Var of (u − ½)² is 1/180


def test_seed004_vae_demo_trains_and_reads_a_run(tmp_path):
    """The notes' network trained briefly, then its run read back: the same curve, in the
    notes' normalization (N / ((⌈N/B⌉ − 1) B) = 200/100 for 200 images in batches of 100)."""
    mnist_5k()
    seed004 = demo("seed004_vae")
    assert seed004.notes_normalization(60_000, 100) == 60_000 / 59_900
    trained = run_demo("seed004_vae", tmp_path / "a", "--epochs", "1", "--max-train", "200",
                       "--quiet")
    assert trained["config"]["binarize"] == "round"
    assert list(trained["config"]["hidden"]) == [400, 400]
    read = run_demo("seed004_vae", tmp_path / "b", "--run", str(tmp_path / "a" / "run"))
    assert read["train_elbo"] == trained["train_elbo"]
    assert seed004.notes_normalization(seed004.training_images(read), 100) == 2.0
    assert_pictures(tmp_path / "a", "loss_curve.png")
    assert_pictures(tmp_path / "b", "loss_curve.png")
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        run_demo("seed004_vae", tmp_path / "c", "--run", str(tmp_path))


@pytest.mark.parametrize("name, max_train", [
    ("gumbel_vae", "0"), ("vqvae", "-10"), ("attribute_vectors", "0"), ("vade_clustering", "-10"),
    ("full_covariance", "0"), ("overlapping_latents", "-10"), ("gaussian_decoder", "0"),
])
def test_demos_refuse_a_training_subset_that_is_not_a_count(tmp_path, name, max_train):
    """x[:0] is every image and x[:-10] all but ten: neither is what --max-train asks for."""
    with pytest.raises(ValueError, match="--max-train must be a positive integer"):
        run_demo(name, tmp_path, "--dataset", "mnist-5k", "--max-train", max_train)


# -- every demo, run as a script: a mistake ends in one line, not a traceback ------------------

ALL_DEMOS = sorted(path.stem for path in DEMOS.glob("*.py"))
# demos that read MNIST and take --dataset mnist-5k (the default) or mnist
DATA_DEMOS = ["attribute_vectors", "full_covariance", "gaussian_decoder", "gumbel_vae", "iwae",
              "overlapping_latents", "seed004_vae", "semi_supervised", "vade_clustering",
              "vqvae"]
# for each demo, a value of the right type that it refuses before any work: (arguments,
# what the one line must say); "{file}" is a file where a folder is expected
BAD_VALUES = {
    "amortization_gap": (["--n", "1"], "--n (a standard error needs two digits)"),
    "attribute_vectors": (["--max-train", "0"], "--max-train must be a positive integer"),
    "cavi_earthquakes": (["--K", "0"], "--K must be"),
    "cavi_gmm": (["--K", "0"], "--K must be"),
    "density_ratio": (["--n", "5"], "--n must be at least 100"),
    "divergence_bounds": (["--steps", "0"], "--steps must be"),
    "elbo_tightening": (["--resolution", "2"], "--resolution must be at least 3"),
    "fixed_q_bias": (["--n", "1"], "--n must be at least 2"),
    "full_covariance": (["--epochs", "0"], "--epochs must be at least 1"),
    "gaussian_decoder": (["--min-sigma", "0"], "--min-sigma must be"),
    "gradient_estimators": (["--replicas", "1"], "--replicas (a variance needs two)"),
    "gumbel_vae": (["--max-train", "-10"], "--max-train must be a positive integer"),
    "importance_sampling": (["--max-samples", "1"], "--max-samples must be at least 2"),
    "iris_mixture": (["--K", "0"], "--K must be at least 1"),
    "iwae": (["--ks", "0"], "--ks must be positive integers"),
    "kl_directions": (["--width", "0"], "--width must be"),
    "masked_receptive_fields": (["--out", "{file}"], "it is a file"),
    "monte_carlo_toys": (["--replicates", "2"], "--replicates must be at least 10"),
    "overlapping_latents": (["--epochs", "0"], "--epochs must be a positive integer"),
    "samplers": (["--n", "5"], "--n must be at least 100"),
    "seed004_vae": (["--epochs", "0"], "--epochs must be a positive integer"),
    "semi_supervised": (["--labels", "105"], "--labels must be a multiple of the 10 classes"),
    "svi_vs_amortized": (["--inner-steps", "0"], "--inner-steps must be a positive integer"),
    "vade_clustering": (["--max-train", "0"], "--max-train must be a positive integer"),
    "vae_digits": (["--epochs", "0"], "epochs must be a positive integer"),
    "vqvae": (["--max-train", "0"], "--max-train must be a positive integer"),
}


def run_script(name: str, argv: list, monkeypatch, capsys) -> tuple[int, str, str]:
    """``python demos/<name>.py ARGV`` in this process, its ``__main__`` block included:
    (exit code, stdout, stderr)."""
    demos_on_path()
    path = DEMOS / f"{name}.py"
    monkeypatch.setattr(sys, "argv", [str(path), *map(str, argv)])
    with pytest.raises(SystemExit) as exit:
        runpy.run_path(str(path), run_name="__main__")
    out, err = capsys.readouterr()
    return exit.value.code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_the_tables_name_every_demo():
    assert sorted(BAD_VALUES) == ALL_DEMOS
    assert set(DATA_DEMOS) <= set(ALL_DEMOS)


@pytest.mark.parametrize("name", ALL_DEMOS)
def test_every_demo_refuses_a_bad_value_in_one_line(name, tmp_path, monkeypatch, capsys):
    arguments, fragment = BAD_VALUES[name]
    (tmp_path / "a file").write_text("not a folder")
    arguments = [a.format(file=tmp_path / "a file") for a in arguments]
    out = tmp_path / "out"
    argv = arguments if "--out" in arguments else ["--out", out, *arguments]
    code, _, err = run_script(name, argv, monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, fragment)
    assert not out.exists()  # refused before its output folder was made


@pytest.mark.parametrize("name", ALL_DEMOS)
def test_every_demo_refuses_an_unknown_flag_in_one_line(name, monkeypatch, capsys):
    code, _, err = run_script(name, ["--no-such-flag"], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "unrecognized arguments: --no-such-flag", f"{name}.py --help")


@pytest.mark.parametrize("name", DATA_DEMOS)
def test_a_data_demo_without_its_data_says_where_to_get_it(name, isolated, monkeypatch, capsys):
    """Full MNIST is looked for as `python -m minivae train` looks for it; offline and
    nowhere, the one line names the folders searched, $MINIVAE_DATA, the command that
    downloads it and the dataset that needs no download."""
    (isolated / "data").mkdir()
    monkeypatch.setenv("MINIVAE_DATA", str(isolated / "data"))
    out = isolated / "out"
    code, _, err = run_script(name, ["--dataset", "mnist", "--out", out], monkeypatch, capsys)
    assert code == 2
    assert_one_error_line(err, "mnist (train split) not found", str(isolated / "data"),
                          str(isolated / "cache" / "mnist"), "MINIVAE_DATA",
                          "python -m minivae train --dataset mnist", "--dataset mnist-5k")
    assert not out.exists()
    assert sorted(p.name for p in isolated.iterdir()) == ["data", "home"]  # nothing was made


@pytest.mark.parametrize("name", ALL_DEMOS)
def test_every_demo_help_shows_its_defaults_and_no_local_path(name, monkeypatch, capsys):
    code, out, _ = run_script(name, ["--help"], monkeypatch, capsys)
    text = " ".join(out.split())  # as argparse wraps it, lines joined
    assert code == 0
    assert "(default: runs/" in text  # its --out, at least
    assert "(default: None)" not in text  # None means "not given": the help says what then
    assert str(ROOT.parent) not in text  # nothing of this machine's folders
    if name in DATA_DEMOS:
        assert "--dataset {mnist-5k,mnist}" in text and "(default: mnist-5k)" in text
        assert "(default: $MINIVAE_DATA, else ~/.cache/minivae/<dataset>" in text


def test_a_demo_run_as_a_process_ends_in_one_line(tmp_path):
    """The real thing once: a child Python, its exit status and its stderr."""
    child = subprocess.run([sys.executable, str(DEMOS / "samplers.py"), "--n", "5", "--out",
                            str(tmp_path / "out")], env=child_env(), capture_output=True,
                           text=True, timeout=120)
    assert (child.returncode, child.stdout) == (2, "")
    assert_one_error_line(child.stderr, "--n must be at least 100")

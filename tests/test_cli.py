"""The command line end to end: train writes its files, evaluate reads them back."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minivae.cli import build_parser, given_train_fields, main, new_run_config
from minivae.cli import main as cli_main
from minivae.io.checkpoint import load_checkpoint
from minivae.io.idx import read_uncompressed, write_idx
from minivae.train import TrainConfig


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A folder of small IDX files laid out like MNIST (checksums patched to match them)."""
    import minivae.io.datasets as datasets

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    root.mkdir()
    files = {
        "train-images-idx3-ubyte": (rng.random((300, 28, 28)) * 255).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 300).astype(np.uint8),
        "t10k-images-idx3-ubyte": (rng.random((60, 28, 28)) * 255).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 60).astype(np.uint8),
    }
    for stem, array in files.items():
        write_idx(root / f"{stem}.gz", array)
    monkeypatch.setattr(datasets, "CHECKSUMS", {**datasets.CHECKSUMS, "mnist": {
        stem: datasets.md5_hex(read_uncompressed(root / f"{stem}.gz")) for stem in files}})
    return root


def test_train_then_evaluate(tmp_path, tiny_mnist, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "mnist", "--data-root", str(tiny_mnist), "--epochs", "2",
                 "--batch-size", "50", "--hidden", "32", "--z-dim", "4", "--out", str(out),
                 "--quiet"])
    assert code == 0
    for name in ("checkpoint.npz", "metrics.json", "recon.png", "samples.png", "curve.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epoch"] == [1, 2]
    assert all(np.isfinite(metrics["test_elbo"])) and len(metrics["seconds"]) == 2
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 2 and arrays["encoder.layers.0.weight"].dtype == np.float32
    assert "final test ELBO" in capsys.readouterr().out

    code = main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "20", "--n", "30",
                 "--data-root", str(tiny_mnist), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    elbo = float(printed.split("test ELBO")[1].split()[0])
    log_px = float(printed.split("k=20")[1].split()[0])
    assert elbo < log_px < 0  # the importance-sampled estimate sits above the ELBO


def test_same_seed_gives_identical_runs(tmp_path, tiny_mnist):
    args = ["train", "--dataset", "mnist", "--data-root", str(tiny_mnist), "--epochs", "1",
            "--hidden", "16", "--z-dim", "3", "--max-train", "100", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, _ = load_checkpoint(tmp_path / "a" / "checkpoint.npz")
    b, _ = load_checkpoint(tmp_path / "b" / "checkpoint.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "--epochs must be"),
    (["train", "--lr", "-1"], "--lr must be"),
    (["train", "--dataset", "cifar"], "cifar"),
    (["train", "--objective", "iwae", "--k-train", "0"], "--k-train must be a positive integer"),
    (["train", "--k-train", "3"], "--k-train must be 1 with objective 'elbo'"),
    (["evaluate", "--checkpoint", "/nonexistent/checkpoint.npz"], "checkpoint.npz"),
])
def test_bad_arguments_give_a_message_not_a_traceback(argv, message, capsys, tmp_path):
    assert main([*argv, "--quiet"] if argv[0] == "train" else argv) == 2
    assert message in capsys.readouterr().err


def test_evaluate_rejects_a_foreign_file(tmp_path, capsys):
    path = tmp_path / "checkpoint.npz"
    np.savez(path, weights=np.zeros(3))
    assert main(["evaluate", "--checkpoint", str(path)]) == 2
    assert "checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("model, options", [
    ("categorical", ["n_classes=5"]),
    ("full_covariance", []),
    ("gaussian_decoder", ["sigma=\"learned_per_pixel\""]),
    ("vqvae", ["codebook_size=8", "ema=true"]),
    ("vade", ["n_clusters=3"]),
])
def test_other_models_train_and_evaluate_from_the_command_line(tmp_path, tiny_mnist, capsys,
                                                               model, options):
    out = tmp_path / model
    args = ["train", "--model", model, "--dataset", "mnist", "--data-root", str(tiny_mnist),
            "--epochs", "2", "--batch-size", "50", "--hidden", "32", "--z-dim", "4",
            "--out", str(out), "--quiet"]
    for option in options:
        args += ["--option", option]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["model"] == model and all(np.isfinite(metrics["test_elbo"]))
    # no --activation given: the model's own default (relu for the VQ-VAE, tanh otherwise)
    assert metrics["config"]["activation"] == ("relu" if model == "vqvae" else "tanh")
    for name in ("checkpoint.npz", "recon.png", "samples.png", "curve.png"):
        assert (out / name).is_file(), name
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "5", "--n",
                 "20", "--data-root", str(tiny_mnist), "--quiet"]) == 0
    assert f"model {model}" in capsys.readouterr().out


def test_unknown_model_and_bad_option_are_reported(tmp_path, tiny_mnist, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--model", "nope", "--out", str(tmp_path / "x"), "--quiet"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["train", "--option", "no-equals-sign", "--out", str(tmp_path / "x"), "--quiet"])
    assert exit.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_options_left_out_take_the_config_defaults():

    def config(*argv):
        args = build_parser().parse_args(["train", *argv])
        return new_run_config(args.out, given_train_fields(args))

    assert given_train_fields(build_parser().parse_args(["train"])) == {}
    assert config() == TrainConfig()
    assert config("--model", "vqvae").activation == "relu"  # the model's own default
    assert config("--objective", "iwae").k == 5
    assert config("--objective", "iwae", "--k-train", "2", "--hidden", "8", "8") == TrainConfig(
        objective="iwae", k=2, hidden=(8, 8))


@pytest.mark.parametrize("failure", ["bound", "weights"])
def test_divergence_stops_with_a_message_and_keeps_the_last_checkpoint(
        tmp_path, tiny_mnist, capsys, monkeypatch, failure):
    """A bound that turns NaN, or weights that do (the next batch's input check then fails),
    stop the run in epoch 2 with exit code 1; the checkpoint of epoch 1 stays as it was."""
    import minivae.train as train_module
    from minivae.optim import Adam

    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-root", str(tiny_mnist), "--epochs", "1",
                 "--batch-size", "100", "--hidden", "16", "--z-dim", "3", "--out", str(out),
                 "--quiet"]) == 0
    saved = (out / "checkpoint.npz").read_bytes()

    if failure == "bound":
        real_bound = train_module.training_bound

        def nan_bound(model, x, config, rng):
            bound = real_bound(model, x, config, rng)
            bound.data[0] = np.nan
            return bound

        monkeypatch.setattr(train_module, "training_bound", nan_bound)
    else:
        real_step = Adam.step

        def poisoning_step(self):
            real_step(self)
            self.params[0].data[...] = np.nan

        monkeypatch.setattr(Adam, "step", poisoning_step)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--quiet"]) == 1
    message = capsys.readouterr().err
    assert "training diverged in epoch 2" in message and "smaller --lr" in message
    assert ("weights are no longer finite" in message) == (failure == "weights")
    assert (out / "checkpoint.npz").read_bytes() == saved


def test_cli_trains_on_the_iwae_bound(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", "--dataset", "mnist-5k", "--max-train", "200", "--max-test", "50",
                     "--epochs", "1", "--batch-size", "50", "--hidden", "16", "--z-dim", "3",
                     "--objective", "iwae", "--k-train", "3", "--out", str(out), "--quiet"])
    assert code == 0
    assert "on the L_3" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["objective"], metrics["k"]) == ("iwae", 3)
    assert np.isfinite(metrics["train_iwae"]).all()
    code = cli_main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "10",
                     "--n", "20", "--quiet"])
    assert code == 0
    assert "model vae trained on the L_3" in capsys.readouterr().out

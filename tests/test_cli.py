"""The command line end to end: train writes its files, evaluate reads them back."""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from minivae.cli import build_parser, given_train_fields, main, new_run_config
from minivae.cli import main as cli_main
from minivae.data import load_dataset
from minivae.engine.tensor import no_grad
from minivae.io.checkpoint import load_checkpoint
from minivae.io.resume import load_model
from minivae.models.registry import MODELS
from minivae.train import TrainConfig


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


def test_evaluate_saves_the_per_image_scores_it_averages(tmp_path, tiny_mnist, capsys):
    """--save writes the numbers behind the printed means: their means and standard errors
    are what evaluate prints, and one --seed on one run gives the same arrays twice (so two
    runs scored alike give paired differences)."""
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-root", str(tiny_mnist), "--epochs", "1",
                 "--batch-size", "50", "--hidden", "16", "--z-dim", "3", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    scored = []
    for name in ("a.npz", "b.npz"):
        assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "10",
                     "--n", "40", "--seed", "3", "--data-root", str(tiny_mnist), "--quiet",
                     "--save", str(tmp_path / name)]) == 0
        scored.append((np.load(tmp_path / name), capsys.readouterr().out))
    (first, printed), (second, _) = scored
    for key, label in (("elbo", "test ELBO"), ("log_px", "k=10")):
        values = first[key]
        assert values.shape == (40,) and values.dtype == np.float64
        mean, _, error = printed.split(label)[1].split()[:3]
        assert float(mean) == pytest.approx(values.mean(), abs=5e-4)
        assert float(error) == pytest.approx(values.std(ddof=1) / np.sqrt(40), abs=5e-4)
        np.testing.assert_array_equal(values, second[key])
    assert int(first["k"]) == 10 and int(first["seed"]) == 3
    for bad in ("scores.json", str(tmp_path)):
        assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--save", bad,
                     "--quiet"]) == 2
        assert "--save must name a file ending in .npz" in capsys.readouterr().err


def test_evaluate_scores_the_images_train_scored_with_noise_of_its_own(tmp_path, monkeypatch,
                                                                       capsys):
    """train's final test ELBO and evaluate's are one estimator on the same images (the run's
    first --max-test test digits, binarized once with seed 12345), in batches of 1000; only
    the noise ε differs: the run's own stream in train, --seed in evaluate (both help texts
    say so)."""
    import minivae.train as training

    drawn = {}
    mean_elbo = training.mean_elbo

    def remember_the_draws(model, x, rng, batch_size=1000):
        drawn.update(x=x.copy(), rng=copy.deepcopy(rng))
        return mean_elbo(model, x, rng, batch_size)

    monkeypatch.setattr(training, "mean_elbo", remember_the_draws)
    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)
    out = tmp_path / "run"
    assert main(["train", "--max-train", "100", "--max-test", "30", "--epochs", "1",
                 "--hidden", "16", "--z-dim", "3", "--out", str(out), "--quiet"]) == 0
    assert "nats after 1 epoch on the ELBO" in capsys.readouterr().out  # one epoch, singular
    trained = json.loads((out / "metrics.json").read_text())["test_elbo"][-1]
    assert main(["evaluate", "--checkpoint", str(out / "checkpoint.npz"), "--k", "3",
                 "--seed", "7", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "dataset mnist-5k (test, 30 images)" in printed  # the run's --max-test by default
    evaluated = float(printed.split("test ELBO")[1].split()[0])

    # the images, independently: each pixel 1 with its grey level as probability
    grey = load_dataset("mnist-5k", "test").images[:30].reshape(30, -1).astype(np.float32) / 255
    binary = (np.random.default_rng(12345).random(grey.shape, dtype=np.float32) < grey)
    np.testing.assert_array_equal(drawn["x"], binary.astype(np.float32))
    model, _ = load_model(out / "checkpoint.npz")
    with no_grad():
        with_train_noise = model.elbo(drawn["x"], drawn["rng"]).data.astype(np.float64).mean()
        with_seed_7 = model.elbo(drawn["x"], np.random.default_rng(7)).data.astype(np.float64)
    assert with_train_noise == pytest.approx(trained, abs=1e-9)
    assert evaluated == pytest.approx(with_seed_7.mean(), abs=5e-4)  # printed to 3 decimals
    # so the two numbers are two draws of one mean: here they differ, by less than the noise
    assert abs(evaluated - trained) > 1e-3
    assert abs(evaluated - trained) < 5 * with_seed_7.std() / np.sqrt(30)


def test_help_shows_every_default():
    """--help shows each option's default; for the train options that have none on the
    command line (None: not given), TrainConfig's; and no path of this machine."""
    parser = build_parser()
    commands = next(action.choices for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction))
    helps = {name: {option: (action.help or "") % vars(action) for action in command._actions
                    for option in action.option_strings}
             for name, command in commands.items()}
    defaults = TrainConfig()
    for flag, value in (("--dataset", defaults.dataset), ("--epochs", defaults.epochs),
                        ("--batch-size", defaults.batch_size), ("--lr", defaults.lr),
                        ("--z-dim", defaults.z_dim), ("--hidden", "400"), ("--seed", 0),
                        ("--dtype", defaults.dtype), ("--objective", defaults.objective),
                        ("--model", defaults.model), ("--out", defaults.out),
                        ("--leaky-slope", defaults.leaky_slope), ("--k-train", 5),
                        ("--binarize", defaults.binarize),
                        ("--activation", "the model's own, tanh for the VAE"),
                        ("--max-train", "all"), ("--max-test", "all"),
                        ("--lr-schedule", defaults.lr_schedule),
                        ("--kl-warmup", defaults.kl_warmup), ("--adam-eps", defaults.adam_eps),
                        ("--init", defaults.init), ("--validation", "none"),
                        ("--early-stopping", "none"), ("--budget-minutes", "none")):
        assert f"(default: {value}" in helps["train"][flag], flag
    assert "(default: 5000)" in helps["evaluate"]["--k"]
    assert "(default: 0)" in helps["evaluate"]["--seed"]
    assert "(default: those the run was scored on" in helps["evaluate"]["--n"]
    for name, command in commands.items():
        text = " ".join(command.format_help().split())
        assert "(default: None)" not in text and str(Path.cwd().parent) not in text
        assert "$MINIVAE_DATA" in text and "~/.cache/minivae" in text
        # a description that says what it does, and why the two test ELBOs differ
        assert command.description and "Monte Carlo" in command.description, name
    assert f"train one of {len(MODELS)} models" in " ".join(parser.format_help().split())


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
    out = tmp_path / "run"  # not the default runs/vae, which is in the working directory
    assert main([*argv, "--quiet", "--out", str(out)] if argv[0] == "train" else argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


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
    ("gaussian_vade", ["n_clusters=3", "mean_activation=\"sigmoid\""]),
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

        def nan_bound(model, x, config, rng, extra=None, kl_weight=1.0):
            bound = real_bound(model, x, config, rng, extra, kl_weight)
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

"""The command line's contract with a careless or hostile user: whatever the flags and files,
``python -m minivae train|evaluate`` ends with exactly one line on stderr that starts with
"error:" and names what is wrong, exit code 2 for bad input or 1 for a run that failed, no
traceback, and no half-made output folder; one run per output folder; a closed stdout ends
the command quietly.

Argparse's own errors (an unknown flag, a value that is not a number) are printed as one
"error:" line too, rather than argparse's usage block.  Most cases call ``main`` in this
process; a few need processes of their own (locks, kills, a closed pipe).
"""
from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import minivae.io.lock as lock
import minivae.training_data as training_data
from minivae.cli import main
from minivae.data import load_dataset
from minivae.io.checkpoint import load_checkpoint, save_checkpoint
from minivae.io.lock import LOCK_NAME, run_folder
from minivae.io.resume import CHECKPOINT_NAME, RUN_FILES
from tests.helpers import child_env, child_python, ctrl_c_as_at_a_terminal, sigkill

TINY = ["--dataset", "mnist-5k", "--max-train", "64", "--max-test", "64", "--epochs", "1",
        "--hidden", "8", "--z-dim", "2", "--quiet"]
# a run that takes long enough to be caught in the act (its epochs are a fraction of a second)
LONG = ["--dataset", "mnist-5k", "--max-train", "512", "--max-test", "64", "--epochs", "10000",
        "--hidden", "8", "--z-dim", "2", "--quiet"]


DIGITS = functools.lru_cache(load_dataset)
# what a run writes into its folder unless it holds validation images out (then best.npz too)
EVERY_RUN_WRITES = sorted(name for role, name in RUN_FILES.items() if role != "best")


@pytest.fixture(autouse=True)
def read_the_digits_once(monkeypatch):
    """Most cases fail after the data are read: read them once (they are not what is tested)."""
    monkeypatch.setattr(training_data, "load_dataset", DIGITS)


def run_cli(argv):
    """``main(argv)`` in this process: (exit code, stdout, stderr)."""
    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()) as err:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit:  # argparse's errors (and --help)
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The folder of a finished one-epoch tiny run."""
    out = tmp_path_factory.mktemp("contract") / "run"
    code, _, err = run_cli(["train", *TINY, "--out", out])
    assert code == 0, err
    return out


def resigned(source: Path, target: Path, change) -> Path:
    """A copy of the checkpoint ``source`` at ``target`` with ``change(arrays, meta)`` applied
    and a fresh, valid content digest: only the contents are wrong."""
    arrays, meta = load_checkpoint(source)
    change(arrays, meta)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, arrays, meta)
    return target


def negative_adam_step(arrays, meta):
    arrays["_adam.t"] = np.array(-1)


def nan_weight(arrays, meta):
    arrays["decoder.layers.0.bias"][0] = np.nan


@pytest.fixture
def places(tmp_path, trained_run):
    """The paths the table's placeholders stand for."""
    (tmp_path / "a file").write_text("not a folder")
    (tmp_path / "text.npz").write_text("not a checkpoint")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    shutil.copytree(trained_run, tmp_path / "run")
    checkpoint = trained_run / CHECKPOINT_NAME
    resigned(checkpoint, tmp_path / "bad step" / CHECKPOINT_NAME, negative_adam_step)
    resigned(checkpoint, tmp_path / "nan weight.npz", nan_weight)
    return {"out": tmp_path / "runs" / "new", "file": tmp_path / "a file",
            "run": tmp_path / "run", "checkpoint": tmp_path / "run" / CHECKPOINT_NAME,
            "text": tmp_path / "text.npz", "empty": tmp_path / "empty.npz",
            "foreign": tmp_path / "foreign.npz", "bad_step": tmp_path / "bad step",
            "nan_weight": tmp_path / "nan weight.npz", "nowhere": tmp_path / "missing.npz"}


# (arguments after the subcommand, exit code, fragments the one line must hold); "{name}" is
# one of the places above.  A train case without --out writes to the fresh folder {out}.
TRAIN_CASES = [
    # argparse: unknown flags, values that are not numbers or not among the choices
    (["--bogus"], 2, ["--bogus"]),
    (["--epochs", "x"], 2, ["--epochs", "invalid int value"]),
    (["--lr", "fast"], 2, ["--lr"]),
    (["--dataset"], 2, ["--dataset", "expected one argument"]),
    (["--model", "nope"], 2, ["--model", "invalid choice"]),
    (["--dtype", "float16"], 2, ["--dtype"]),
    (["--activation", "swish"], 2, ["--activation", "invalid choice"]),
    (["--binarize", "threshold"], 2, ["--binarize", "invalid choice"]),
    (["--objective", "vimco"], 2, ["--objective"]),
    (["--option", "no-equals-sign"], 2, ["--option", "KEY=VALUE"]),
    (["--option", "=3"], 2, ["KEY=VALUE"]),
    # values of the right kind that make no run
    (["--epochs", "0"], 2, ["--epochs must be a positive integer"]),
    (["--epochs", "-3"], 2, ["--epochs must be a positive integer"]),
    (["--batch-size", "0"], 2, ["--batch-size must be a positive integer"]),
    (["--lr", "-1"], 2, ["--lr must be positive"]),
    (["--lr", "nan"], 2, ["--lr must be positive"]),
    (["--lr", "inf"], 2, ["--lr must be positive"]),
    (["--z-dim", "0"], 2, ["--z-dim must be a positive integer"]),
    (["--hidden", "0"], 2, ["every --hidden width must be a positive integer"]),
    (["--hidden", "8", "-5"], 2, ["every --hidden width must be a positive integer"]),
    (["--seed", "-1"], 2, ["--seed must be an integer ≥ 0"]),
    (["--threads", "0"], 2, ["--threads must be a positive integer"]),
    (["--threads", "two"], 2, ["--threads", "invalid int value"]),
    (["--leaky-slope", "nan"], 2, ["--leaky-slope must be a finite number"]),
    (["--dataset", "cifar"], 2, ["--dataset must be one of", "cifar"]),
    # a folder the embedded digits would not read: refused, not silently unused
    (["--data-root", "{out}"], 2, ["mnist-5k reads no folder", "--data-root"]),
    (["--objective", "iwae", "--k-train", "0"], 2, ["--k-train must be a positive integer"]),
    (["--k-train", "3"], 2, ["--k-train must be 1 with objective 'elbo'"]),
    (["--objective", "iwae", "--model", "categorical"], 2, ["--objective 'iwae'"]),
    (["--model", "gaussian_decoder", "--binarize", "round"], 2,
     ["--binarize 'round' applies to models of binary pixels"]),
    (["--resume", "--out", "{run}", "--epochs", "2", "--binarize", "round"], 2,
     ["differs from the run's in binarize 'dynamic' → 'round'"]),
    # slices by a user's number: 0 or a negative N would silently take all, or all but |N|
    (["--labels", "0"], 2, ["--labels must be a positive integer"]),
    (["--labels", "100"], 2, ["--labels is read only by the semi-supervised model 'm2'"]),
    (["--model", "m2"], 2, ["--labels must say how many"]),
    (["--model", "m2", "--labels", "15"], 2, ["--labels must be a multiple of the 10 classes"]),
    (["--max-train", "0"], 2, ["--max-train must be a positive integer"]),
    (["--max-train", "-10"], 2, ["--max-train must be a positive integer"]),
    (["--max-test", "0"], 2, ["--max-test must be a positive integer"]),
    (["--max-test", "-1"], 2, ["--max-test must be a positive integer"]),
    (["--max-train", "100000"], 2, ["--max-train must be at most the 4500 images"]),
    # model options: unknown keys and bad values, given twice
    (["--option", "foo=1"], 2, ["--option holds foo", "'vae' does not take"]),
    (["--option", "soft_targets=3"], 2, ["soft_targets must be a bool"]),
    (["--option", "soft_targets=true", "--option", "soft_targets=false"], 2,
     ["--option soft_targets is given twice"]),
    (["--model", "categorical", "--option", "n_classes=-1"], 2, ["--option n_classes must be"]),
    (["--model", "categorical", "--option", "n_classes=\"ten\""], 2,
     ["--option n_classes must be"]),
    (["--model", "vqvae", "--option", "beta=[1]"], 2, ["beta"]),
    (["--option", "prior=gaussian"], 2, ["--option prior must be one of", "learnable"]),
    (["--model", "gaussian_decoder", "--option", "sigma=z-dependent"], 2,
     ["--option sigma must be one of", "z_dependent"]),
    (["--model", "gaussian_decoder", "--option", "sigma=z_dependent", "--option",
      "min_sigma=0"], 2, ["--option min_sigma must be"]),
    # sizes that cannot fit: refused before anything is allocated, naming the flag
    (["--hidden", "1000000000"], 2, ["--hidden [1000000000] is too large", "of memory"]),
    (["--z-dim", "1000000000"], 2, ["--z-dim 1000000000 is too large"]),
    (["--objective", "iwae", "--k-train", "100000000"], 2, ["--k-train 100000000 is too large"]),
    # output folders that cannot be one
    (["--out", "{file}"], 2, ["it is a file", "a file"]),
    (["--out", "{file}/run"], 2, ["lies under the file"]),
    (["--out", "{out}/" + "x" * 300], 2, ["File name too long"]),
    (["--out", ""], 2, ["--out must be a non-empty path"]),
    # resuming what is not there, is finished, differs, or was tampered with
    (["--resume", "--out", "{out}"], 2, ["cannot resume: no checkpoint"]),
    (["--resume", "--out", "{file}"], 2, ["cannot resume: no checkpoint"]),
    (["--resume", "--out", "{run}"], 2, ["already finished 1 epochs"]),
    (["--resume", "--out", "{run}", "--epochs", "2", "--lr", "0.5"], 2,
     ["differs from the run's in lr 0.001 → 0.5"]),
    (["--resume", "--out", "{run}", "--epochs", "0"], 2, ["--epochs must be a positive"]),
    (["--resume", "--out", "{bad_step}", "--epochs", "2"], 2,
     ["bad step", "Adam state t must be an integer ≥ 0, got -1"]),
    # the training options of the papers: schedules, warm-up, Adam's ε, initialization,
    # validation, early stopping, a wall-clock budget
    (["--lr-schedule", "linear"], 2, ["--lr-schedule", "invalid choice"]),
    (["--kl-warmup", "-1"], 2, ["--kl-warmup must be an integer ≥ 0"]),
    (["--kl-warmup", "3", "--objective", "iwae"], 2, ["--kl-warmup weights the KL"]),
    (["--kl-warmup", "3", "--model", "categorical"], 2, ["--kl-warmup", "'categorical'"]),
    (["--adam-eps", "0"], 2, ["--adam-eps must be positive"]),
    (["--adam-eps", "nan"], 2, ["--adam-eps must be positive"]),
    (["--init", "xavier"], 2, ["--init", "invalid choice"]),
    (["--validation", "0"], 2, ["--validation must be a positive integer"]),
    (["--validation", "64"], 2, ["--validation must be fewer than the 64 training images"]),
    (["--early-stopping", "0", "--validation", "8"], 2,
     ["--early-stopping must be a positive integer"]),
    (["--early-stopping", "3"], 2, ["--early-stopping needs validation images"]),
    (["--budget-minutes", "-1"], 2, ["--budget-minutes must be positive"]),
    (["--budget-minutes", "inf"], 2, ["--budget-minutes must be positive"]),
    (["--resume", "--out", "{run}", "--epochs", "2", "--lr-schedule", "cosine"], 2,
     ["differs from the run's in lr_schedule 'constant' → 'cosine'"]),
    # a valid run that fails: the weights blow up (exit 1)
    (["--lr", "1e30", "--batch-size", "8"], 1, ["training diverged in epoch 1", "--lr"]),
]

EVALUATE_CASES = [
    ([], 2, ["--checkpoint"]),
    (["--checkpoint"], 2, ["--checkpoint", "expected one argument"]),
    (["--checkpoint", "{checkpoint}", "--bogus"], 2, ["--bogus"]),
    (["--checkpoint", "{checkpoint}", "--k", "x"], 2, ["--k", "invalid int value"]),
    (["--checkpoint", "{nowhere}"], 2, ["checkpoint not found", "missing.npz"]),
    (["--checkpoint", "{run}"], 2, ["--checkpoint must be a file", "got a folder"]),
    (["--checkpoint", ""], 2, ["--checkpoint must be a file", "got a folder"]),
    (["--checkpoint", "{text}"], 2, ["text.npz", "not an .npz checkpoint"]),
    (["--checkpoint", "{empty}"], 2, ["empty.npz"]),
    (["--checkpoint", "{foreign}"], 2, ["foreign.npz"]),
    (["--checkpoint", "{nan_weight}"], 2, ["nan weight.npz", "must be finite"]),
    (["--checkpoint", "{checkpoint}", "--n", "0"], 2, ["--n must be a positive integer"]),
    (["--checkpoint", "{checkpoint}", "--n", "-5"], 2, ["--n must be a positive integer"]),
    (["--checkpoint", "{checkpoint}", "--n", "100000"], 2, ["--n must be at most the 500"]),
    (["--checkpoint", "{checkpoint}", "--k", "0"], 2, ["--k must be a positive integer"]),
    (["--checkpoint", "{checkpoint}", "--k", "-3"], 2, ["--k must be a positive integer"]),
    (["--checkpoint", "{checkpoint}", "--seed", "-1"], 2, ["--seed must be an integer ≥ 0"]),
    (["--checkpoint", "{checkpoint}", "--data-root", "{out}"], 2,
     ["mnist-5k reads no folder", "--data-root"]),
    (["--checkpoint", "{checkpoint}", "--threads", "-2"], 2,
     ["--threads must be a positive integer"]),
    (["--checkpoint", "{checkpoint}", "--save", "{out}/scores.json"], 2,
     ["--save must name a file ending in .npz"]),
    (["--checkpoint", "{checkpoint}", "--save", "{run}"], 2,
     ["--save must name a file ending in .npz"]),
]

TOP_CASES = [([], 2, ["command"]), (["frob"], 2, ["invalid choice", "frob"])]

CASES = ([pytest.param(["train", *case[0]], *case[1:], id=" ".join(["train", *case[0]]))
          for case in TRAIN_CASES]
         + [pytest.param(["evaluate", *case[0]], *case[1:], id=" ".join(["evaluate", *case[0]]))
            for case in EVALUATE_CASES]
         + [pytest.param(*case, id=" ".join(case[0]) or "(nothing)") for case in TOP_CASES])


@pytest.mark.parametrize("argv, code, fragments", CASES)
def test_bad_input_gives_one_line_and_an_exit_code(places, argv, code, fragments):
    argv = [arg.format(**places) for arg in argv]
    if argv[:1] == ["train"]:
        argv = [*argv[:1], *TINY, *argv[1:]]
        if "--out" not in argv:
            argv += ["--out", str(places["out"])]
    got, out, err = run_cli(argv)
    assert (got, out) == (code, "")
    assert_one_error_line(err, *[fragment.format(**places) for fragment in fragments])
    # a failed run leaves no folder it made, nor its parents
    assert not places["out"].parent.exists()
    # nor does it touch a run it could not continue
    assert sorted(p.name for p in places["run"].iterdir()) == EVERY_RUN_WRITES


def test_the_contract_table_covers_every_flag():
    """Every flag of both commands appears in some bad-input case."""
    from minivae.cli import build_parser

    commands = next(action.choices for action in build_parser()._actions
                    if isinstance(action, argparse._SubParsersAction))
    for name, table in (("train", TRAIN_CASES), ("evaluate", EVALUATE_CASES)):
        flags = {option for action in commands[name]._actions for option in action.option_strings
                 if option not in ("-h", "--help", "--quiet")}
        used = {arg for case in table for arg in case[0]}
        assert flags <= used, sorted(flags - used)


# -- one run per output folder -----------------------------------------------------------------


def start_long_run(out: Path, *flags: str) -> subprocess.Popen:
    """A training run in a process of its own, returned once it holds ``out``."""
    child = subprocess.Popen([sys.executable, "-m", "minivae", "train", *LONG, *flags,
                              "--out", str(out)], env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=ctrl_c_as_at_a_terminal)
    deadline = time.monotonic() + 60
    # metrics.json is the last file of an epoch: once it is there the run holds out and has
    # written everything of its first epoch (waiting for the checkpoint alone, a Ctrl-C could
    # land between the two files)
    while not (out / RUN_FILES["metrics"]).exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return child


def test_a_second_run_into_one_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    first = start_long_run(out)
    try:
        assert (out / LOCK_NAME).read_text().strip() == str(first.pid)
        code, stdout, err = run_cli(["train", *TINY, "--out", out])
        assert (code, stdout) == (1, "")
        assert_one_error_line(err, f"another run (process {first.pid}) is writing into {out}")
        code, _, err = run_cli(["train", "--resume", "--epochs", "20000", "--quiet",
                                "--out", out])
        assert code == 1 and "is writing into" in err
        assert first.poll() is None  # the first run goes on, its temporary files untouched
    finally:
        sigkill(first)
        first.communicate()


def test_a_killed_run_does_not_block_the_next(tmp_path):
    out = tmp_path / "run"
    first = start_long_run(out)
    sigkill(first)
    first.communicate()
    assert (out / LOCK_NAME).exists()  # left behind, but no longer locked by anyone
    done = load_checkpoint(out / CHECKPOINT_NAME)[1]["epoch"]
    code, _, err = run_cli(["train", "--resume", "--epochs", done + 1, "--quiet", "--out", out])
    assert code == 0, err
    assert load_checkpoint(out / CHECKPOINT_NAME)[1]["epoch"] == done + 1
    assert not (out / LOCK_NAME).exists()


def test_a_folder_held_in_this_process_is_refused_too(tmp_path):
    with run_folder(tmp_path / "held") as held:
        code, _, err = run_cli(["train", *TINY, "--out", held])
    assert code == 1
    assert_one_error_line(err, f"is writing into {held}")
    assert list(held.iterdir()) == []  # the refused run wrote nothing; the lock is released


def test_interrupting_a_run_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    child = start_long_run(out)
    child.send_signal(signal.SIGINT)
    stdout, err = child.communicate(timeout=60)
    assert (child.returncode, stdout) == (130, "")
    assert_one_error_line(err, "interrupted", "--resume")
    assert not (out / LOCK_NAME).exists()
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_NAME, RUN_FILES["metrics"]]


FINALIZING_LOOP = """
import sys
from minivae.program import run_reporting_errors

class Slow:
    def __del__(self):  # the signal most likely lands here, where Python would lose it
        sum(range(20_000))

def loop():
    print("ready", flush=True)
    while True:
        Slow()

sys.exit(run_reporting_errors(loop))
"""


def test_an_interrupt_in_a_finalizer_still_stops_the_program():
    # Python reports a KeyboardInterrupt raised in __del__ as "Exception ignored" and goes on
    # (a progress bar freed at the end of an epoch is such a finalizer); the program must stop
    for _ in range(3):
        with child_python(FINALIZING_LOOP, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=ctrl_c_as_at_a_terminal) as child:
            assert child.stdout.readline() == "ready\n"
            time.sleep(0.05)
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
            assert child.returncode == 130 and err == "error: interrupted\n", err


# -- folders that cannot be written to --------------------------------------------------------


def test_a_folder_that_cannot_be_written_to_fails_before_training(trained_run, tmp_path,
                                                                  monkeypatch):
    """The check comes before any data is read (not after an epoch, at the first save)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / LOCK_NAME).write_text("")  # a writable lock file left by a killed run is no help
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def read_only(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(Path(dir) / "tmpXXXX"))

    def never(*args, **kwargs):
        raise AssertionError("the data were read")

    monkeypatch.setattr(lock.tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr("minivae.training_data.load_dataset", never)
    code, _, err = run_cli(["train", "--resume", "--epochs", "5", "--quiet", "--out", run])
    assert code == 2
    assert_one_error_line(err, "Permission denied", str(run))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not bind root")
def test_a_read_only_folder_fails_before_training(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    run.chmod(0o555)
    try:
        started = time.perf_counter()
        code, _, err = run_cli(["train", "--resume", "--epochs", "5", "--quiet", "--out", run])
        assert code == 2 and time.perf_counter() - started < 5
        assert_one_error_line(err, "Permission denied", str(run))
    finally:
        run.chmod(0o755)


# -- what killed runs leave behind ------------------------------------------------------------

KILLED_SAVE = """
import os, signal, sys
from pathlib import Path
from minivae.io.atomic import atomic_write

def die_half_written(tmp_path):
    Path(tmp_path).write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)

atomic_write(sys.argv[1], die_half_written)
"""


def test_temporaries_of_every_file_a_run_writes_are_removed(trained_run, tmp_path):
    """A kill during any of a run's saves leaves atomic_write's hidden temporary file; the next
    run in the folder removes them all, whichever file they were for."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for name in RUN_FILES.values():
        child = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(run / name)],
                               env=child_env(), capture_output=True)
        assert child.returncode == -signal.SIGKILL, child.stderr
    # a temporary beside each file
    assert len(list(run.iterdir())) == len(EVERY_RUN_WRITES) + len(RUN_FILES)
    code, _, err = run_cli(["train", "--resume", "--epochs", "2", "--quiet", "--out", run])
    assert code == 0, err
    assert sorted(p.name for p in run.iterdir()) == EVERY_RUN_WRITES


# -- output ----------------------------------------------------------------------------------


def test_a_closed_stdout_ends_evaluate_quietly(trained_run):
    """``evaluate ... | head -1``: the reader is gone before the first line; exit 141 (as for a
    process ended by SIGPIPE) and nothing on stderr."""
    child = subprocess.Popen(
        [sys.executable, "-m", "minivae", "evaluate", "--checkpoint",
         str(trained_run / CHECKPOINT_NAME), "--k", "5", "--n", "10", "--quiet"],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # long before the child prints: importing takes a while
    err = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(timeout=60) == 141
    assert err == ""


def test_evaluate_prints_the_library_standard_error(trained_run, monkeypatch):
    """The ± column is minivae.objectives.likelihood.standard_error's, whatever it says for
    one image (the command computes none of its own)."""
    import minivae.objectives.likelihood as likelihood

    seen = []

    def recorded(values):
        seen.append(len(values))
        return 12.5

    monkeypatch.setattr(likelihood, "standard_error", recorded)
    code, out, err = run_cli(["evaluate", "--checkpoint", trained_run / CHECKPOINT_NAME,
                              "--k", "5", "--n", "1", "--quiet"])
    assert (code, err) == (0, "")
    assert seen == [1, 1] and out.count("± 12.500 nats") == 2


def test_help_still_prints_the_usage(tmp_path):
    code, out, err = run_cli(["train", "--help"])
    assert (code, err) == (0, "") and "--max-train" in out

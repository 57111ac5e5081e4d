"""Shared test configuration: hypothesis profiles and the fixtures every folder uses.

Profiles (chosen with the environment variable ``HYPOTHESIS_PROFILE``, default ``ci``):

- ``ci``: derandomized, so every run draws the same examples and a failure repeats exactly;
  50 examples per property unless a test asks for fewer or more.
- ``dev``: randomized and five times as many examples, for hunting bugs locally.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

for name, derandomize, max_examples in (("ci", True, 50), ("dev", False, 250)):
    settings.register_profile(name, derandomize=derandomize, max_examples=max_examples,
                              deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One BLAS thread for the whole suite, here and in every process it starts: a run is
# bit-identical to another only with the same thread count (minivae/threads.py), and the tests
# compare runs bit for bit.  The measuring policy has its own tests (tests/test_threads.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def outputs_stay_in_tmp_path():
    """Every test writes under its tmp_path: the default output folders of the command line
    and the demos (runs/vae, runs/demo, ...) are relative to the working directory, which under
    `make test` is the user's checkout, so a test that used one would leave a folder there."""
    runs = Path.cwd() / "runs"
    before = sorted(runs.iterdir()) if runs.is_dir() else None
    yield
    after = sorted(runs.iterdir()) if runs.is_dir() else None
    assert after == before, f"the test wrote into {runs}: give it an output under tmp_path"


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so each test sees the same numbers every run."""
    return np.random.default_rng(0)


@pytest.fixture
def shared_data() -> Path:
    """The directory of real datasets next to the repository; the test is skipped without it."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path}")
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point every place load_dataset looks at (and downloads from) into tmp_path: no
    $MINIVAE_DATA, the cache and HOME in tmp_path, no system folders, mirrors that are not
    there (offline)."""
    from minivae.io import datasets

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.setattr(datasets, "CACHE_ROOT", tmp_path / "cache")
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})
    offline = (tmp_path / "no-such-mirror").as_uri() + "/"
    monkeypatch.setattr(datasets, "MIRRORS", {"mnist": (offline,), "fashion-mnist": (offline,)})
    return tmp_path


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A folder of small IDX files laid out like MNIST (checksums patched to match them)."""
    import minivae.io.datasets as datasets
    from minivae.io.idx import read_uncompressed, write_idx

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


@pytest.fixture(params=["python", "numba", "c"])
def every_backend(request):
    """Run the test once per kernel backend (skipped where one is unavailable), then go back
    to "auto"."""
    from minivae import kernels

    if request.param not in kernels.available_backends():
        pytest.skip(f"the {request.param!r} kernel backend is unavailable")
    kernels.set_backend(request.param)
    yield request.param
    kernels.set_backend("auto")


@pytest.fixture
def backend(every_backend):
    """The name of the backend every kernel call of the test runs on."""
    return every_backend


@pytest.fixture
def no_pictures(monkeypatch):
    """Training runs skip their PNGs: they are not part of the run's state."""
    import minivae.train as training

    monkeypatch.setattr(training, "write_pictures", lambda *args, **kwargs: None)


def check_flat_gradient(module, objective, analytic, directions, rtol, atol, step=1e-6):
    """Central differences of ``objective()`` along each direction v of the module's flat
    parameter buffer must equal analytic · v (the backward pass's flat gradient)."""
    theta = module.flat_data.copy()
    for v in directions:
        module.flat_data[:] = theta + step * v
        plus = objective()
        module.flat_data[:] = theta - step * v
        minus = objective()
        np.testing.assert_allclose((plus - minus) / (2 * step), analytic @ v, rtol=rtol, atol=atol)
    module.flat_data[:] = theta


@pytest.fixture
def flat_gradient_check():
    """``check_flat_gradient`` as a fixture, so test modules need not import conftest."""
    return check_flat_gradient


def objective_of_parameters(model, x, seed):
    """f(*parameters) = Σ model.objective(x) with the model's parameters replaced by f's
    arguments and the same noise every call (for gradcheck)."""
    names = [name for name, _ in model.named_parameters()]

    def f(*tensors):
        for name, tensor in zip(names, tensors):
            *path, leaf = name.split(".")
            owner = model
            for part in path:
                owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
            setattr(owner, leaf, tensor)
        return model.objective(x, np.random.default_rng(seed)).sum()
    return f


@pytest.fixture
def objective_gradcheck():
    """``check(model, x, seed)``: Σ model.objective(x) passes gradcheck in every parameter,
    and every parameter reaches the value (its gradient is not all zero)."""
    from minivae import Tensor, gradcheck

    def check(model, x, seed):
        parameters = [p.data.copy() for p in model.parameters()]
        f = objective_of_parameters(model, x, seed)
        assert gradcheck(f, *parameters)
        leaves = [Tensor(p, requires_grad=True) for p in parameters]
        f(*leaves).backward()
        assert all(np.any(leaf.grad != 0) for leaf in leaves)  # every parameter reaches the value
    return check


def pytest_terminal_summary(terminalreporter):
    """Report how many fuzz cases tests/fuzzing.py checked (quoted in docs/RELIABILITY.md)."""
    fuzzing = sys.modules.get("tests.fuzzing")
    line = fuzzing.summary() if fuzzing is not None else ""
    if line:
        terminalreporter.write_line(line)

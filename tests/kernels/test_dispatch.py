"""The dispatcher: one loop source behind every backend, set_backend and its fallbacks,
which call sites run a kernel (enabled, composed, AUTO_FUSED), and the same model trained
on every backend."""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest

from minivae import kernels
from minivae.kernels import reference
from tests.kernels.oracles import oracle_bernoulli_log_prob


@pytest.fixture
def restore_dispatch():
    """Put the dispatcher back as it was (modules, caches, "auto") after the test."""
    saved = [dict(table) for table in (kernels._MODULES, kernels._loaded, kernels._failed)]
    yield
    for table, copy in zip((kernels._MODULES, kernels._loaded, kernels._failed), saved):
        table.clear()
        table.update(copy)
    kernels.set_backend("auto")


# -- the backends: one loop source, compiled by numba, twinned in C ----------------------------


def test_every_backend_runs_the_reference_loops_with_their_signatures():
    from minivae.kernels import c_backend, jit

    for kernel in kernels.KERNELS:
        loop = getattr(reference, kernel)
        compiled = getattr(jit, kernel)
        assert getattr(compiled, "py_func", compiled) is loop, kernel  # the same source
        twin = inspect.signature(getattr(c_backend, kernel))
        assert list(twin.parameters) == list(inspect.signature(loop).parameters), kernel


def test_numba_module_without_numba_reports_it_and_its_loops_still_run(monkeypatch):
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    path = Path(reference.__file__).with_name("jit.py")
    spec = importlib.util.spec_from_file_location("jit_without_numba", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(ImportError, match="numba"):
        module.check_available()
    logits, x = np.array([[-2.0, 0.5, 3.0]]), np.array([[0.0, 1.0, 1.0]])
    grad, sums = np.empty_like(logits), np.empty(1)
    module.bernoulli_log_prob(logits, x, True, grad, sums)
    expected, expected_grad = oracle_bernoulli_log_prob(logits, x)
    np.testing.assert_allclose(sums, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12)


# -- choosing a backend ------------------------------------------------------------------------


def small_call(kernel: str):
    """Call the dispatched ``kernel`` once on tiny float64 inputs."""
    x = np.full((2, 3), 0.5)
    call = getattr(kernels, kernel)
    if kernel == "bernoulli_log_prob":
        return call(x, x, np.empty_like(x))
    if kernel == "bias_act_forward":
        return call(x, x[0], "tanh")
    if kernel == "bias_act_backward":
        return call(x, x, "sigmoid")
    if kernel == "reparameterize_kl_forward":
        return call(x, x, x)
    if kernel == "reparameterize_kl_backward":
        return call(x, x, x, x, x[:, 0])
    if kernel == "adam_step":
        return call(x[0].copy(), x[0], x[0].copy(), x[0].copy(), 0.1, 0.9, 0.999, 1e-8, 1)
    if kernel == "sgd_step":
        return call(x[0].copy(), x[0], x[0].copy(), 0.1, 0.9, True)
    if kernel == "logsumexp_rows":
        return call(x)
    if kernel in ("matmul_naive", "matmul_blocked"):
        return call(x, x.T)
    raise AssertionError(f"no small call written for {kernel}")


def test_set_backend_python_and_auto_round_trip(restore_dispatch):
    kernels.set_backend("python")
    assert kernels.get_backend() == "python" and kernels.active_backend() == "python"
    assert {kernels.backend_of(k) for k in kernels.KERNELS} == {"python"}

    kernels.set_backend("auto")
    available = kernels.available_backends()
    first = next(b for b in ("c", "numba", "python") if b in available)
    assert kernels.get_backend() == "auto" and kernels.active_backend() == first
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == first, kernel
        small_call(kernel)

    with pytest.raises(ValueError, match="bogus"):
        kernels.set_backend("bogus")
    with pytest.raises(ValueError, match="kernel must be one of"):
        kernels.backend_of("bogus")
    assert kernels.get_backend() == "auto"


@pytest.mark.parametrize("name", kernels.BACKENDS)
def test_set_backend_routes_every_kernel_to_that_backend(name, restore_dispatch):
    if name not in kernels.available_backends():
        pytest.skip(f"the {name!r} kernel backend is unavailable: {kernels._failed.get(name)}")
    kernels.set_backend(name)
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == name
    logits = np.linspace(-3, 3, 12).reshape(3, 4)
    x = (logits > 0).astype(np.float64)
    sums = np.empty(3)
    kernels._loaded[name].bernoulli_log_prob(logits, x, False, np.empty((0, 0)), sums)
    np.testing.assert_array_equal(kernels.bernoulli_log_prob(logits, x), sums)


def make_unavailable(*names: str) -> None:
    """Point the named backends at a module that does not exist (restore_dispatch undoes it)."""
    kernels.available_backends()  # settle the real backends first: their warnings are not ours
    for name in names:
        kernels._MODULES[name] = "minivae.kernels.no_such_module"
        kernels._loaded.pop(name, None)
        kernels._failed.pop(name, None)
    kernels._active.clear()


def test_missing_backend_falls_back_with_one_warning(restore_dispatch):
    make_unavailable("c")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernels.set_backend("auto")
        for _ in range(3):
            for kernel in kernels.KERNELS:
                small_call(kernel)
        kernels.available_backends()
        kernels.set_backend("auto")
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "'c'" in messages[0] and "no_such_module" in messages[0]

    available = kernels.available_backends()
    assert "c" not in available
    fallback = "numba" if "numba" in available else "python"
    for kernel in kernels.KERNELS:
        assert kernels.backend_of(kernel) == fallback
    with pytest.raises(ValueError, match="'c'.*unavailable.*no_such_module"):
        kernels.set_backend("c")


# -- which call sites run a kernel: enabled() and composed() -----------------------------------


def test_an_explicit_backend_enables_every_family_and_composed_none(backend):
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)
    with kernels.composed():
        assert not any(kernels.enabled(family) for family in kernels.FAMILIES)
        with kernels.composed():
            assert not kernels.enabled("adam_step")
        assert not kernels.enabled("adam_step")  # the inner block restored the outer state
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)
    with pytest.raises(RuntimeError), kernels.composed():
        raise RuntimeError("left by an exception")
    assert kernels.enabled("bias_act")
    with pytest.raises(ValueError, match="family must be one of"):
        kernels.enabled("bias_act_forward")


def test_auto_enables_only_the_families_its_backend_runs_faster(restore_dispatch):
    kernels.set_backend("auto")
    active = kernels.active_backend()
    for family in kernels.FAMILIES:
        assert kernels.enabled(family) == (family in kernels.AUTO_FUSED[active]), family
    assert kernels.AUTO_FUSED["c"] == frozenset(kernels.FAMILIES)
    assert kernels.AUTO_FUSED["python"] == frozenset()
    # numba's scalar libm loses to NumPy's SIMD tanh and exp: those call sites stay composed
    assert {"bias_act", "logsumexp_rows"}.isdisjoint(kernels.AUTO_FUSED["numba"])
    assert {"adam_step", "sgd_step"} <= kernels.AUTO_FUSED["numba"]


@pytest.mark.parametrize("missing", [("c",), ("c", "numba")])
def test_auto_falls_back_to_numba_then_to_the_compositions(missing, restore_dispatch):
    make_unavailable(*missing)
    with pytest.warns(RuntimeWarning, match="unavailable"):
        kernels.set_backend("auto")
    active = kernels.active_backend()
    assert active == ("python" if "numba" in missing or "numba" in kernels._failed else "numba")
    assert {f for f in kernels.FAMILIES if kernels.enabled(f)} == kernels.AUTO_FUSED[active]
    kernels.set_backend("python")  # named explicitly: every family runs its kernel
    assert all(kernels.enabled(family) for family in kernels.FAMILIES)


# -- the same model on every backend -----------------------------------------------------------


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-4)])
def test_training_gives_the_same_model_on_every_backend(dtype, rtol):
    """Same seed, different kernels or none: the parameters after a few Adam steps agree to
    rounding."""
    from minivae.models import VAE
    from minivae.optim import Adam

    data = (np.random.default_rng(0).random((64, 30)) < 0.3).astype(dtype)

    def trained() -> np.ndarray:
        rng = np.random.default_rng(1)
        model = VAE(30, hidden=(16,), z_dim=4, activation="softplus", rng=rng, dtype=dtype)
        optimizer = Adam(model.parameters(), lr=1e-2)
        for _ in range(10):
            loss = -model.elbo(data, rng).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return model.flat_data.copy()

    results = {}
    for backend in kernels.available_backends():
        kernels.set_backend(backend)
        try:
            results[backend] = trained()
        finally:
            kernels.set_backend("auto")
    with kernels.composed():  # the readable compositions at the call sites, no kernel at all
        results["composed"] = trained()
    reference = results.pop("python")
    for backend, params in results.items():
        # float32 rounding differences grow through 10 Adam steps; the scale is the step size
        np.testing.assert_allclose(params, reference, rtol=rtol, atol=rtol * 1e-2,
                                   err_msg=backend)

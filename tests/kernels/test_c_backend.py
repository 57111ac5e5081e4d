"""The C kernel backend: it builds from csrc/, a failed build only warns, an old build is
refused, and the compiled loops keep NaN and write where they should.

The numerical agreement of every kernel with a NumPy oracle, and the argument contract that
``minivae.kernels`` checks before any C code runs, are tested in the rest of tests/kernels/.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minivae.kernels
from minivae import kernels
from minivae.kernels import KERNELS, c_backend
from tests.helpers import ROOT


def _compiler_missing() -> bool:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(compiler.split()[0]) is None


needs_compiler = pytest.mark.skipif(_compiler_missing(), reason="no C compiler on this machine")
needs_cffi = pytest.mark.skipif(importlib.util.find_spec("cffi") is None,
                                reason="cffi is not installed")
needs_setuptools = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                      reason="setuptools is not installed")


@pytest.fixture
def built():
    """Run the test's kernels on the C backend; skip unless the extension is built."""
    try:
        c_backend.check_available()
    except ImportError as error:
        pytest.skip(str(error))
    kernels.set_backend("c")
    yield
    kernels.set_backend("auto")


# -- building ---------------------------------------------------------------------------------

BUILD_AND_CALL = """
import importlib.util, json, sys
import numpy as np
from minivae.kernels import _build_c
path = _build_c.make_ffibuilder(source_root=_build_c.REPO_ROOT).compile(tmpdir=sys.argv[1])
spec = importlib.util.spec_from_file_location(_build_c.MODULE_NAME, path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
ffi, lib = module.ffi, module.lib
a = np.zeros((1, 2))
out = np.empty(1)
lib.logsumexp_rows_f64(ffi.from_buffer("double[]", a), 1, 2, ffi.from_buffer("double[]", out))
logits = np.zeros((2, 3), np.float32)
sums = np.empty(2, np.float32)
lib.bernoulli_log_prob_f32(ffi.from_buffer("float[]", logits), ffi.from_buffer("float[]", logits),
                           2, 3, 2, ffi.from_buffer("float[]", sums), ffi.NULL)
print(json.dumps({"names": dir(lib), "logsumexp": out.tolist(), "bernoulli": sums.tolist()}))
"""


@needs_compiler
@needs_cffi
def test_extension_builds_from_the_sources(tmp_path):
    result = subprocess.run([sys.executable, "-c", BUILD_AND_CALL, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for kernel in KERNELS:
        assert {kernel + "_f32", kernel + "_f64"} <= set(report["names"])
    # log(e⁰ + e⁰) = log 2; with l = 0 every element gives x·0 − log 2
    assert report["logsumexp"] == pytest.approx([np.log(2)], rel=1e-15)
    assert report["bernoulli"] == pytest.approx([-3 * np.log(2)] * 2, rel=1e-6)


@needs_cffi
@needs_setuptools
def test_failed_build_warns_and_does_not_fail_the_install(tmp_path):
    environment = {**os.environ, "CC": str(tmp_path / "no-such-compiler")}
    command = [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
               "--build-temp", str(tmp_path / "temp")]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "C kernels were not built" in result.stderr
    assert "trying without it" in result.stderr  # the second try, without -march=native
    assert not list((tmp_path / "lib").rglob("_ckernels*"))


def test_missing_extension_is_an_import_error(monkeypatch):
    monkeypatch.setattr(c_backend, "_extension", None)
    monkeypatch.setitem(sys.modules, "minivae.kernels._ckernels", None)  # import now fails
    monkeypatch.delattr(minivae.kernels, "_ckernels", raising=False)
    with pytest.raises(ImportError, match="not built"):
        c_backend.check_available()


def test_extension_missing_a_kernel_is_an_import_error(monkeypatch):
    stale = types.SimpleNamespace(lib=types.SimpleNamespace(logsumexp_rows_f32=None), ffi=None)
    monkeypatch.setattr(c_backend, "_extension", stale)
    with pytest.raises(ImportError, match="out of date.*bernoulli_log_prob_f32"):
        c_backend.check_available()


# -- behaviour that depends on the compiled code ----------------------------------------------


def _adam(param, grad, m, v):
    kernels.adam_step(param, grad, m, v, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=1)


def test_in_place_kernels_write_into_the_callers_arrays(built):
    param, m, v = (np.zeros(5, np.float32) for _ in range(3))
    grad = np.ones(5, np.float32)
    _adam(param, grad, m, v)
    # first step with g = 1: m = 0.1, v = 0.01; the bias-corrected step is -lr · 1/(1 + ε)
    np.testing.assert_allclose(m, 0.1, rtol=1e-6)
    np.testing.assert_allclose(v, 0.01, rtol=1e-6)
    np.testing.assert_allclose(param, -0.1, rtol=1e-6)
    buf = np.zeros(5, np.float32)
    kernels.sgd_step(param, grad, buf, lr=0.5, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(buf, 1.0)
    np.testing.assert_allclose(param, -0.6, rtol=1e-6)


def test_bias_act_forward_can_overwrite_its_input(built):
    h = np.array([[-1.0, 2.0], [3.0, -4.0]])
    result = kernels.bias_act_forward(h, np.array([0.5, 0.5]), "relu", out=h)
    assert result is h
    np.testing.assert_array_equal(h, [[0.0, 2.5], [3.5, 0.0]])


def test_strided_inputs_and_outputs_are_handled(built, rng):
    logits = rng.normal(size=(4, 10))
    x = (rng.random((4, 10)) < 0.5).astype(float)
    grad_strided = np.zeros((4, 20))[:, ::2]
    sums = kernels.bernoulli_log_prob(logits[:, ::-1], x[:, ::-1], grad_logits=grad_strided)
    grad_contiguous = np.zeros((4, 10))
    expected = kernels.bernoulli_log_prob(logits[:, ::-1].copy(), x[:, ::-1].copy(),
                                            grad_logits=grad_contiguous)
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(grad_strided, grad_contiguous)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(length=st.integers(1, 100), nan_at=st.integers(0, 99),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_nan_and_extreme_logits_survive_the_vectorized_loops(built, length, nan_at, dtype):
    """The build avoids -ffast-math: a NaN in any vector lane or in the loop's remainder must
    reach its row's result, and ±1e4 logits must stay finite."""
    logits = np.resize(np.array([1e4, -1e4, 0.5, -3.0], dtype), (2, length))
    x = np.resize(np.array([1.0, 0.0, 1.0, 1.0], dtype), (2, length))
    logits[1, nan_at % length] = np.nan
    grad = np.empty_like(logits)
    sums = kernels.bernoulli_log_prob(logits, x, grad_logits=grad)
    assert np.isfinite(sums[0]) and np.isnan(sums[1])
    assert np.isfinite(grad[0]).all()
    assert np.isnan(grad[1]).sum() == 1
    l64, x64 = logits[0].astype(np.float64), x[0].astype(np.float64)
    np.testing.assert_allclose(sums[0], (x64 * l64 - np.logaddexp(0, l64)).sum(), rtol=1e-5)
    rows = kernels.logsumexp_rows(logits)
    assert np.isfinite(rows[0]) and np.isnan(rows[1])

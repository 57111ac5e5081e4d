"""The C kernel backend: it builds from csrc/, a failed build only warns, and its wrappers
reject what the C code cannot take.

The numerical agreement of every kernel with reference.py is tested in tests/test_kernels.py.
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
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minivae.kernels
from minivae.kernels import KERNELS, c_backend, reference

ROOT = Path(__file__).resolve().parents[1]


def _compiler_missing() -> bool:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(compiler.split()[0]) is None


needs_compiler = pytest.mark.skipif(_compiler_missing(), reason="no C compiler on this machine")
needs_cffi = pytest.mark.skipif(importlib.util.find_spec("cffi") is None,
                                reason="cffi is not installed")
needs_setuptools = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                      reason="setuptools is not installed")


@pytest.fixture(scope="module")
def built() -> None:
    """Skip unless the installed tree has the compiled extension."""
    try:
        c_backend.check_available()
    except ImportError as error:
        pytest.skip(str(error))


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
                           2, 3, ffi.from_buffer("float[]", sums), ffi.NULL)
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


# -- argument checks --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex128, bool])
def test_dtypes_other_than_float32_and_float64_are_rejected(dtype):
    values = np.zeros((2, 3), dtype)
    with pytest.raises(TypeError, match="logits must be a float32 or float64 array"):
        c_backend.bernoulli_log_prob(values, values)
    with pytest.raises(TypeError, match="a must be a float32 or float64 array"):
        c_backend.logsumexp_rows(values)


def test_mixed_dtypes_are_rejected_not_promoted():
    single, double = np.zeros((2, 3), np.float32), np.zeros((2, 3))
    with pytest.raises(TypeError, match="x must have the dtype of logits"):
        c_backend.bernoulli_log_prob(single, double)
    with pytest.raises(TypeError, match="bias must have the dtype of h"):
        c_backend.bias_act_forward(single, np.zeros(3), "relu")
    with pytest.raises(TypeError, match="grad_logits must have dtype float32"):
        c_backend.bernoulli_log_prob(single, single, grad_logits=double)
    with pytest.raises(TypeError, match="grad_kl must have the dtype of loc"):
        c_backend.reparameterize_kl_backward(single, single, single, None, np.zeros(2))
    flat32, flat64 = np.zeros(4, np.float32), np.zeros(4)
    with pytest.raises(TypeError, match="v must have the dtype of param"):
        c_backend.adam_step(flat32, flat32.copy(), flat32.copy(), flat64, 0.1, 0.9, 0.99, 1e-8, 1)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="x must have shape"):
        c_backend.bernoulli_log_prob(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        c_backend.bernoulli_log_prob(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="bias must have shape"):
        c_backend.bias_act_forward(np.zeros((2, 3)), np.zeros((1, 3)), "tanh")
    with pytest.raises(ValueError, match="a's columns must match b's rows"):
        c_backend.matmul_naive(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="block must be a positive integer"):
        c_backend.matmul_blocked(np.zeros((2, 2)), np.zeros((2, 2)), block=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        c_backend.bias_act_backward(np.zeros((2, 3)), np.zeros((2, 3)), "gelu")


def _adam(param, grad, m, v):
    c_backend.adam_step(param, grad, m, v, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, step=1)


@pytest.mark.parametrize("bad_buffer", ["2-D", "strided", "read-only", "wrong size", "list"])
def test_optimizer_buffers_must_be_flat_contiguous_and_writable(bad_buffer):
    param, grad = np.zeros(6), np.ones(6)
    bad = {"2-D": np.zeros((2, 3)), "strided": np.zeros(12)[::2], "read-only": np.zeros(6),
           "wrong size": np.zeros(5), "list": [0.0] * 6}[bad_buffer]
    if bad_buffer == "read-only":
        bad.flags.writeable = False
    error = TypeError if bad_buffer == "list" else ValueError
    with pytest.raises(error, match="m must"):
        _adam(param, grad, bad, np.zeros(6))
    with pytest.raises(error, match="buf must"):
        c_backend.sgd_step(param, grad, bad, lr=0.1, momentum=0.9, first_step=False)


def test_optimizer_buffers_must_not_overlap():
    param, grad = np.zeros(6), np.ones(6)
    with pytest.raises(ValueError, match="must not share memory"):
        _adam(param, grad, param, np.zeros(6))


# -- behaviour that depends on the compiled code ----------------------------------------------
def test_in_place_kernels_write_into_the_callers_arrays(built):
    param, m, v = (np.zeros(5, np.float32) for _ in range(3))
    grad = np.ones(5, np.float32)
    _adam(param, grad, m, v)
    # first step with g = 1: m = 0.1, v = 0.01; the bias-corrected step is -lr · 1/(1 + ε)
    np.testing.assert_allclose(m, 0.1, rtol=1e-6)
    np.testing.assert_allclose(v, 0.01, rtol=1e-6)
    np.testing.assert_allclose(param, -0.1, rtol=1e-6)
    buf = np.zeros(5, np.float32)
    c_backend.sgd_step(param, grad, buf, lr=0.5, momentum=0.9, first_step=True)
    np.testing.assert_array_equal(buf, 1.0)
    np.testing.assert_allclose(param, -0.6, rtol=1e-6)


def test_bias_act_forward_can_overwrite_its_input(built):
    h = np.array([[-1.0, 2.0], [3.0, -4.0]])
    result = c_backend.bias_act_forward(h, np.array([0.5, 0.5]), "relu", out=h)
    assert result is h
    np.testing.assert_array_equal(h, [[0.0, 2.5], [3.5, 0.0]])


def test_strided_inputs_and_outputs_are_handled(built, rng):
    logits = rng.normal(size=(4, 10))
    x = (rng.random((4, 10)) < 0.5).astype(float)
    grad_strided = np.zeros((4, 20))[:, ::2]
    sums = c_backend.bernoulli_log_prob(logits[:, ::-1], x[:, ::-1], grad_logits=grad_strided)
    grad_contiguous = np.zeros((4, 10))
    expected = c_backend.bernoulli_log_prob(logits[:, ::-1].copy(), x[:, ::-1].copy(),
                                            grad_logits=grad_contiguous)
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(grad_strided, grad_contiguous)


@given(length=st.integers(1, 100), nan_at=st.integers(0, 99),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_nan_and_extreme_logits_survive_the_vectorized_loops(length, nan_at, dtype):
    """The build avoids -ffast-math: a NaN in any vector lane or in the loop's remainder must
    reach its row's result, and ±1e4 logits must stay finite."""
    try:
        c_backend.check_available()
    except ImportError as error:
        pytest.skip(str(error))
    logits = np.resize(np.array([1e4, -1e4, 0.5, -3.0], dtype), (2, length))
    x = np.resize(np.array([1.0, 0.0, 1.0, 1.0], dtype), (2, length))
    logits[1, nan_at % length] = np.nan
    grad = np.empty_like(logits)
    sums = c_backend.bernoulli_log_prob(logits, x, grad_logits=grad)
    assert np.isfinite(sums[0]) and np.isnan(sums[1])
    assert np.isfinite(grad[0]).all()
    assert np.isnan(grad[1]).sum() == 1
    np.testing.assert_allclose(sums[0], reference.bernoulli_log_prob(logits, x)[0], rtol=1e-5)
    rows = c_backend.logsumexp_rows(logits)
    assert np.isfinite(rows[0]) and np.isnan(rows[1])

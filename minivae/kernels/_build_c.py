"""cffi (API mode) build script for ``minivae.kernels._ckernels``, the C kernel backend.

``setup.py`` builds it at install time through ``cffi_modules``, with source paths relative to
the repository root as setuptools wants them.  By hand: ``python minivae/kernels/_build_c.py``
writes the extension into build/cffi/ (with absolute paths, since cffi's ``compile`` changes
into its build directory).  The compiler flags are explained in csrc/README.md.

Verified by: tests/kernels/test_c_backend.py::test_extension_builds_from_the_sources
"""
from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

import cffi

MODULE_NAME = "minivae.kernels._ckernels"
SOURCES = ["csrc/kernels.c"]
INCLUDE_DIRS = ["csrc"]
REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = REPO_ROOT / "csrc" / "kernels.h"

# -O3 turns on the loop vectorizer.  -march=native lets it use every vector instruction of the
# machine that installs minivae (the build runs there, so the result need not be portable).
# -fno-math-errno: libm calls need not set errno, so they can be vectorized or inlined.
# -fno-trapping-math: no code relies on floating-point traps, so branches may become selects.
# -fopenmp-simd: honour `#pragma omp simd` (vectorization hints only; no threads, no libgomp).
# Not -ffast-math: it assumes no NaN or infinity, and NaN inputs must reach the outputs.
PORTABLE_COMPILE_ARGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]
NATIVE_ARG = "-march=native"
COMPILE_ARGS = [PORTABLE_COMPILE_ARGS[0], NATIVE_ARG, *PORTABLE_COMPILE_ARGS[1:]]


def glibc_has_vector_log1p() -> bool:
    """True on x86-64 Linux with glibc >= 2.35, whose libmvec has expf, log1pf, tanhf, expm1f.

    Only then is libmvec linked and ``MINIVAE_USE_LIBMVEC`` defined, so the two always agree.
    """
    if not sys.platform.startswith("linux") or platform.machine() not in ("x86_64", "AMD64"):
        return False
    libc, version = platform.libc_ver()
    match = re.match(r"(\d+)\.(\d+)", version)
    return libc == "glibc" and match is not None and tuple(map(int, match.groups())) >= (2, 35)


def cdef_source(header: Path = HEADER) -> str:
    """The prototypes of kernels.h without its preprocessor lines, which cffi does not parse."""
    lines = header.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def make_ffibuilder(native: bool = True, source_root: Path | None = None) -> cffi.FFI:
    """The FFI for ``_ckernels``.

    ``native=False`` leaves out -march=native; ``source_root`` makes the source paths absolute
    (needed by ``FFI.compile``), otherwise they are relative to the repository root.
    """
    def under_root(path: str) -> str:
        return path if source_root is None else str(Path(source_root) / path)

    builder = cffi.FFI()
    builder.cdef(cdef_source())
    use_libmvec = glibc_has_vector_log1p()
    builder.set_source(
        MODULE_NAME,
        '#include "kernels.h"',
        sources=[under_root(path) for path in SOURCES],
        include_dirs=[under_root(path) for path in INCLUDE_DIRS],
        extra_compile_args=list(COMPILE_ARGS if native else PORTABLE_COMPILE_ARGS),
        define_macros=[("MINIVAE_USE_LIBMVEC", "1")] if use_libmvec else [],
        libraries=["mvec", "m"] if use_libmvec else ["m"],
    )
    return builder


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    make_ffibuilder(source_root=REPO_ROOT).compile(tmpdir=str(REPO_ROOT / "build" / "cffi"),
                                                   verbose=True)

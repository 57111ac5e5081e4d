"""The package's own namespace: subpackages reachable after ``import minivae``, loaded only
when first used, so the import stays as light as the engine."""
from __future__ import annotations

import subprocess
import sys

import pytest

import minivae


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout


def test_import_loads_no_subpackage_until_used():
    code = ("import sys, minivae; heavy = ('minivae.models', 'minivae.cavi', 'minivae.train', "
            "'minivae.objectives', 'minivae.divergences', 'matplotlib', 'scipy', 'numba', "
            "'threadpoolctl'); print(sorted(m for m in heavy if m in sys.modules)); "
            "minivae.models.VAE; print('minivae.models' in sys.modules)")
    loaded, models_after_use = run_python(code).splitlines()
    assert loaded == "[]"
    assert models_after_use == "True"


def test_every_subpackage_is_reachable_by_attribute():
    for name in minivae.SUBMODULES:
        module = getattr(minivae, name)
        assert module.__name__ == f"minivae.{name}"
        assert name in dir(minivae)
    for name in ("models.VAE", "cavi.BayesianGaussianMixture", "objectives.elbo", "optim.Adam",
                 "nn.MLP", "data.minibatches", "distributions.Normal", "kernels.adam_step",
                 "divergences.r2_bound"):
        package, attribute = name.split(".")
        assert callable(getattr(getattr(minivae, package), attribute))


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="modles"):
        getattr(minivae, "modles")  # noqa: B009  (the attribute access is the test)

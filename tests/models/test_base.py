"""Bernoulli decoders take binary pixels; grey levels only when asked for (soft_targets=True)."""
from __future__ import annotations

import numpy as np
import pytest

from minivae.cli import parse_options
from minivae.engine.tensor import Tensor, no_grad
from minivae.models.registry import MODELS
from tests.helpers import binary_data, grey_data
from tests.models.helpers import REAL_VALUED, build

BERNOULLI = sorted(name for name in MODELS if name not in REAL_VALUED)


@pytest.mark.parametrize("name", BERNOULLI)
def test_bernoulli_models_reject_grey_levels_by_default(name):
    model, x = build(name), grey_data(4)
    x[0, 0], x[1, 1] = 0.0, 1.0
    low, high = x.min(), x.max()
    for call in (lambda: model.objective(x, np.random.default_rng(0)),
                 lambda: model.elbo(x, np.random.default_rng(0)),
                 lambda: model.reconstruct(x)):
        with pytest.raises(ValueError) as error:
            call()
        message = str(error.value)
        assert "x must hold binary pixels 0/1 for a Bernoulli decoder" in message
        assert "soft_targets=True" in message and f"[{low}, {high}]" in message
    assert model.binary_data  # the command line binarizes its images


@pytest.mark.parametrize("name", BERNOULLI)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_soft_targets_accept_grey_levels_and_train_on_them(name, dtype):
    model, x = build(name, dtype, soft_targets=True), grey_data(4, dtype=dtype)
    value = model.objective(x, np.random.default_rng(0))
    assert value.shape == (4,) and value.dtype == dtype and np.all(np.isfinite(value.data))
    model.zero_grad()
    (-value.sum()).backward()
    assert np.all(np.isfinite(model.flat_grad)) and np.any(model.flat_grad != 0)
    assert not model.binary_data  # the command line then trains on the grey levels
    # binary pixels are grey levels too
    x = binary_data(4, dtype=dtype, p=0.5)
    assert np.all(np.isfinite(model.objective(x, np.random.default_rng(0)).data))


def test_soft_target_likelihood_is_minus_the_binary_cross_entropy():
    model, x = build("vae", soft_targets=True), grey_data(4)
    z = np.random.default_rng(2).standard_normal((3, 4, 2))
    with no_grad():
        logits = model.decoder(Tensor(z.reshape(-1, 2))).data.reshape(3, 4, 6)
        value = model.log_likelihood(x, z).data
    p = 1.0 / (1.0 + np.exp(-logits))
    cross_entropy = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(-1)
    np.testing.assert_allclose(value, -cross_entropy, rtol=1e-10)


@pytest.mark.parametrize("name", BERNOULLI)
def test_soft_targets_still_reject_values_outside_the_unit_interval(name):
    model = build(name, soft_targets=True)
    for bad in (1.5, -0.25):
        x = grey_data(4)
        x[2, 3] = bad
        with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\].*soft_targets=True"):
            model.objective(x, np.random.default_rng(0))


# a Gaussian decoder takes grey levels without the option, so it has no soft_targets variant
@pytest.mark.parametrize("name, soft", [(name, soft) for name in sorted(MODELS)
                                        for soft in (False, True)
                                        if not (name in REAL_VALUED and soft)])
def test_nan_or_infinite_pixels_are_named_with_their_index(name, soft):
    model = build(name, **({"soft_targets": True} if soft else {}))
    for bad in (np.nan, np.inf, -np.inf):
        x = binary_data(4, p=0.5)
        x[1, 4] = bad
        with pytest.raises(ValueError, match=r"x must be finite, got .* at index \(1, 4\)"):
            model.objective(x, np.random.default_rng(0))


@pytest.mark.parametrize("name", REAL_VALUED)
def test_gaussian_decoders_take_grey_levels_and_any_finite_value(name):
    model = build(name)
    assert not model.binary_data and model.x_support == "real"
    for x in (grey_data(4), 3.0 * grey_data(4) - 1.0):
        assert np.all(np.isfinite(model.objective(x, np.random.default_rng(0)).data))


@pytest.mark.parametrize("name", BERNOULLI)
def test_soft_targets_must_be_a_bool(name):
    for bad in ("true", 1, None):
        with pytest.raises(TypeError, match="soft_targets must be a bool"):
            build(name, soft_targets=bad)


def test_the_option_parses_from_the_command_line():
    options = parse_options(["soft_targets=true"])
    assert options == {"soft_targets": True}
    for spelling, value in (("True", True), ("FALSE", False), (" false", False)):
        assert parse_options([f"soft_targets={spelling}"]) == {"soft_targets": value}
    assert parse_options(["name=Trueish"]) == {"name": "Trueish"}
    model = build("vae", **options)
    assert model.soft_targets and model.x_support == "unit_interval"


def test_empty_batch_and_wrong_shapes_are_rejected():
    model = build("vae")
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6\) with batch ≥ 1"):
        model.objective(np.zeros((0, 6)), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"got \(4, 5\)"):
        model.objective(np.zeros((4, 5)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="dtype float64"):
        model.objective(np.zeros((4, 6), np.float32), np.random.default_rng(0))

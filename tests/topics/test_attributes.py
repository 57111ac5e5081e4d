"""Attribute vectors: mean-code differences, adding them to codes, and the grouping helpers."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minivae.distributions import Independent, Normal
from minivae.models import VAE
from minivae.topics.attributes import (
    apply_attribute,
    attribute_vector,
    encoder_means,
    ink_groups,
    ink_mass,
    label_groups,
)
from tests.fuzzing import BINARY, anything, arrays, batches, check_contract, floats
from tests.helpers import assert_pictures, demo, mnist_5k, run_demo, train_with_adam


class LinearGaussianCoder:
    """encode(x) = N(x A, I) (no ``loc`` attribute on the Independent: read through ``mean``),
    decode(z) = N(z W, I): every quantity of this module has a closed form for it."""

    def __init__(self, x_dim=5, z_dim=3, seed=0):
        rng = np.random.default_rng(seed)
        self.a, self.w = rng.standard_normal((x_dim, z_dim)), rng.standard_normal((z_dim, x_dim))

    def encode(self, x):
        loc = x @ self.a
        return Independent(Normal(loc, np.ones_like(loc)), 1)

    def decode(self, z):
        loc = z.data @ self.w
        return Independent(Normal(loc, np.ones_like(loc)), 1)


group_pairs = st.tuples(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**31 - 1)).map(
    lambda a: (np.random.default_rng(a[2]).random((a[0], 5)),
               np.random.default_rng(a[2] + 1).random((a[1], 5))))


@given(group_pairs)
@settings(max_examples=30)
def test_vector_is_the_difference_of_mean_codes(groups):
    x_a, x_b = groups
    coder = LinearGaussianCoder()
    expected = (x_b.mean(0) - x_a.mean(0)) @ coder.a  # the mean commutes with a linear encoder
    np.testing.assert_allclose(attribute_vector(coder, x_a, x_b), expected, rtol=1e-10,
                               atol=1e-12)


def test_apply_attribute_decodes_the_moved_codes():
    coder = LinearGaussianCoder()
    rng = np.random.default_rng(1)
    x, vector, scales = rng.random((4, 5)), rng.standard_normal(3), [-1.0, 0.0, 0.5, 2.0]
    decoded = apply_attribute(coder, x, vector, scales)
    assert decoded.shape == (4, 4, 5)
    for s, images in zip(scales, decoded):
        np.testing.assert_allclose(images, (x @ coder.a + s * vector) @ coder.w, rtol=1e-12)


@given(group_pairs)
@settings(max_examples=20)
def test_vector_between_identical_groups_is_zero(groups):
    x_a, _ = groups
    assert np.all(attribute_vector(LinearGaussianCoder(), x_a, x_a.copy()) == 0.0)


@pytest.fixture(scope="module")
def trained_vae():
    """A small VAE trained for 200 steps on 4,000 real digits, and 4,500 digits binarized once
    (a Bernoulli VAE takes 0/1 pixels only)."""
    from minivae.data import binarize_dynamic

    pixels = mnist_5k().pixels(np.float32)
    rng = np.random.default_rng(0)
    vae = VAE(784, hidden=(64,), z_dim=8, rng=rng)
    train_with_adam(vae, pixels[:4000], 200, 64, rng, lr=2e-3, objective=lambda x: vae.elbo(x, rng))
    return vae, binarize_dynamic(pixels, np.random.default_rng(12345))


def test_thick_minus_thin_vector_adds_ink(trained_vae):
    vae, pixels = trained_vae
    vector = attribute_vector(vae, *ink_groups(pixels[:4000], 0.2))
    held_out = pixels[4000:4200]
    scales = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    decoded = apply_attribute(vae, held_out, vector, scales)  # (S, B, 784)
    assert decoded.shape == (7, 200, 784) and decoded.dtype == np.float32
    mean_ink = decoded.sum(-1, dtype=np.float64).mean(-1)  # average over the images, per scale
    assert np.all(np.diff(mean_ink) > 0), mean_ink
    thin, thick = ink_groups(pixels[:4000], 0.2)
    # s = 1 moves a typical thin code to a typical thick one: a clear share of the groups'
    # difference in ink must appear (the decoder blurs, so not all of it)
    gap = ink_mass(thick).mean() - ink_mass(thin).mean()
    assert mean_ink[4] - mean_ink[2] > 0.25 * gap, (mean_ink, gap)


def test_scale_zero_is_the_reconstruction(trained_vae):
    vae, pixels = trained_vae
    x = pixels[4200:4210]
    decoded = apply_attribute(vae, x, np.ones(8, np.float32), [0.0])
    np.testing.assert_allclose(decoded[0], vae.reconstruct(x), rtol=1e-6, atol=1e-7)


def test_codes_are_encoder_means_in_batches(trained_vae, monkeypatch):
    vae, pixels = trained_vae
    import minivae.topics.attributes as attributes

    x = pixels[:25]
    monkeypatch.setattr(attributes, "ROWS_PER_BATCH", 7)
    codes = encoder_means(vae, x)
    assert codes.shape == (25, 8) and codes.dtype == np.float32
    np.testing.assert_allclose(codes, vae.encode(x).loc.data, rtol=1e-5, atol=1e-5)


def test_ink_groups_are_the_extremes_of_ink_mass():
    x = np.random.default_rng(0).random((50, 9))
    thin, thick = ink_groups(x, 0.2)
    assert thin.shape == thick.shape == (10, 9)
    ink = np.sort(x.sum(1))
    np.testing.assert_allclose(np.sort(thin.sum(1)), ink[:10])
    np.testing.assert_allclose(np.sort(thick.sum(1)), ink[-10:])
    assert thin.sum(1).max() < thick.sum(1).min()


def test_label_groups_select_by_label():
    x = np.arange(12.0).reshape(6, 2)
    labels = np.array([3, 1, 3, 0, 1, 3])
    group_a, group_b = label_groups(x, labels, 3, 1)
    np.testing.assert_array_equal(group_a, x[[0, 2, 5]])
    np.testing.assert_array_equal(group_b, x[[1, 4]])


def test_bad_input_is_rejected():
    coder, x = LinearGaussianCoder(), np.random.default_rng(0).random((6, 5))
    for bad_fraction in (0.0, 0.6, -0.1, "0.2", True):
        with pytest.raises(ValueError, match="fraction"):
            ink_groups(x, bad_fraction)
    with pytest.raises(ValueError, match="empty group"):
        ink_groups(x, 0.1)
    with pytest.raises(TypeError, match="x must be a numpy array"):
        ink_groups([[1.0]])
    with pytest.raises(ValueError, match=r"x must have shape \(N, x_dim\)"):
        ink_groups(np.zeros(5))
    with pytest.raises(ValueError, match="labels must have shape"):
        label_groups(x, np.zeros(5), 0, 1)
    with pytest.raises(ValueError, match="different labels"):
        label_groups(x, np.zeros(6), 0, 0)
    with pytest.raises(ValueError, match="label b = 7"):
        label_groups(x, np.zeros(6), 0, 7)
    with pytest.raises(ValueError, match="vector must have shape"):
        apply_attribute(coder, x, np.zeros(4), [1.0])
    with pytest.raises(ValueError, match="vector must be finite"):
        apply_attribute(coder, x, np.array([0.0, np.nan, 0.0]), [1.0])
    for bad_scales in ([], [[1.0]], [np.inf]):
        with pytest.raises(ValueError, match="scales"):
            apply_attribute(coder, x, np.zeros(3), bad_scales)
    with pytest.raises(ValueError, match="x must have shape"):
        attribute_vector(coder, np.zeros((0, 5)), x)


def test_demo_runs_with_tiny_settings(tmp_path):
    result = run_demo("attribute_vectors", tmp_path, "--epochs", "1", "--max-train", "500",
                      "--hidden", "16", "--z-dim", "4", "--rows", "3", "--quiet")
    assert len(result["scales"]) == len(result["thin_to_thick_ink"])
    assert_pictures(tmp_path, "thickness.png", "digits.png")


def test_demo_loads_a_checkpoint(tmp_path, trained_vae):
    from minivae.io.checkpoint import save_checkpoint

    attribute_vectors = demo("attribute_vectors")

    vae, _ = trained_vae
    save_checkpoint(tmp_path / "checkpoint.npz", vae.state_dict(),
                    {"config": {"dataset": "mnist-5k", "hidden": [64], "z_dim": 8,
                                "activation": "tanh", "dtype": "float32"}})
    args = attribute_vectors.parse_args(["--out", str(tmp_path / "out"), "--checkpoint",
                                         str(tmp_path / "checkpoint.npz"), "--rows", "2",
                                         "--quiet"])
    result = attribute_vectors.main(args)
    assert np.all(np.diff(result["thin_to_thick_ink"]) > 0)


# -- the fuzz contract -------------------------------------------------------------------------

FUZZED_VAE = VAE(4, hidden=(3,), z_dim=2, rng=np.random.default_rng(0), dtype=np.float64)


@settings(max_examples=50, deadline=None)
@given(x=batches(), vector=st.one_of(arrays(np.float64, shape=(2,)), arrays(), anything()),
       scales=st.one_of(st.lists(floats(), max_size=3), anything()))
def test_attribute_vectors(x, vector, scales):
    check_contract("encoder_means", encoder_means, FUZZED_VAE, x)
    check_contract("attribute_vector", attribute_vector, FUZZED_VAE, x, BINARY)
    check_contract("apply_attribute", apply_attribute, FUZZED_VAE, x, vector, scales)

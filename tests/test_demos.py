"""The sampler demo runs and writes the pictures it promises; the training demos check their
training subset."""
from __future__ import annotations

import pytest
from matplotlib.image import imread

from tests.helpers import demo, run_demo


def test_samplers_demo_writes_three_pictures(tmp_path):
    samplers = demo("samplers")
    paths = samplers.main(samplers.parse_args(["--out", str(tmp_path), "--n", "500"]))
    assert sorted(p.name for p in paths) == ["exponential.png", "gaussian.png",
                                             "gumbel_softmax.png"]
    for path in paths:
        image = imread(path)
        assert image.ndim == 3 and min(image.shape[:2]) >= 400
        assert image[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically, no temporary files left


def test_samplers_demo_rejects_too_few_draws(tmp_path):
    samplers = demo("samplers")
    with pytest.raises(ValueError, match="--n must be at least 100"):
        samplers.main(samplers.parse_args(["--out", str(tmp_path), "--n", "5"]))


@pytest.mark.parametrize("name, max_train", [
    ("gumbel_vae", "0"), ("vqvae", "-10"), ("attribute_vectors", "0"), ("vade_clustering", "-10"),
    ("full_covariance", "0"),
])
def test_demos_refuse_a_training_subset_that_is_not_a_count(tmp_path, name, max_train):
    """x[:0] is every image and x[:-10] all but ten: neither is what --max-train asks for."""
    with pytest.raises(ValueError, match="--max-train must be a positive integer"):
        run_demo(name, tmp_path, "--dataset", "mnist-5k", "--max-train", max_train)

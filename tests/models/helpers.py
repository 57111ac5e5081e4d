"""Every registered model, built small."""
from __future__ import annotations

import numpy as np

from minivae.models.registry import model_class

SMALL = {"categorical": {"n_classes": 3}, "vqvae": {"codebook_size": 4, "code_dim": 2},
         "vade": {"n_clusters": 3}, "gaussian_vade": {"n_clusters": 3}}
# models of real-valued x (a Gaussian decoder): no soft_targets, any finite value accepted
REAL_VALUED = ("gaussian_decoder", "gaussian_vade")


def build(name: str, dtype=np.float64, **options):
    """The model registered as ``name``: x_dim 6, one hidden layer of 5, z_dim 2."""
    return model_class(name)(6, hidden=(5,), z_dim=2, rng=np.random.default_rng(0),
                             dtype=dtype, **{**SMALL.get(name, {}), **options})

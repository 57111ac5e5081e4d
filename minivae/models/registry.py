"""Models by name, for the command line: ``python -m minivae train --model NAME``.

Every registered class follows one protocol: ``Cls(x_dim, hidden, z_dim, activation, rng,
dtype, leaky_slope, **options)``, a per-example ``objective(x, rng)`` that training maximizes,
``reconstruct(x)`` and ``sample(n, rng)`` in pixel space, and optionally ``elbo(x, rng)`` (the
number reported as the test ELBO when the objective is not itself an ELBO),
``on_epoch_end(epoch)`` and ``binary_data = False`` (trained on grey levels, not binarized).
"""
from __future__ import annotations

import importlib

# name → (module, class); imported on demand so that ``--model vae`` loads nothing else
MODELS = {
    "vae": ("minivae.models.vae", "VAE"),
    "full_covariance": ("minivae.models.full_covariance", "FullCovarianceVAE"),
    "gaussian_decoder": ("minivae.models.gaussian_decoder", "GaussianDecoderVAE"),
    "categorical": ("minivae.models.categorical_vae", "CategoricalVAE"),
    "vqvae": ("minivae.models.vqvae", "VQVAE"),
    "vade": ("minivae.models.vade", "VaDE"),
    "gaussian_vade": ("minivae.models.gaussian_vade", "GaussianVaDE"),
    "m2": ("minivae.models.semi_supervised", "SemiSupervisedVAE"),
}


def model_class(name: str) -> type:
    """The class registered under ``name`` (ValueError listing the names otherwise)."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(sorted(MODELS))}, got {name!r}")
    module, cls = MODELS[name]
    return getattr(importlib.import_module(module), cls)


def default_activation(name: str) -> str:
    """The hidden activation a model uses when none is asked for (its constructor's default)."""
    import inspect

    return inspect.signature(model_class(name)).parameters["activation"].default

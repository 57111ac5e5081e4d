"""Generative models trained by maximizing an evidence lower bound.

The VAE, the linear-Gaussian model and the semi-supervised M2 model (with its Gaussian-decoder
variant, the upper half of M1+M2) are imported here; the
other models (full-covariance posterior, Gaussian decoder, categorical latents, VQ-VAE, VaDE)
live in their own modules and are listed by name in ``registry.py`` for the command line.
"""
from minivae.models.linear_gaussian import LinearGaussian
from minivae.models.semi_supervised import SemiSupervisedVAE
from minivae.models.semi_supervised_gaussian import GaussianSemiSupervisedVAE
from minivae.models.vae import VAE

__all__ = ["VAE", "LinearGaussian", "SemiSupervisedVAE", "GaussianSemiSupervisedVAE"]

"""Generative models trained by maximizing an evidence lower bound."""
from minivae.models.linear_gaussian import LinearGaussian
from minivae.models.vae import VAE

__all__ = ["VAE", "LinearGaussian"]

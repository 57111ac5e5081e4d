"""Side topics of the course notes: clustering in latent space, attribute vectors, and the
masks of autoregressive (PixelCNN) convolutions."""

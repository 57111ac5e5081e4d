"""Coordinate-ascent variational inference (see the submodules)."""

"""E2NAS: differentiable NAS in an equivalent (VGAE latent) space with exploration enhancement."""

__version__ = "0.1.0"

"""Stage 2: a variational graph autoencoder that maps cells injectively into a continuous latent space."""

from e2nas.vgae.metrics import (
    PCAProjection,
    evaluate_vgae,
    exact_match,
    latent_projection,
    prior_metrics,
    reconstruction_accuracy,
    smoothness,
    space_validity,
    unique_means,
)
from e2nas.vgae.model import MASK_VALUE, GraphVAE, VGAEConfig, load_vgae, save_vgae
from e2nas.vgae.train import heldout_split, run_pretraining, train_vgae

__all__ = [
    "MASK_VALUE",
    "GraphVAE",
    "PCAProjection",
    "VGAEConfig",
    "evaluate_vgae",
    "exact_match",
    "heldout_split",
    "latent_projection",
    "load_vgae",
    "prior_metrics",
    "reconstruction_accuracy",
    "run_pretraining",
    "save_vgae",
    "smoothness",
    "space_validity",
    "train_vgae",
    "unique_means",
]

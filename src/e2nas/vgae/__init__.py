"""Stage 2: a variational graph autoencoder that maps cells injectively into a continuous latent space."""

from e2nas.vgae.metrics import (
    evaluate_vgae,
    exact_match,
    prior_metrics,
    reconstruction_accuracy,
    smoothness,
    unique_means,
)
from e2nas.vgae.model import MASK_VALUE, GraphVAE, VGAEConfig, encode_stage_graphs, load_vgae, save_vgae
from e2nas.vgae.train import heldout_split, run_pretraining, train_vgae

__all__ = [
    "MASK_VALUE",
    "GraphVAE",
    "VGAEConfig",
    "encode_stage_graphs",
    "evaluate_vgae",
    "exact_match",
    "heldout_split",
    "load_vgae",
    "prior_metrics",
    "reconstruction_accuracy",
    "run_pretraining",
    "save_vgae",
    "smoothness",
    "train_vgae",
    "unique_means",
]

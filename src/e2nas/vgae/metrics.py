"""Stage-2 metrics: is the latent space an injective, decodable, smooth image of the cell space?

All rates are fractions in [0, 1] (the issue's bars are stated as 1.0); counts are ints.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import spearmanr
from torch import Tensor

from e2nas import spaces

UNIQUE_TOL = 1e-3  # L2 distance below which two means count as the same point


def exact_match(pred: Tensor, target: Tensor) -> Tensor:
    """(B,) bool: cell i decoded exactly (every position right)."""
    return (pred == target).all(dim=-1)


def reconstruction_accuracy(model, mu: Tensor, archs: Tensor) -> float:
    """Fraction of cells whose argmax decode of μ(cell) is the cell itself.

    `reconstruction_accuracy` in metrics.json is this over all cells of the space;
    `heldout_reconstruction_accuracy` is this over the held-out cells only (never trained on).
    """
    if len(archs) == 0:
        return float("nan")
    return exact_match(model.decode_archs(mu), archs.to(mu.device)).float().mean().item()


def unique_means(mu: Tensor, tol: float = UNIQUE_TOL, chunk: int = 1024) -> int:
    """Number of cells whose μ is farther than `tol` (L2) from every other cell's μ.

    A near-duplicate pair removes both cells from the count. Distances are computed in
    float64, chunk by chunk (chunk × N at a time): in float32 the matrix-product form of
    torch.cdist has an error near 1e-3 for means of norm ~5, the size of the threshold.
    """
    mu = mu.detach().double()
    n = mu.shape[0]
    count = 0
    for start in range(0, n, chunk):
        d = torch.cdist(mu[start : start + chunk], mu)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + start] = math.inf  # a mean is not its own neighbour
        count += int((d.min(dim=1).values > tol).sum())
    return count


def prior_metrics(model, space: str, num_samples: int = 10000, seed: int = 0) -> dict:
    """Decode `num_samples` draws of z ~ N(0, I) (seeded) and report:

    - prior_validity: fraction of samples that decode to a valid (non-degenerate) cell;
    - prior_uniqueness: number of distinct cells among the decoded samples (an int);
    - prior_coverage: that number divided by the size of the space.
    """
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(num_samples, model.cfg.latent_dim, generator=gen).to(model.device)
    archs = model.decode_archs(z).cpu()
    distinct = int(torch.unique(archs, dim=0).shape[0])
    sp = spaces.get(space)
    return {
        "prior_validity": sp.valid_mask(archs).float().mean().item(),
        "prior_uniqueness": distinct,
        "prior_coverage": distinct / sp.num_cells(),
    }


def smoothness(mu: Tensor, archs: Tensor, num_pairs: int = 10000, seed: int = 0) -> float:
    """Spearman correlation between latent L2 distance and edit distance over random pairs.

    Edit distance is the Hamming distance over choices (positions whose option differs).
    Pairs (i, j), i ≠ j, are drawn uniformly with a seeded generator; higher is smoother.
    """
    n = mu.shape[0]
    if n < 2:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    i = torch.randint(n, (num_pairs,), generator=gen)
    j = (i + torch.randint(1, n, (num_pairs,), generator=gen)) % n  # never i itself
    mu, archs = mu.detach().cpu(), archs.cpu()
    latent = (mu[i] - mu[j]).norm(dim=1)
    edit = (archs[i] != archs[j]).sum(dim=1)
    return float(spearmanr(latent.numpy(), edit.numpy()).statistic)


def evaluate_vgae(model, graphs, heldout_idx: Tensor, cfg, num_prior_samples: int = 10000, num_pairs: int = 10000, seed: int = 0) -> dict:
    """All stage-2 metrics of a trained model over the GraphSet `graphs` (see each function's doc)."""
    mu = model.encode_archs(graphs)
    archs = graphs.archs.to(mu.device)
    heldout_idx = torch.as_tensor(heldout_idx, dtype=torch.long).to(mu.device)
    heldout = reconstruction_accuracy(model, mu[heldout_idx], archs[heldout_idx]) if len(heldout_idx) else None
    return {
        "num_archs": len(graphs),
        "latent_dim": cfg.latent_dim,
        "reconstruction_accuracy": reconstruction_accuracy(model, mu, archs),
        "heldout_reconstruction_accuracy": heldout,
        "unique_means": unique_means(mu),
        **prior_metrics(model, graphs.space, num_prior_samples, seed),
        "smoothness": smoothness(mu, graphs.archs, num_pairs, seed),
    }

"""E2NAS's latent densities: the exploration archive's novelty and the manifold of encoded cells.

The archive is a preallocated (K, d) ring buffer on the search device, so appending a latent
is one device copy and the novelty never leaves the device (no host round trip, no numpy:
the authors' numpy novelty carries no gradient and only rescales the loss). E2NAS fills it
with K samples of its initial q(z) before the first step, so exploration acts from the start.

Novelty(z) = −log ρ_A(z) / d with ρ_A a Gaussian kernel density over the archive A and a
diagonal bandwidth by Scott's rule, h_j = n^(−1/(d+4)) · std_j(A) (the per-dimension
unbiased standard deviation of the archive, floored at `min_bandwidth` so a collapsed archive
cannot divide by zero). The bandwidth depends on A only, which is detached, so the gradient
reaches z alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class LatentArchive:
    """The detached latents of the last `size` decoded samples, as a ring buffer on `device`."""

    def __init__(self, size: int, dim: int, device: torch.device | str):
        if size < 2:
            raise ValueError(f"archive_size must be at least 2 (a KDE needs a spread), got {size}")
        self.size, self.dim = size, dim
        self.buffer = torch.zeros(size, dim, device=device)
        # Host-side counters: they advance once per step regardless of any value, so keeping
        # them in Python costs no device sync.
        self.count = 0  # latents appended so far (saturates at `size`)
        self.next = 0  # slot the next latent overwrites

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def fill(self, samples: Tensor) -> None:
        """Replace the whole archive by `size` detached latents (K, d): it is full from here on."""
        if tuple(samples.shape) != (self.size, self.dim):
            raise ValueError(f"an archive of {self.size} latents of dimension {self.dim} needs ({self.size}, {self.dim}), got {tuple(samples.shape)}")
        self.buffer.copy_(samples.detach())
        self.count, self.next = self.size, 0

    def append(self, z: Tensor) -> None:
        """Store a detached copy of the latent z (d,), overwriting the oldest when full."""
        self.buffer[self.next].copy_(z.detach().reshape(self.dim))
        self.next = (self.next + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def novelty(self, z: Tensor, min_bandwidth: float = 1e-6) -> Tensor:
        """Novelty of z (d,) against the archive, with gradient to z; 0 until the archive is full."""
        if not self.full:
            return z.new_zeros(())
        return kde_novelty(z, self.buffer, min_bandwidth)

    def state_dict(self) -> dict:
        return {"buffer": self.buffer.detach().cpu(), "count": self.count, "next": self.next}

    def load_state_dict(self, state: dict) -> None:
        self.buffer.copy_(state["buffer"].to(self.buffer.device))
        self.count, self.next = int(state["count"]), int(state["next"])


def scott_bandwidth(points: Tensor, min_bandwidth: float = 1e-6) -> Tensor:
    """Per-dimension Gaussian KDE bandwidth (d,) by Scott's rule: n^(−1/(d+4)) · std_j."""
    n, d = points.shape
    return (n ** (-1.0 / (d + 4)) * points.std(dim=0)).clamp_min(min_bandwidth)


def kde_log_density(z: Tensor, points: Tensor, bandwidth: Tensor) -> Tensor:
    """log ρ(z) of the diagonal Gaussian KDE over `points` (n, d), computed with logsumexp."""
    n, d = points.shape
    scaled = (z.reshape(1, d) - points) / bandwidth  # (n, d)
    log_kernels = -0.5 * scaled.pow(2).sum(dim=1)  # (n,)
    norm = math.log(n) + bandwidth.log().sum() + 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(log_kernels, dim=0) - norm


def kde_novelty(z: Tensor, points: Tensor, min_bandwidth: float = 1e-6) -> Tensor:
    """−log ρ(z) / d for the Scott-bandwidth KDE over `points` (detached), gradient to z only."""
    points = points.detach()
    bandwidth = scott_bandwidth(points, min_bandwidth)
    return -kde_log_density(z, points, bandwidth) / points.shape[1]


class ManifoldDensity:
    """The diagonal Gaussian KDE (Scott's bandwidth) over the encodings of a space's cells.

    `penalty(μ)` = −log ρ_E(μ) / d grows as μ leaves the region where the decoder saw real
    cells; its gradient pulls μ back towards the encodings. The encodings and bandwidth are
    fixed for a search, held on the search device.
    """

    def __init__(self, encodings: Tensor, min_bandwidth: float = 1e-6):
        self.points = encodings.detach().float()
        self.bandwidth = scott_bandwidth(self.points, min_bandwidth)

    def penalty(self, mu: Tensor) -> Tensor:
        return -kde_log_density(mu, self.points, self.bandwidth) / self.points.shape[1]

    def nearest_distance(self, mu: Tensor) -> Tensor:
        """Distance from μ (d,) to the nearest encoding (a device scalar)."""
        return (self.points - mu.detach().reshape(1, -1)).norm(dim=1).min()


def nearest_neighbour_median(points: Tensor, max_queries: int = 20000, chunk: int = 1024, seed: int = 0) -> float:
    """Median distance from a point to its nearest other point (float64, chunked).

    With more than `max_queries` points the median is taken over a seeded subset of that many
    query points (each still against all points): exact for NB201's 15,625 cells, a sample for
    a large DARTS set.
    """
    points = points.detach().double()
    n = points.shape[0]
    if n < 2:
        return float("nan")
    queries = torch.arange(n) if n <= max_queries else torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_queries]
    nearest = []
    for part in queries.to(points.device).split(chunk):
        d = torch.cdist(points[part], points)
        d[torch.arange(len(part), device=d.device), part] = math.inf  # a point is not its own neighbour
        nearest.append(d.min(dim=1).values)
    return float(torch.cat(nearest).quantile(0.5))

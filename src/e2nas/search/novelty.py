"""E2NAS's exploration term: an archive of recent latents and a differentiable KDE novelty.

The archive is a preallocated (K, d) ring buffer on the search device, so appending a latent
is one device copy and the novelty never leaves the device (no host round trip, no numpy:
the authors' numpy novelty carries no gradient and only rescales the loss).

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

"""E2NAS's latent densities: the KDE, the exploration archive, the manifold of encoded cells."""

from __future__ import annotations

import math

import pytest
import torch

from e2nas.search.novelty import (
    LatentArchive,
    ManifoldDensity,
    kde_log_density,
    kde_novelty,
    nearest_neighbour_median,
    scott_bandwidth,
)

# ---------------------------------------------------------------- densities


def test_kde_log_density_matches_a_direct_gaussian_mixture():
    from scipy.stats import multivariate_normal

    g = torch.Generator().manual_seed(0)
    points, z = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    h = scott_bandwidth(points)
    assert torch.allclose(h, 30 ** (-1 / 7) * points.std(dim=0))
    direct = sum(multivariate_normal(p.numpy(), torch.diag(h**2).numpy()).pdf(z.numpy()) for p in points) / 30
    assert kde_log_density(z, points, h).item() == pytest.approx(math.log(direct), rel=1e-9)


def test_novelty_of_a_filled_archive_is_differentiable_and_the_ring_overwrites_the_oldest():
    archive = LatentArchive(3, 2, "cpu")
    z = torch.tensor([0.5, 0.5], requires_grad=True)
    assert archive.novelty(z).item() == 0.0  # empty: no density to be novel against
    archive.fill(torch.tensor([[0.0, 0.0], [0.1, -0.1], [0.2, -0.2]]))
    assert archive.full and archive.next == 0
    nov = archive.novelty(z)
    (grad,) = torch.autograd.grad(nov, z)
    assert grad.abs().sum() > 0
    # The gradient points away from the archive: a small step along it raises the novelty.
    assert kde_novelty(z.detach() + 1e-3 * grad, archive.buffer) > nov.detach()
    archive.append(torch.tensor([9.0, 9.0]))
    assert archive.buffer[0].tolist() == [9.0, 9.0] and archive.next == 1
    with pytest.raises(ValueError, match="archive of 3"):
        archive.fill(torch.zeros(4, 2))


def test_manifold_penalty_is_the_kde_over_the_encodings():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(50, 3, generator=g)
    density = ManifoldDensity(points)
    mu = torch.tensor([0.3, -0.2, 0.1])
    want = -kde_log_density(mu, points, scott_bandwidth(points)) / 3
    assert density.penalty(mu).item() == pytest.approx(want.item())
    assert density.nearest_distance(points[7] + 0.01).item() == pytest.approx(0.01 * math.sqrt(3), rel=1e-4)
    # Far from the points the penalty is larger, and its gradient pulls back towards them.
    far = torch.tensor([5.0, 5.0, 5.0], requires_grad=True)
    (grad,) = torch.autograd.grad(density.penalty(far), far)
    assert density.penalty(far.detach()) > density.penalty(mu) and (grad > 0).all()


def test_nearest_neighbour_median_on_a_known_set():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    # nearest other point: 1, 1, 2, 4 → median 1.5
    assert nearest_neighbour_median(points) == pytest.approx(1.5)
    assert nearest_neighbour_median(points, max_queries=2) in (1.0, 1.5, 2.0, 3.0, 4.0)



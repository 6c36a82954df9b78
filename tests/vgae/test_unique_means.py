"""e2nas.vgae.unique_means: the sort-and-sweep count equals the quadratic all-pairs count.

The reference below is the former implementation (float64 cdist, chunk × N at a time). The
sets plant near-duplicates at distances just below, at and just above the tolerance: exact
duplicates, pairs, chains and clusters of 3+, dense clusters and lattices whose projection
windows hold many rows, and the N = 0, 1, 2 edge cases.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from e2nas.vgae import unique_means
from e2nas.vgae.metrics import UNIQUE_TOL


def reference_unique_means(mu: Tensor, tol: float = UNIQUE_TOL, chunk: int = 1024, compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> int:
    """The quadratic version: rows whose float64 cdist to every other row is > tol.

    cdist's default (matrix-product form, above 25 rows) has an error ~ 1e-16·‖μ‖²/distance:
    ~1e-12 at distance 1e-3 for norms ~5, ~1e-8 for exact duplicates. Where a test plants
    distances closer to tol than that, it passes compute_mode="donot_use_mm_for_euclid_dist"
    (the norm of the difference, as unique_means computes it).
    """
    mu = mu.detach().double()
    n = mu.shape[0]
    count = 0
    for start in range(0, n, chunk):
        d = torch.cdist(mu[start : start + chunk], mu, compute_mode=compute_mode)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + start] = math.inf  # a mean is not its own neighbour
        count += int((d.min(dim=1).values > tol).sum())
    return count


def unit(gen: torch.Generator, d: int) -> Tensor:
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    return v / v.norm()


def planted(n_base: int, seed: int, d: int = 16, tol: float = UNIQUE_TOL, scale: float = 1.25) -> Tensor:
    """DARTS-like means (norms ~5 in 16-d) plus planted near-duplicates around `tol`."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n_base, d, generator=gen, dtype=torch.float64) * scale
    extra = []
    anchors = base[torch.randperm(n_base, generator=gen)[: max(1, n_base // 10)]]
    for a_i, a in enumerate(anchors):
        kind = a_i % 8
        e = unit(gen, d)
        if kind == 0:  # exact duplicate
            extra.append(a.clone())
        elif kind == 1:  # pair just below tol
            extra.append(a + tol * (1 - 1e-4) * e)
        elif kind == 2:  # pair just above tol
            extra.append(a + tol * (1 + 1e-4) * e)
        elif kind == 3:  # pair a hair below / above tol (relative 1e-7)
            extra.append(a + tol * (1 - 1e-7 if a_i % 16 < 8 else 1 + 1e-7) * e)
        elif kind == 4:  # chain a - b - c, 0.9 tol apart: all three count out, a-c = 1.8 tol
            extra += [a + 0.9 * tol * e, a + 1.8 * tol * e]
        elif kind == 5:  # triple, each 1.01 tol from a on opposite sides: all three count in
            extra += [a + 1.01 * tol * e, a - 1.01 * tol * e]
        elif kind == 6:  # cluster of 5 within tol / 2 of a
            extra += [a + 0.5 * tol * torch.rand(1, generator=gen, dtype=torch.float64) * unit(gen, d) for _ in range(4)]
        else:  # one far and one near: a counts out with the near one only
            extra += [a + 3 * tol * e, a + 0.999 * tol * unit(gen, d)]
    mu = torch.cat([base, torch.stack(extra)])
    return mu[torch.randperm(len(mu), generator=gen)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_reference_on_planted_sets(seed):
    mu = planted(1500, seed)
    ref = reference_unique_means(mu)
    assert unique_means(mu) == ref
    assert 0 < ref < len(mu)  # the planted duplicates removed some rows, the rest count in


def test_matches_reference_on_a_denser_set_and_any_chunk():
    # 4000 base means with a small spread: windows in projection hold dozens of rows.
    mu = planted(4000, seed=7, scale=0.05)
    ref = reference_unique_means(mu)
    for chunk in (1, 7, 1024):
        assert unique_means(mu, chunk=chunk) == ref


@pytest.mark.parametrize("d", [1, 2, 5, 40])
def test_matches_reference_in_other_dimensions(d):
    mu = planted(800, seed=d, d=d, scale=5 / math.sqrt(d))
    assert unique_means(mu) == reference_unique_means(mu)


def test_matches_reference_for_float32_input_far_from_the_origin():
    mu = (planted(800, seed=5) + 100.0).float()
    assert unique_means(mu) == reference_unique_means(mu)


@pytest.mark.parametrize("tol", [1e-7, 1e-5, 1e-3, 1e-2, 0.5])
def test_matches_reference_at_other_tolerances(tol):
    mu = planted(600, seed=11, tol=tol)
    direct = reference_unique_means(mu, tol=tol, compute_mode="donot_use_mm_for_euclid_dist")
    assert unique_means(mu, tol=tol) == direct
    if tol >= 1e-3:  # below, the planted margins (1e-7·tol) are under the matrix-product error
        assert direct == reference_unique_means(mu, tol=tol)


def test_tol_zero_counts_exact_duplicates_out():
    # Not compared with the reference: cdist's matrix-product form gives exact duplicates a
    # distance ~1e-8, not 0 (harmless at tol = 1e-3, wrong at tol = 0).
    mu = planted(300, seed=2)
    _, counts = torch.unique(mu, dim=0, return_counts=True)
    exact = int((counts == 1).sum())  # rows equal to no other row
    assert exact < len(mu)
    assert unique_means(mu, tol=0.0) == exact
    assert unique_means(mu, tol=-1.0) == len(mu)


def test_distance_exactly_tol_counts_as_duplicate():
    # Dyadic coordinates: every distance below is exact in float64, for both versions.
    tol = 5 * 2.0**-10
    step = 2.0**-10
    gen = torch.Generator().manual_seed(3)
    base = torch.randint(-5000, 5000, (300, 16), generator=gen).double() * step
    pair_at = base[:50].clone()
    pair_at[:, :2] += torch.tensor([3 * step, 4 * step], dtype=torch.float64)  # exactly tol (3-4-5)
    pair_above = base[50:100].clone()
    pair_above[:, 0] += tol + step  # just above
    pair_axis = base[100:150].clone()
    pair_axis[:, 5] -= tol  # exactly tol along an axis
    mu = torch.cat([base, pair_at, pair_above, pair_axis])
    ref = reference_unique_means(mu, tol=tol)
    assert ref == len(mu) - 2 * 150 + 2 * 50  # the at-tol pairs count out, the above-tol pairs in
    assert unique_means(mu, tol=tol) == ref


def test_dense_cluster():
    # 3000 means in a ball of radius 3·tol (16-d): every projection window holds nearly all
    # of them, and some count in while most count out. Plus an exact-duplicate blob.
    gen = torch.Generator().manual_seed(4)
    centre = torch.randn(16, generator=gen, dtype=torch.float64) * 1.25
    dirs = torch.randn(3000, 16, generator=gen, dtype=torch.float64)
    dirs /= dirs.norm(dim=1, keepdim=True)
    radii = 3 * UNIQUE_TOL * torch.rand(3000, 1, generator=gen, dtype=torch.float64) ** (1 / 16)
    ball = centre + dirs * radii
    blob = centre.repeat(500, 1) + 10.0
    far = torch.randn(500, 16, generator=gen, dtype=torch.float64) * 1.25
    mu = torch.cat([ball, blob, far])
    ref = reference_unique_means(mu)
    assert unique_means(mu) == ref
    assert unique_means(mu, chunk=3) == ref
    assert unique_means(ball) == reference_unique_means(ball)


def test_lattice_with_spacing_just_above_tol():
    # A 3-d lattice (spacing 1.01·tol) rotated into 16-d: all 4096 points count in; then
    # points moved to 0.99·tol from a neighbour count out with it.
    gen = torch.Generator().manual_seed(6)
    g = torch.arange(16, dtype=torch.float64) * 1.01 * UNIQUE_TOL
    grid = torch.cartesian_prod(g, g, g)
    rot, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    lattice = grid @ rot[:3] + 1.0
    assert unique_means(lattice) == reference_unique_means(lattice) == len(lattice)
    moved = lattice.clone()
    axis = (lattice[1] - lattice[0]) / (lattice[1] - lattice[0]).norm()
    moved[::97] += 0.99 * UNIQUE_TOL * axis  # 0.02·tol from the next lattice point
    assert unique_means(moved) == reference_unique_means(moved) < len(lattice)


def test_permutation_and_translation_do_not_change_the_count():
    mu = planted(1000, seed=9)
    count = unique_means(mu)
    perm = torch.randperm(len(mu), generator=torch.Generator().manual_seed(0))
    assert unique_means(mu[perm]) == count
    assert unique_means(mu + 3.0) == count


def test_small_and_degenerate_inputs():
    assert unique_means(torch.zeros(0, 16)) == reference_unique_means(torch.zeros(0, 16)) == 0
    assert unique_means(torch.zeros(1, 16)) == 1
    assert unique_means(torch.zeros(2, 16)) == 0
    a = torch.zeros(1, 16, dtype=torch.float64)
    e = torch.zeros(1, 16, dtype=torch.float64)
    e[0, 3] = 1.0
    for dist, expected in [(0.5 * UNIQUE_TOL, 0), (UNIQUE_TOL * (1 - 1e-9), 0), (UNIQUE_TOL * (1 + 1e-9), 2), (1.0, 2)]:
        pair = torch.cat([a, a + dist * e])
        assert unique_means(pair) == reference_unique_means(pair) == expected
    assert unique_means(torch.ones(5, 1)) == 0  # 1-d
    assert unique_means(torch.tensor([[0.0], [2e-3], [4e-3], [4.5e-3]])) == 2
    assert unique_means(torch.zeros(3, 0)) == 0  # 0-d: all means equal


def test_non_finite_means_give_zero_like_the_reference():
    mu = planted(100, seed=1)
    mu[5, 2] = float("nan")
    assert unique_means(mu) == reference_unique_means(mu) == 0

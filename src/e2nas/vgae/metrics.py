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


_GRID_DIMS = 3  # principal axes the candidate grid is built on (3**3 neighbour cells)
_SWEEP_OFFSETS = 8  # rows after each row in grid order checked first (settles dense duplicate clusters)
_PAIRS_PER_CHUNK_ROW = 256  # candidate pairs held at once = chunk * this
_BLOCK_PAIRS = 1024  # a cell-by-cell block this large is checked as a distance matrix


def _grid_keys(mu: Tensor, width: float) -> tuple[Tensor, list[int]]:
    """Cell key of every row on a grid of cell `width` over the top principal axes of `mu`.

    The axes are orthonormal, so coordinates on them are 1-Lipschitz: two rows within
    `width` in L2 are within `width` on every axis, hence in the same or adjacent cells.
    Cell indices are shifted to start at 1 (a neighbour at index −1 stays ≥ 0) and combined
    in mixed radix (each axis' radix = its index range + 2), so key + Σ δ_a·stride_a, δ ∈
    {−1, 0, 1}, is exactly the key of the neighbour cell, without wrap-around. As many axes
    are used (≤ _GRID_DIMS) as keep the keys within int64. Returns keys and strides.
    """
    centred = mu - mu.mean(dim=0)
    axes = torch.linalg.eigh(centred.T @ centred).eigenvectors.flip(1)[:, :_GRID_DIMS]
    cells = torch.floor((mu @ axes) / width).long()
    cells = cells - cells.min(dim=0).values + 1
    keys = torch.zeros(mu.shape[0], dtype=torch.long, device=mu.device)
    strides: list[int] = []
    stride = 1
    for a in range(cells.shape[1]):
        radix = int(cells[:, a].max()) + 2
        if strides and stride * radix >= 2**62:
            break
        keys += cells[:, a] * stride
        strides.append(stride)
        stride *= radix
    return keys, strides


def unique_means(mu: Tensor, tol: float = UNIQUE_TOL, chunk: int = 1024) -> int:
    """Number of cells whose μ is farther than `tol` (L2) from every other cell's μ.

    A near-duplicate pair removes both cells from the count (row i counts out iff some
    j ≠ i has ‖μ_i − μ_j‖ ≤ tol). Exact, without the N × N distance matrix:

    - the rows are put on a grid of cell width w = tol (plus a tiny margin covering float64
      rounding) over up to 3 principal axes. Coordinates on orthonormal axes never exceed
      the L2 distance, so every pair within `tol` lies in the same or in adjacent cells
      (3**k neighbour cells, k ≤ 3 axes): the grid only prunes pairs that cannot be
      within `tol`, it never decides one;
    - rows are sorted by cell; a cheap pass compares each row with the next few rows of its
      cell (settling exact duplicates and dense clusters in O(N)); then every row not yet
      counted out is compared with every row of its neighbour cells, until one is within
      `tol`. A row counts in only after its distance to every row that could be within
      `tol` has been computed and found > tol — the same count as the all-pairs version.

    Cost: O(N log N) for the sort plus the pairs checked, ~N·(rows per neighbourhood); a
    cluster denser than the grid resolves costs what all pairs within it cost, no more.
    Distances are computed in float64 as the norm of the difference: in float32 the
    matrix-product form of torch.cdist has an error near 1e-3 for means of norm ~5, the size
    of the threshold (in float64 that form still errs by ~1e-16·‖μ‖²/distance, ~1e-8 for
    exact duplicates; the difference form does not). `chunk` bounds memory: at most chunk × 256 candidate pairs
    (each a d-vector) are held at once. A mean with a NaN or infinite entry makes the
    distances undefined: the count is then 0 (for N ≥ 2), as the all-pairs version gave.
    """
    mu = mu.detach().double()
    n = mu.shape[0]
    if n < 2 or tol < 0:
        return n
    if not bool(torch.isfinite(mu).all()):
        return 0
    if mu.shape[1] == 0:  # every mean is the empty vector: all at distance 0
        return 0
    dev = mu.device
    # Cell width: tol plus slack for the rounding of the axis coordinates (~d·eps·‖μ‖ ≪ this).
    width = tol * (1 + 1e-6) + 1e-9 * (1.0 + float(mu.abs().max()))
    keys, strides = _grid_keys(mu, width)
    keys, order = torch.sort(keys)
    x = mu[order]  # rows in cell order; all indices below are into it
    rows = torch.arange(n, device=dev)
    dup = torch.zeros(n, dtype=torch.bool, device=dev)

    def close(i: Tensor, j: Tensor) -> Tensor:
        return ((x[i] - x[j]) ** 2).sum(dim=1).sqrt() <= tol

    # Pass 1: pairs (i, i + k), k ≤ _SWEEP_OFFSETS, in the same cell.
    for k in range(1, min(_SWEEP_OFFSETS, n - 1) + 1):
        i = rows[: n - k][(keys[k:] == keys[:-k]) & ~(dup[: n - k] & dup[k:])]
        hit = i[close(i, i + k)]
        dup[hit] = True
        dup[hit + k] = True

    # Pass 2: every row still counted in, against every row of each neighbour cell in turn
    # (its own cell first); a row found within tol drops out of later cells. Small blocks
    # (few rows × few rows) are checked as one vectorised list of pairs, large blocks (a
    # dense cluster) as distance matrices; either way at most `step` pairs at a time.
    cell_keys, cell_counts = torch.unique_consecutive(keys, return_counts=True)
    cell_ends = torch.cumsum(cell_counts, 0)
    cell_starts = cell_ends - cell_counts
    cell_of = torch.repeat_interleave(torch.arange(len(cell_keys), device=dev), cell_counts)
    deltas = torch.cartesian_prod(*[torch.tensor([0, -1, 1])] * len(strides)).reshape(-1, len(strides))
    step = max(1, chunk) * _PAIRS_PER_CHUNK_ROW
    for delta in deltas.tolist():
        offset = sum(dl * s for dl, s in zip(delta, strides))
        left = rows[~dup]  # in cell order, so each cell's remaining rows are contiguous
        if len(left) == 0:
            break
        seg_cells, seg_sizes = torch.unique_consecutive(cell_of[left], return_counts=True)
        seg_of = torch.repeat_interleave(torch.arange(len(seg_cells), device=dev), seg_sizes)
        target = cell_keys[seg_cells] + offset
        t = torch.searchsorted(cell_keys, target).clamp(max=len(cell_keys) - 1)
        size = torch.where(cell_keys[t] == target, cell_counts[t], 0)  # rows in the neighbour cell
        small = (size > 0) & (seg_sizes * size < _BLOCK_PAIRS)

        # Small blocks: remaining row i against rows lo .. lo + count − 1.
        mine = small[seg_of]
        i_rows, s_rows = left[mine], seg_of[mine]
        lo, counts = cell_starts[t[s_rows]], size[s_rows]
        ends = torch.cumsum(counts, 0)
        total = int(ends[-1]) if len(ends) else 0
        for s in range(0, total, step):
            p = torch.arange(s, min(s + step, total), device=dev)
            r = torch.searchsorted(ends, p, right=True)  # which row's range pair p falls in
            i, j = i_rows[r], lo[r] + (p - (ends[r] - counts[r]))
            keep = j != i
            i, j = i[keep], j[keep]
            dup[i[close(i, j)]] = True

        # Large blocks: the remaining rows of one cell against all rows of the neighbour cell.
        seg_ends = torch.cumsum(seg_sizes, 0).tolist()
        for s in torch.nonzero((size > 0) & ~small).flatten().tolist():
            b0, b1 = int(cell_starts[t[s]]), int(cell_ends[t[s]])
            a_rows = left[seg_ends[s] - int(seg_sizes[s]) : seg_ends[s]]
            per = max(1, step // (b1 - b0))
            for a in range(0, len(a_rows), per):
                i = a_rows[a : a + per]
                d = torch.cdist(x[i], x[b0:b1], compute_mode="donot_use_mm_for_euclid_dist")
                if offset == 0:  # own cell: a mean is not its own neighbour
                    d[torch.arange(len(i), device=dev), i - b0] = math.inf
                dup[i[(d <= tol).any(dim=1)]] = True
    return n - int(dup.sum())


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

"""Time `unique_means` (grid sweep) against the former all-pairs version, in one process.

The means are DARTS-like: 16-d Gaussian with norms ~5 (`--spread` scales them), plus planted
near-duplicates at UNIQUE_TOL — exact duplicates, pairs at (1 ∓ 1e-4)·tol, chains of three
0.9·tol apart, triples 1.01·tol apart — about 10% of the rows. Both versions must give the
same count; the bar (issue 21) is the new one ≤ 5 s at 100,000 rows on one CPU thread.

    python benchmarks/unique_means.py                    # 20,000 and 100,000 rows, 1 thread
    python benchmarks/unique_means.py --sizes 20000 --spread 0.01

Prints only (no entry in RESULTS.md). The all-pairs version takes about a minute at 100,000.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from e2nas.vgae.metrics import UNIQUE_TOL, unique_means  # noqa: E402

BAR_SECONDS = 5.0


def quadratic_unique_means(mu: torch.Tensor, tol: float = UNIQUE_TOL, chunk: int = 1024) -> int:
    """The former implementation: float64 cdist, chunk × N at a time."""
    mu = mu.detach().double()
    n = mu.shape[0]
    count = 0
    for start in range(0, n, chunk):
        d = torch.cdist(mu[start : start + chunk], mu)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + start] = math.inf
        count += int((d.min(dim=1).values > tol).sum())
    return count


def means(n: int, spread: float = 1.25, d: int = 16, tol: float = UNIQUE_TOL, seed: int = 0) -> torch.Tensor:
    """n rows: ~0.9·n Gaussian means (std `spread` per axis) plus planted near-duplicates."""
    gen = torch.Generator().manual_seed(seed)
    m = n // 11  # anchors; 2 in 5 of them get a third row
    chain = torch.arange(m) % 5 >= 3  # a third row on the same line: 1.8 / 2.02 tol from the anchor
    n_base = n - m - int(chain.sum())
    base = torch.randn(n_base, d, generator=gen, dtype=torch.float64) * spread
    anchors = base[torch.randperm(n_base, generator=gen)[:m]]
    e = torch.randn(len(anchors), d, generator=gen, dtype=torch.float64)
    e /= e.norm(dim=1, keepdim=True)
    factor = torch.tensor([0.0, 1 - 1e-4, 1 + 1e-4, 0.9, 1.01], dtype=torch.float64)[torch.arange(m) % 5]
    planted = anchors + tol * factor[:, None] * e
    third = planted[chain] + tol * factor[chain, None] * e[chain]
    mu = torch.cat([base, planted, third])
    return mu[torch.randperm(len(mu), generator=gen)]


def timed(fn, mu: torch.Tensor) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn(mu)
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--spread", type=float, default=1.25, help="std per axis of the base means (1.25: norms ~5)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), d=16, tol={UNIQUE_TOL}, spread={args.spread}")
    for n in args.sizes:
        mu = means(n, spread=args.spread)
        new, t_new = timed(unique_means, mu)
        old, t_old = timed(quadratic_unique_means, mu)
        bar = f", bar {BAR_SECONDS:.0f} s: {'ok' if t_new <= BAR_SECONDS else 'FAIL'}" if n >= 100_000 else ""
        print(
            f"N={n:>7,}: unique={new} (all-pairs {old}: {'same' if new == old else 'DIFFERENT'}), "
            f"new {t_new:.3f} s, all-pairs {t_old:.2f} s, speed-up {t_old / t_new:.0f}x{bar}"
        )
        if new != old:
            sys.exit(1)


if __name__ == "__main__":
    main()

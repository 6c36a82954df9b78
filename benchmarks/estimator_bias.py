"""What the straight-through estimator tells the search about each edge's ops, against what swapping them does.

On a fixed supernet and batch, for seeded random cells a and every edge e: the single-path forward in
GDAS's form (h = onehot(a), the edge outputs h_a·op_a(x) + Σ_{k≠a} h_k) gives ∂L/∂h_{e,k} for every op k.
For the unchosen ops that gradient is one number, Σ of ∂L over the edge's output, the same for every k ≠ a
(and for a = `none`, whose output is zero, the chosen term's own gradient ⟨g, op_a(x)⟩ is 0): the estimator
cannot say which alternative is better, only whether to move probability off the chosen op. Its signal is
s = ∂L/∂h_a − ∂L/∂h_{k≠a} (> 0: leave a). Against it, the loss change of actually swapping the op,
L(a with e→k) − L(a), one forward per alternative. Reported per chosen op: how often the estimator says
"stay" (s < 0), how often staying is right (every swap raises the loss / the mean swap does), the rank
correlation of s with the mean swap's loss change, and which op each edge's best swap would be.

    python benchmarks/estimator_bias.py --warmup results/ranking-grid/fair-5000-s0.pt --cells 40 [--record]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import spaces  # noqa: E402
from e2nas.data import load_dataset  # noqa: E402
from e2nas.warmup import load_warmup  # noqa: E402
from results_file import append_result  # noqa: E402


def edge_signals(net, x, y, cell, num_ops):
    """(loss, s per edge): s_e = ∂L/∂h_{e,a} − ∂L/∂h_{e,k≠a} at h = onehot(cell)."""
    h = F.one_hot(torch.tensor(cell), num_ops).float().requires_grad_()
    loss = F.cross_entropy(net(x, cell, h), y)
    (grad,) = torch.autograd.grad(loss, h)
    s = []
    for e, a in enumerate(cell):
        others = [grad[e, k] for k in range(num_ops) if k != a]
        assert all(torch.isclose(o, others[0], atol=1e-6, rtol=1e-4) for o in others)  # one number for every k ≠ a
        s.append(float(grad[e, a] - others[0]))
    return float(loss), s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", required=True, help="a warm-up supernet (stage 3's format)")
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--images", type=int, default=512, help="arch-half images of the batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    net, meta = load_warmup(args.warmup)
    net.eval()  # BatchNorm uses batch statistics in the supernet either way; no dropout
    space = spaces.get(meta["space"])
    data = load_dataset(meta["dataset"])
    idx = torch.as_tensor(meta["split"]["arch"])[: args.images]
    x, y = data.train_x[idx], data.train_y[idx]
    n = len(space.ops)
    cells = space.sample(args.cells, torch.Generator().manual_seed(args.seed))
    by_op = defaultdict(lambda: {"edges": 0, "st_stay": 0, "all_swaps_worse": 0, "mean_swap_worse": 0, "s": [], "swap": []})
    best_swap = defaultdict(int)
    for cell in cells:
        base, signals = edge_signals(net, x, y, cell, n)
        for e, a in enumerate(cell):
            with torch.no_grad():
                swaps = {k: float(F.cross_entropy(net(x, cell[:e] + (k,) + cell[e + 1:]), y)) - base for k in range(n) if k != a}
            row = by_op[space.ops[a]]
            row["edges"] += 1
            row["st_stay"] += signals[e] < 0
            row["all_swaps_worse"] += all(v > 0 for v in swaps.values())
            row["mean_swap_worse"] += np.mean(list(swaps.values())) > 0
            row["s"].append(signals[e])
            row["swap"].append(np.mean(list(swaps.values())))
            best_swap[space.ops[min(swaps, key=swaps.get)]] += 1
    all_s = [v for r in by_op.values() for v in r["s"]]
    all_swap = [v for r in by_op.values() for v in r["swap"]]
    lines = [f"\n## estimator_bias — {datetime.now().isoformat(timespec='minutes')}\n",
             f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs); supernet {args.warmup}; {args.cells} "
             f"seeded cells × {len(cells[0])} edges, a batch of {args.images} arch-half images. For the unchosen ops the "
             f"straight-through gradient was one number per edge (checked on every edge): it says only whether to leave "
             f"the chosen op, never which op to take.\n",
             "| chosen op | edges | estimator says stay (s < 0) | staying is right: every swap raises L | the mean swap raises L "
             "| Spearman(s, −mean swap Δ) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for op in space.ops:
        r = by_op.get(op)
        if not r:
            continue
        rho = spearmanr(r["s"], [-v for v in r["swap"]]).statistic if len(r["s"]) > 2 else float("nan")
        lines.append(f"| {op} | {r['edges']} | {r['st_stay'] / r['edges']:.2f} | {r['all_swaps_worse'] / r['edges']:.2f} | "
                     f"{r['mean_swap_worse'] / r['edges']:.2f} | {rho:.2f} |")
    lines += ["", f"Over every edge: Spearman between the estimator's s and the mean swap's loss decrease: "
                  f"{spearmanr(all_s, [-v for v in all_swap]).statistic:.2f}; the op the best single swap would take: "
                  + ", ".join(f"{op} {best_swap[op]}" for op in space.ops) + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        append_result(text)


if __name__ == "__main__":
    main()

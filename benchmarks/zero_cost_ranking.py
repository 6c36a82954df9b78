"""How the zero-cost picks (params, synflow) rank the ground-truth table's cells, beside the supernets.

    python benchmarks/zero_cost_ranking.py [--seeds 0 1 2] [--no-record]

Every table cell is scored as the `params` and `synflow` methods score it (`e2nas.search.standalone.zero_cost_score`:
the stand-alone network at the table's protocol, synflow at the seeded init of each seed), and each score's Kendall τ
against the table's mean is given on the tuning and the held-out cells, with the parameter-free share of its top 10
(the supernet rows of RESULTS.md "supernet_ranking" have the same columns).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import spaces  # noqa: E402
from e2nas.data import load_dataset  # noqa: E402
from e2nas.ranking import correlation  # noqa: E402
from e2nas.search.standalone import protocol_config, zero_cost_score  # noqa: E402
from e2nas.tables.fashion_mnist import GroundTruthTable  # noqa: E402
from results_file import append_result  # noqa: E402


def top_free_share(space, cells: list[str], scores: list[float], top: int = 10) -> float:
    """Parameter-free share of the ops of the `top` best-scoring cells (ties to the first)."""
    best = np.argsort(-np.asarray(scores), kind="stable")[:top]
    ops = [space.ops[o] for i in best for o in space.parse(cells[i])]
    return sum(o in space.parameter_free_ops for o in ops) / len(ops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synflow's init seeds")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = GroundTruthTable.load()
    space = spaces.get(table.space)
    cfg, _ = protocol_config(space)
    data = load_dataset(args.dataset)
    cells = table.subset("all")
    truth = table.mean()
    scores = {"params": [zero_cost_score("params", space, c, cfg, data, 0) for c in cells]}
    for seed in args.seeds:
        scores[f"synflow (init seed {seed})"] = [zero_cost_score("synflow", space, c, cfg, data, seed) for c in cells]
    rows = ["| score | subset | cells | τ | ρ | free (top 10) |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for subset in ("tuning", "held-out"):
        keep = [i for i, c in enumerate(cells) if c in set(table.subset(subset))]
        chosen = [cells[i] for i in keep]
        truth_top = top_free_share(space, chosen, truth.loc[chosen].tolist())
        for name, values in scores.items():
            picked = [values[i] for i in keep]
            stats = correlation(picked, truth.loc[chosen].tolist())
            rows.append(f"| {name} | {subset} | {len(keep)} | {stats['kendall_tau']:.2f} | {stats['spearman_rho']:.2f} | "
                        f"{top_free_share(space, chosen, picked):.2f} |")
        rows.append(f"| (the table's own top 10) | {subset} | {len(keep)} | | | {truth_top:.2f} |")
    text = "\n".join([
        f"## zero_cost_ranking — {datetime.now().isoformat(timespec='minutes')}\n",
        f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), torch {torch.__version__}; every table "
        f"cell scored as methods `params` and `synflow` score it (the table's protocol network, C={cfg.channels}, "
        f"N={cfg.cells_per_stage}); τ/ρ against the table's mean of seeds 0 and 1\n",
        *rows,
    ]) + "\n"
    print(text)
    if not args.no_record:
        append_result(text)


if __name__ == "__main__":
    main()

"""Size the ground-truth table's training protocol by its noise ceiling.

For each protocol (a set of `retrain` settings), trains the same seeded sample of NB201 cells
from scratch twice (training seeds 0 and 1) on Fashion-MNIST and measures how well the two
seeds agree: Kendall τ between the seed columns over all cells, over the valid ones (a path
without `none`), and over the top half (by the mean of both seeds, where a search's winners
are), plus the seed-to-seed difference and the cost of one training. A table is only as good
as that agreement: a found cell's percentile means nothing when two seeds of one cell differ
more than cells do. With $E2NAS_NB201_TABLE set it also gives the protocol's τ against NB201's
CIFAR-10 accuracies: whether the short training orders cells as a full one does.

Every training is appended to a JSON-lines log as it ends, so a killed run resumes where it
stopped; `--record` appends the summary to benchmarks/RESULTS.md.

    python benchmarks/table_protocol.py --cells 16 --protocol base:epochs=3,train_subset=10000,lr=0.05 \
        --protocol step:epochs=3,train_subset=10000,lr=0.05,lr_schedule=step [--record]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from results_file import append_result
from scipy.stats import kendalltau

from e2nas.data import DataConfig, load_dataset, split_for
from e2nas.retrain import run_retrain
from e2nas.spaces import nb201
from e2nas.tables.nb201 import Nb201Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOG = REPO / "results" / "table_protocol.jsonl"
BASE = {"channels": 8, "cells_per_stage": 1, "batch_size": 64, "test_subset": None}


def parse_protocol(text: str) -> tuple[str, dict]:
    """'name:key=value,key=value' → (name, retrain overrides); values parsed as YAML scalars."""
    import yaml

    name, _, body = text.partition(":")
    settings = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        settings[key.strip()] = yaml.safe_load(value)
    nb201.SPACE.config("retrain", {**BASE, **settings})  # a bad key or value fails before any training
    return name, settings


def sample_cells(n: int, seed: int) -> list[str]:
    archs = nb201.sample_archs(n, torch.Generator().manual_seed(seed))
    return [nb201.format_arch(a) for a in archs.tolist()]


def done_runs(log: Path) -> dict[tuple, dict]:
    if not log.exists():
        return {}
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {(r["protocol"], r["arch"], r["seed"]): r for r in rows}


def train(data, split, arch: str, settings: dict, seed: int) -> tuple[float, float]:
    cfg = nb201.SPACE.config("retrain", {**BASE, **settings})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        metrics, _ = run_retrain(data, split, arch, cfg, seed, f"{tmp}/m.json", f"{tmp}/c.pt", progress=False)
        return metrics["test_accuracy"], time.perf_counter() - start


def kendall(a, b) -> float:
    return float(kendalltau(a, b).statistic) if len(a) >= 2 else float("nan")


def summarize(name: str, rows: list[dict], table: Nb201Table | None = None) -> dict:
    by_arch: dict[str, dict[int, float]] = {}
    for r in rows:
        by_arch.setdefault(r["arch"], {})[r["seed"]] = r["accuracy"]
    pairs = [(a, s[0], s[1]) for a, s in by_arch.items() if 0 in s and 1 in s]
    archs = [a for a, _, _ in pairs]
    s0, s1 = np.array([p[1] for p in pairs]), np.array([p[2] for p in pairs])
    valid = np.array([nb201.is_valid(nb201.parse_arch(a)) for a in archs], dtype=bool)
    mean = (s0 + s1) / 2
    top = mean >= np.median(mean) if len(mean) else np.zeros(0, bool)
    # Reliability from the variances (steadier than τ on a few cells): the seeds' noise is half
    # the variance of their difference, the cells' own spread what the mean's variance has beyond
    # its share of noise; for Gaussian values τ = (2/π) arcsin(r), r the correlation of two seeds.
    noise = np.var(s0 - s1, ddof=1) / 2 if len(pairs) > 1 else float("nan")
    between = max(np.var(mean, ddof=1) - noise / 2, 0.0) if len(pairs) > 1 else float("nan")
    r = between / (between + noise) if between + noise > 0 else float("nan")
    return {
        "protocol": name,
        "cells": len(pairs),
        "tau_all": kendall(s0, s1),
        "tau_valid": kendall(s0[valid], s1[valid]),
        "tau_top_half": kendall(s0[top], s1[top]),
        "diff_sd": float(np.std(s0 - s1, ddof=1)) if len(pairs) > 1 else float("nan"),
        "cell_sd": float(np.sqrt(between)),
        "tau_predicted": float(2 / np.pi * np.arcsin(r)),
        # Validity, not reliability: does the short protocol order cells as NB201's 200-epoch
        # CIFAR-10 training does? (A protocol can be reproducible and still measure the wrong thing.)
        "tau_nb201": kendall(mean, [table.lookup(a)["cifar10"] for a in archs]) if table is not None else float("nan"),
        "valid_range": (float(mean[valid].min()), float(mean[valid].max())) if valid.any() else None,
        "seconds_per_training": float(np.mean([r["seconds"] for r in rows])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", action="append", required=True, help="name:key=value,... (retrain section keys)")
    parser.add_argument("--cells", type=int, default=24)
    parser.add_argument("--cell-seed", type=int, default=1)
    parser.add_argument("--log", type=Path, default=DEFAULT_LOG)
    parser.add_argument("--record", action="store_true", help="append the summary to benchmarks/RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    protocols = [parse_protocol(p) for p in args.protocol]
    cells = sample_cells(args.cells, args.cell_seed)
    data = load_dataset("fashion-mnist")
    split = split_for(data, DataConfig(split_seed=0, subset_per_half=None))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    done = done_runs(args.log)
    started = time.perf_counter()
    for name, settings in protocols:
        for i, arch in enumerate(cells):
            for seed in (0, 1):
                if (name, arch, seed) in done:
                    continue
                acc, seconds = train(data, split, arch, settings, seed)
                row = {"protocol": name, "settings": settings, "arch": arch, "seed": seed, "accuracy": acc, "seconds": seconds}
                with open(args.log, "a") as f:
                    f.write(json.dumps(row) + "\n")
                done[(name, arch, seed)] = row
                print(f"{name} cell {i + 1}/{len(cells)} seed {seed}: {acc:.2f}% in {seconds:.1f} s", flush=True)
    lines = [
        "| protocol | settings | cells | τ all | τ valid | τ top half | τ from variances | sd of seed difference | sd of cells | "
        "valid cells span | τ vs NB201 C-10 | s / training |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    table = Nb201Table.from_env()
    for name, settings in protocols:
        s = summarize(name, [r for (p, a, _), r in done.items() if p == name and a in cells], table)
        span = f"{s['valid_range'][0]:.1f}–{s['valid_range'][1]:.1f}" if s["valid_range"] else "–"
        lines.append(
            f"| {name} | {', '.join(f'{k}={v}' for k, v in settings.items())} | {s['cells']} | {s['tau_all']:.2f} | "
            f"{s['tau_valid']:.2f} | {s['tau_top_half']:.2f} | {s['tau_predicted']:.2f} | {s['diff_sd']:.2f} | {s['cell_sd']:.2f} | "
            f"{span} | {s['tau_nb201']:.2f} | {s['seconds_per_training']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        append_result(
            f"## table_protocol — {datetime.now().isoformat(timespec='seconds')}\n\n"
            f"machine {platform.node()} ({platform.machine()}, {torch.get_num_threads()} torch thread), torch "
            f"{torch.__version__}, CPU; {args.cells} NB201 cells drawn uniformly (seed {args.cell_seed}), each trained "
            f"from scratch with seeds 0 and 1 on Fashion-MNIST (split seed 0), scored on the whole test set (10,000); "
            f"common settings {BASE}; this run {time.perf_counter() - started:.0f} s\n\n{table}\n"
        )


if __name__ == "__main__":
    main()

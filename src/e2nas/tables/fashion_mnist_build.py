"""Build the Fashion-MNIST ground-truth table (e2nas.tables.fashion_mnist): train its missing cells.

Every cell is retrained from scratch under the table's protocol with both seeds and its row is
written at once, so a kill loses at most the cell in progress, and a rerun resumes from the CSV
itself: the table can grow across days and machines.

    python -m e2nas.tables.fashion_mnist_build build --cells 200 [--device cuda]
    python -m e2nas.tables.fashion_mnist_build summary
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from e2nas import spaces
from e2nas.tables.fashion_mnist import (
    COLUMNS,
    DATASET,
    EXTRA_COLUMNS,
    EXTRA_SEEDS,
    HERE,
    PROTOCOL_JSON,
    SEEDS,
    SPACE,
    TABLE_CSV,
    GroundTruthError,
    GroundTruthTable,
    Protocol,
    read_rows,
    table_cells,
    write_rows,
)


def retrain_config(protocol: Protocol):
    """The protocol's retrain settings as the retrain stage's config."""
    return spaces.get(SPACE).config("retrain", protocol.retrain)


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        # the library's sources, not the table files this build itself is writing
        dirty = subprocess.run(["git", "status", "--porcelain", "--", ":(top)src", ":(top,exclude)src/e2nas/tables/fashion_mnist_nb201.*"],
                               cwd=HERE, capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train_cell(data, split, arch: str, cfg, seed: int, device) -> tuple[float, float]:
    """(test accuracy %, training seconds) of one cell trained under the protocol with `seed`."""
    from e2nas.retrain import run_retrain

    with tempfile.TemporaryDirectory() as tmp:
        metrics, _ = run_retrain(data, split, arch, cfg, seed, f"{tmp}/metrics.json", f"{tmp}/ckpt.pt",
                                 device=device, progress=False, space=SPACE)
    return metrics["test_accuracy"], metrics["train_seconds"]


def build(
    protocol: Protocol, csv: Path = TABLE_CSV, meta: Path = PROTOCOL_JSON, device: str = "cpu", progress: bool = True, data=None,
    worker: tuple[int, int] = (0, 1),
) -> GroundTruthTable:
    """Train every cell of `protocol` missing from the CSV (both seeds, then the row is written) and
    update the provenance. A kill loses at most the cell in progress; rerunning resumes.
    `data`: the dataset (default: Fashion-MNIST, loaded by `e2nas.data`). `worker` (k, n): train
    only the missing cells at positions k, k + n, k + 2n, ... of the table, so that n processes (cores, machines sharing the
    folder) build one table together; each adds its rows under a file lock to what is there."""
    import json

    import torch
    from filelock import FileLock

    from e2nas.checkpoint import write_json
    from e2nas.data import DataConfig, load_dataset, split_for
    from e2nas.progress import progress as progress_bar

    k, n = worker
    if not 0 <= k < n:
        raise GroundTruthError(f"--worker {k}/{n}: need 0 <= k < n")
    lock = FileLock(f"{csv}.lock")
    read = lambda: read_rows(csv) if csv.is_file() else pd.DataFrame(columns=list(COLUMNS))
    with lock:
        provenance = json.loads(meta.read_text()) if meta.is_file() else {}
        if provenance and provenance["protocol"] != json.loads(json.dumps(asdict(protocol))):
            raise GroundTruthError(
                f"{meta} was built under another protocol ({provenance['protocol']}); a table holds one protocol: "
                f"build into other files (--csv, --json) or delete these to start over"
            )
        done = set(read()["arch"])
    # by position in the table, not in what is missing: workers starting at different moments still split it
    todo = [a for i, a in enumerate(table_cells(protocol)) if i % n == k and a not in done]
    data = load_dataset(DATASET) if data is None else data
    split = split_for(data, DataConfig(split_seed=protocol.split_seed, subset_per_half=None))
    cfg = retrain_config(protocol)
    fresh = {"protocol": asdict(protocol), "dataset": DATASET, "seeds": list(SEEDS), "train_seconds": 0.0,
             "test_images": len(data.test_y), "revisions": [], "machines": []}
    revision, machine = git_revision(), f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, {device}, torch {torch.__version__})"

    def record(row: dict | None, seconds: float) -> pd.DataFrame:
        """Add `row` to the table as it is on disk now, with the provenance (under the lock)."""
        with lock:
            frame = read()
            if row is not None and row["arch"] not in set(frame["arch"]):
                frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
                write_rows(frame, csv)
            provenance = json.loads(meta.read_text()) if meta.is_file() else fresh
            for key, value in (("revisions", revision), ("machines", machine)):
                if value not in provenance[key]:
                    provenance[key].append(value)
            provenance["train_seconds"] += seconds
            provenance["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            provenance["rows"] = len(frame)
            provenance["noise_ceiling"] = GroundTruthTable(frame, provenance).noise_ceiling() if len(frame) > 2 else None
            write_json(provenance, meta)
            return frame

    frame = record(None, 0.0)
    bar = progress_bar(todo, desc=f"ground-truth table (worker {k}/{n})", unit="cell", disable=not progress, mininterval=10)
    for arch in bar:
        row, seconds = {"arch": arch}, 0.0
        for seed in SEEDS:
            row[f"fashion_mnist_seed{seed}"], s = train_cell(data, split, arch, cfg, seed, device)
            seconds += s
        frame = record(row, seconds)
        bar.set_postfix(rows=len(frame), last=f"{row['fashion_mnist_seed0']:.1f}/{row['fashion_mnist_seed1']:.1f}")
    return GroundTruthTable.load(csv, meta)


def extend(top: int = 50, csv: Path = TABLE_CSV, meta: Path = PROTOCOL_JSON, device: str = "cpu", progress: bool = True,
           data=None) -> GroundTruthTable:
    """Train the `top` cells with the highest mean (seeds 0 and 1) once more per extra seed (2 and 3), under the
    table's own protocol, filling columns fashion_mnist_seed2/3 (empty elsewhere). Resumes from the CSV: a
    kill loses at most the training in progress."""
    import json

    from filelock import FileLock

    from e2nas.checkpoint import write_json
    from e2nas.data import DataConfig, load_dataset, split_for
    from e2nas.progress import progress as progress_bar

    table = GroundTruthTable.load(csv, meta)
    protocol = table.protocol
    best = table.mean().nlargest(top).index.tolist()
    data = load_dataset(DATASET) if data is None else data
    split = split_for(data, DataConfig(split_seed=protocol.split_seed, subset_per_half=None))
    cfg = retrain_config(protocol)
    lock = FileLock(f"{csv}.lock")
    todo = [(a, seed, col) for a in best for seed, col in zip(EXTRA_SEEDS, EXTRA_COLUMNS)]
    for arch, seed, col in progress_bar(todo, desc=f"seeds {EXTRA_SEEDS} of the best {top} cells", disable=not progress,
                                        mininterval=10):
        with lock:
            frame = read_rows(csv)
        if col in frame and frame.loc[frame["arch"] == arch, col].notna().all():
            continue
        accuracy, seconds = train_cell(data, split, arch, cfg, seed, device)
        with lock:
            frame = read_rows(csv)
            for c in EXTRA_COLUMNS:
                if c not in frame:
                    frame[c] = float("nan")
            frame.loc[frame["arch"] == arch, col] = accuracy
            write_rows(frame, csv)
            provenance = json.loads(meta.read_text())
            provenance["train_seconds"] += seconds
            provenance["extra_seeds"] = {"seeds": list(EXTRA_SEEDS), "cells": f"the {top} cells with the highest mean of seeds 0 and 1"}
            provenance["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            provenance["noise_ceiling"] = GroundTruthTable(frame, provenance).noise_ceiling()
            write_json(provenance, meta)
    return GroundTruthTable.load(csv, meta)


def summary_text(table: GroundTruthTable, nb201=None) -> str:
    """The table in words: its size, noise ceiling (and the best cells' over four seeds), agreement with NB201."""
    c = table.noise_ceiling()
    lines = [f"{c['cells']} cells, each trained twice under one protocol; noise ceiling (Kendall τ between the two seeds): "
             f"{c['tau_all']:.2f} over all cells, {c['tau_top_half']:.2f} over the better half; one training differs from "
             f"the other by {c['seed_difference_sd']:.2f} points (sd)"]
    four = c.get("four_seeds")
    if four:
        lines.append(f"the best {four['cells']} cells, trained four times: τ {four['tau_single_pairs_mean']:.2f} between single "
                     f"trainings (mean over the 6 pairs), {four['tau_two_vs_two']:.2f} between the means of two and two; "
                     f"seed sd {four['seed_sd']:.2f} points")
    if nb201 is not None:
        a = table.nb201_agreement(nb201)
        lines.append(f"against NB201's CIFAR-10 accuracies over {a['cells']} cells: τ {a['kendall_tau']:.2f}, ρ {a['spearman_rho']:.2f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2nas.tables.fashion_mnist_build", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the cells missing from the table (resumes from the CSV)")
    b.add_argument("--cells", type=int, default=Protocol.cells, help="cells drawn uniformly (the references come on top)")
    b.add_argument("--cell-seed", type=int, default=Protocol.cell_seed)
    b.add_argument("--device", default="cpu")
    b.add_argument("--worker", default="0/1", metavar="K/N", help="this process trains the missing cells at positions K, K+N, K+2N, ... "
                   "(start N of them, K = 0..N-1, to build with N cores or machines)")
    b.add_argument("--csv", type=Path, default=TABLE_CSV)
    b.add_argument("--json", type=Path, default=PROTOCOL_JSON)
    e = sub.add_parser("extend", help="train the best cells twice more (seeds 2 and 3; resumes from the CSV)")
    e.add_argument("--top", type=int, default=50, help="cells with the highest mean of seeds 0 and 1")
    e.add_argument("--device", default="cpu")
    e.add_argument("--csv", type=Path, default=TABLE_CSV)
    e.add_argument("--json", type=Path, default=PROTOCOL_JSON)
    s = sub.add_parser("summary", help="size, noise ceiling and agreement with NB201's CIFAR-10 table")
    s.add_argument("--csv", type=Path, default=TABLE_CSV)
    s.add_argument("--json", type=Path, default=PROTOCOL_JSON)
    args = parser.parse_args(argv)
    if args.command == "build":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        worker = tuple(int(v) for v in args.worker.split("/"))
        table = build(Protocol(cells=args.cells, cell_seed=args.cell_seed), args.csv, args.json, args.device, worker=worker)
    elif args.command == "extend":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        table = extend(args.top, args.csv, args.json, args.device)
    else:
        table = GroundTruthTable.load(args.csv, args.json)
    from e2nas.tables.nb201 import Nb201Table

    print(summary_text(table, Nb201Table.from_env()))


if __name__ == "__main__":
    main()

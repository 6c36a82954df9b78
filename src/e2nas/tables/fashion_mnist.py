"""The ground truth on the search data: stand-alone Fashion-MNIST test accuracies of NB201 cells.

The searches here run on Fashion-MNIST, while NAS-Bench-201's table measured its cells on
CIFAR-10: a transfer proxy of unknown validity. This table trains a seeded uniform sample of
NB201 cells (plus the benchmark's best and all-skip cells) from scratch on Fashion-MNIST under
one stated protocol, twice (training seeds 0 and 1), and scores each on the whole test set.
Its noise ceiling is the Kendall τ between the two seed columns: no ranking of cells can agree
with the table better than the table agrees with itself.

The CSV (`arch,fashion_mnist_seed0,fashion_mnist_seed1`, accuracies in %) and its protocol and
provenance (JSON) ship with the package. `build` regenerates it and resumes from the CSV
itself, so the table can grow across days and machines:

    python -m e2nas.tables.fashion_mnist build --cells 200 [--device cuda]
    python -m e2nas.tables.fashion_mnist summary
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from e2nas import spaces

HERE = Path(__file__).resolve().parent
TABLE_CSV = HERE / "fashion_mnist_nb201.csv"
PROTOCOL_JSON = HERE / "fashion_mnist_nb201.json"
DATASET = "fashion-mnist"
SEEDS = (0, 1)
COLUMNS = ("arch", *(f"fashion_mnist_seed{s}" for s in SEEDS))
# The protocol, sized by benchmarks/table_protocol.py (benchmarks/RESULTS.md): NB201's skeleton at
# C=8, N=1; 3 epochs over the first 8,000 training images of the split (seed 0, both halves),
# per-step cosine from lr 0.05 after a 0.2-epoch warm-up, crop + flip; the whole test set. Lower
# learning rates agree better between seeds but rank cells against NB201's full training (they
# measure early learning speed), fewer epochs rank them at random: measured, not guessed.
DEFAULT_RETRAIN = {
    "epochs": 3, "batch_size": 64, "lr": 0.05, "lr_min": 0.0, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "grad_clip": 5.0, "channels": 8, "cells_per_stage": 1, "train_subset": 8000, "test_subset": None,
    "lr_schedule": "step", "warmup_epochs": 0.2, "augment": True,
}


class GroundTruthError(ValueError):
    """A ground-truth table file that cannot be used; the message names the file and the fix."""


@dataclass
class Protocol:
    """How every cell of the table is trained: the retrain settings, the data, the cells."""

    retrain: dict = field(default_factory=lambda: dict(DEFAULT_RETRAIN))  # RetrainConfig fields
    split_seed: int = 0  # the split whose two halves (their first train_subset images) train the cells
    cells: int = 200  # cells drawn uniformly from the NB201 space ...
    cell_seed: int = 0  # ... with this seed (duplicates dropped), then the reference cells
    references: tuple[str, ...] = ("nb201-best", "nb201-all-skip")

    def retrain_config(self):
        from e2nas.retrain import RetrainConfig

        return RetrainConfig(**self.retrain)


def table_cells(protocol: Protocol) -> list[str]:
    """The table's cells in order: the seeded uniform sample (first draw of each cell), then the references."""
    import torch

    from e2nas.spaces.nb201.references import REFERENCES

    nb201 = spaces.get("nb201")
    drawn = [nb201.format(c) for c in nb201.sample(protocol.cells, torch.Generator().manual_seed(protocol.cell_seed))]
    return list(dict.fromkeys(drawn + [REFERENCES[name].arch for name in protocol.references]))


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=HERE, capture_output=True, text=True, timeout=10)
        return (out.stdout.strip() or "unknown") + ("+changes" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class GroundTruthTable:
    """The table: per cell its two seeds' accuracies; percentiles, look-ups and the noise ceiling."""

    def __init__(self, frame: pd.DataFrame, provenance: dict, path: str = "<memory>"):
        self.frame, self.provenance, self.path = frame.reset_index(drop=True), provenance, path
        self._index = {arch: i for i, arch in enumerate(self.frame["arch"])}
        self._pooled = np.sort(self.frame[list(COLUMNS[1:])].to_numpy().ravel())

    @classmethod
    def load(cls, csv: str | os.PathLike = TABLE_CSV, meta: str | os.PathLike = PROTOCOL_JSON) -> GroundTruthTable:
        csv, meta = Path(csv), Path(meta)
        for path in (csv, meta):
            if not path.is_file():
                raise GroundTruthError(f"ground-truth table file {path} does not exist; rebuild it: python -m e2nas.tables.fashion_mnist build")
        frame = read_rows(csv)
        import json

        provenance = json.loads(meta.read_text())
        return cls(frame, provenance, str(csv))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def protocol(self) -> Protocol:
        return Protocol(**{**self.provenance["protocol"], "references": tuple(self.provenance["protocol"]["references"])})

    def lookup(self, arch) -> tuple[float, float] | None:
        """(seed 0, seed 1) accuracy of a cell (text or op indices), None when the table lacks it."""
        i = self._index.get(spaces.get("nb201").canonical_text(arch))
        return None if i is None else tuple(float(self.frame.loc[i, c]) for c in COLUMNS[1:])

    def mean(self) -> pd.Series:
        """The cells' accuracy, the mean of the two seeds, indexed by cell."""
        return self.frame.set_index("arch")[list(COLUMNS[1:])].mean(axis=1)

    def percentile(self, accuracy: float) -> float:
        """Percentage of the table's single trainings (every cell, both seeds) scoring at most `accuracy`.

        A found cell retrained once under the table's protocol is one such training, so this
        places it among the table's cells on the same footing."""
        return 100.0 * np.searchsorted(self._pooled, accuracy, side="right") / len(self._pooled)

    def noise_ceiling(self) -> dict:
        """Kendall τ between the seed columns, over every cell and over the top half (by the mean)."""
        from scipy.stats import kendalltau

        s0, s1 = (self.frame[c].to_numpy() for c in COLUMNS[1:])
        mean = (s0 + s1) / 2
        top = mean >= np.median(mean)
        return {
            "cells": len(self.frame),
            "tau_all": float(kendalltau(s0, s1).statistic),
            "tau_top_half": float(kendalltau(s0[top], s1[top]).statistic),
            "seed_difference_sd": float(np.std(s0 - s1, ddof=1)),
        }

    def nb201_agreement(self, nb201_table) -> dict:
        """Kendall τ and Spearman ρ between this table's accuracy (mean of seeds) and NB201's CIFAR-10 accuracy
        over this table's cells: how far NB201's table can stand in for Fashion-MNIST here."""
        from scipy.stats import kendalltau, spearmanr

        mean = self.mean()
        cifar = np.array([nb201_table.lookup(a)["cifar10"] for a in mean.index])
        return {"cells": len(mean), "kendall_tau": float(kendalltau(mean.to_numpy(), cifar).statistic),
                "spearman_rho": float(spearmanr(mean.to_numpy(), cifar).statistic)}


def read_rows(csv: Path) -> pd.DataFrame:
    """The CSV's rows, checked: the columns, one row per canonical NB201 cell, accuracies in [0, 100]."""
    try:
        frame = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"ground-truth table {csv} is not a readable CSV ({exc}); restore it from git or rebuild it") from None
    if tuple(frame.columns) != COLUMNS:
        raise GroundTruthError(f"ground-truth table {csv} has columns {list(frame.columns)}, expected {list(COLUMNS)}")
    nb201 = spaces.get("nb201")
    try:
        canonical = [nb201.canonical_text(a) for a in frame["arch"]]
    except ValueError as exc:
        raise GroundTruthError(f"ground-truth table {csv} has a bad cell: {exc}") from None
    try:
        values = frame[list(COLUMNS[1:])].to_numpy(dtype=float)
    except ValueError:
        raise GroundTruthError(f"ground-truth table {csv}: every accuracy must be a percentage in [0, 100]") from None
    if canonical != list(frame["arch"]) or len(set(canonical)) != len(canonical):
        raise GroundTruthError(f"ground-truth table {csv}: cells must be canonical NB201 strings, each once")
    if not np.isfinite(values).all() or (values < 0).any() or (values > 100).any():
        raise GroundTruthError(f"ground-truth table {csv}: every accuracy must be a percentage in [0, 100]")
    return frame


def write_rows(frame: pd.DataFrame, csv: Path) -> None:
    """The rows through a temporary file and a rename; accuracies with 2 decimals (a 10,000-image test set's resolution)."""
    tmp = csv.with_name(f".{csv.name}.tmp{os.getpid()}")
    frame.astype({c: float for c in COLUMNS[1:]}).to_csv(tmp, index=False, float_format="%.2f")
    os.replace(tmp, csv)


def train_cell(data, split, arch: str, cfg, seed: int, device) -> tuple[float, float]:
    """(test accuracy %, training seconds) of one cell trained under the protocol with `seed`."""
    from e2nas.retrain import run_retrain

    with tempfile.TemporaryDirectory() as tmp:
        metrics, _ = run_retrain(data, split, arch, cfg, seed, f"{tmp}/metrics.json", f"{tmp}/ckpt.pt",
                                 device=device, progress=False, space="nb201")
    return metrics["test_accuracy"], metrics["train_seconds"]


def build(
    protocol: Protocol, csv: Path = TABLE_CSV, meta: Path = PROTOCOL_JSON, device: str = "cpu", progress: bool = True, data=None
) -> GroundTruthTable:
    """Train every cell of `protocol` missing from the CSV (both seeds, then the row is written) and
    update the provenance. A kill loses at most the cell in progress; rerunning resumes.
    `data`: the dataset (default: Fashion-MNIST, loaded by `e2nas.data`)."""
    import json

    import torch
    from tqdm import tqdm

    from e2nas.checkpoint import write_json
    from e2nas.data import DataConfig, load_dataset, split_for

    provenance = json.loads(meta.read_text()) if meta.is_file() else {}
    if provenance and provenance["protocol"] != json.loads(json.dumps(asdict(protocol))):
        raise GroundTruthError(
            f"{meta} was built under another protocol ({provenance['protocol']}); a table holds one protocol: "
            f"build into other files (--csv, --json) or delete these to start over"
        )
    frame = read_rows(csv) if csv.is_file() else pd.DataFrame(columns=list(COLUMNS))
    cells = table_cells(protocol)
    todo = [a for a in cells if a not in set(frame["arch"])]
    data = load_dataset(DATASET) if data is None else data
    split = split_for(data, DataConfig(split_seed=protocol.split_seed, subset_per_half=None))
    cfg = protocol.retrain_config()
    provenance = provenance or {"protocol": asdict(protocol), "dataset": DATASET, "seeds": list(SEEDS), "train_seconds": 0.0,
                                "test_images": len(data.test_y), "revisions": [], "machines": []}
    revision, machine = git_revision(), f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, {device}, torch {torch.__version__})"
    for key, value in (("revisions", revision), ("machines", machine)):
        if value not in provenance[key]:
            provenance[key].append(value)
    bar = tqdm(todo, desc="ground-truth table", unit="cell", disable=not progress, ascii=True, mininterval=10)
    for arch in bar:
        row, seconds = {"arch": arch}, 0.0
        for seed in SEEDS:
            row[f"fashion_mnist_seed{seed}"], s = train_cell(data, split, arch, cfg, seed, device)
            seconds += s
        frame = pd.concat([frame, pd.DataFrame([row])], ignore_index=True)
        write_rows(frame, csv)
        provenance["train_seconds"] += seconds
        provenance["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        provenance["rows"] = len(frame)
        write_json(provenance, meta)
        bar.set_postfix(rows=len(frame), last=f"{row['fashion_mnist_seed0']:.1f}/{row['fashion_mnist_seed1']:.1f}")
    table = GroundTruthTable(read_rows(csv), provenance, str(csv))
    provenance["noise_ceiling"] = table.noise_ceiling() if len(table) > 2 else None
    write_json(provenance, meta)
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m e2nas.tables.fashion_mnist", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the cells missing from the table (resumes from the CSV)")
    b.add_argument("--cells", type=int, default=Protocol.cells, help="cells drawn uniformly (the references come on top)")
    b.add_argument("--cell-seed", type=int, default=Protocol.cell_seed)
    b.add_argument("--device", default="cpu")
    b.add_argument("--csv", type=Path, default=TABLE_CSV)
    b.add_argument("--json", type=Path, default=PROTOCOL_JSON)
    s = sub.add_parser("summary", help="size, noise ceiling and agreement with NB201's CIFAR-10 table")
    s.add_argument("--csv", type=Path, default=TABLE_CSV)
    s.add_argument("--json", type=Path, default=PROTOCOL_JSON)
    args = parser.parse_args(argv)
    if args.command == "build":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        table = build(Protocol(cells=args.cells, cell_seed=args.cell_seed), args.csv, args.json, args.device)
    else:
        table = GroundTruthTable.load(args.csv, args.json)
    print(f"{len(table)} cells; noise ceiling {table.noise_ceiling()}")
    from e2nas.tables.nb201 import Nb201Table

    nb201 = Nb201Table.from_env()
    if nb201 is not None:
        print(f"agreement with NB201 CIFAR-10: {table.nb201_agreement(nb201)}")


if __name__ == "__main__":
    main()

"""The ground truth on the search data: stand-alone Fashion-MNIST test accuracies of NB201 cells.

The searches here run on Fashion-MNIST, while NAS-Bench-201's table measured its cells on
CIFAR-10: a transfer proxy of unknown validity. This table trains a seeded uniform sample of
NB201 cells (plus the benchmark's best and all-skip cells) from scratch on Fashion-MNIST under
one stated protocol, twice (training seeds 0 and 1), and scores each on the whole test set.
Its noise ceiling is the Kendall τ between the two seed columns: no ranking of cells can agree
with the table better than the table agrees with itself.

The CSV (`arch,fashion_mnist_seed0,fashion_mnist_seed1`, accuracies in %) and its protocol and
provenance (JSON) ship with the package. This module reads them (stages that judge cells import
it); `e2nas.tables.fashion_mnist_build` trains the cells, so that only it runs the retrain code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from e2nas import spaces

HERE = Path(__file__).resolve().parent
TABLE_CSV = HERE / "fashion_mnist_nb201.csv"
PROTOCOL_JSON = HERE / "fashion_mnist_nb201.json"
DATASET = "fashion-mnist"
SPACE = "nb201"  # the space whose cells the table holds
SEEDS = (0, 1)
COLUMNS = ("arch", *(f"fashion_mnist_seed{s}" for s in SEEDS))
# Two more trainings of the table's best cells, where the ranking of good cells is decided (empty elsewhere):
# the percentiles and the mean stay those of seeds 0 and 1, every cell on the same footing.
EXTRA_SEEDS = (2, 3)
EXTRA_COLUMNS = tuple(f"fashion_mnist_seed{s}" for s in EXTRA_SEEDS)
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


SUBSETS = ("all", "tuning", "held-out")


def is_held_out(arch: str) -> bool:
    """Whether a table cell (its canonical text) is held out: regimes and defaults are chosen on the other
    ("tuning") cells only, and figures that claim a result are given on these."""
    import hashlib

    return int(hashlib.sha256(arch.encode()).hexdigest(), 16) % 2 == 1


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


def table_cells(protocol: Protocol) -> list[str]:
    """The table's cells in order: the seeded uniform sample (first draw of each cell), then the references."""
    import torch

    nb201 = spaces.get(SPACE)
    references = nb201.reference_cells()
    drawn = [nb201.format(c) for c in nb201.sample(protocol.cells, torch.Generator().manual_seed(protocol.cell_seed))]
    return list(dict.fromkeys(drawn + [references[name].arch for name in protocol.references]))


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
                raise GroundTruthError(f"ground-truth table file {path} does not exist; rebuild it: python -m e2nas.tables.fashion_mnist_build build")
        frame = read_rows(csv)
        import json

        provenance = json.loads(meta.read_text())
        return cls(frame, provenance, str(csv))

    space = SPACE  # the space whose cells it holds

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def protocol(self) -> Protocol:
        return Protocol(**{**self.provenance["protocol"], "references": tuple(self.provenance["protocol"]["references"])})

    def lookup(self, arch) -> tuple[float, float] | None:
        """(seed 0, seed 1) accuracy of a cell (text or op indices), None when the table lacks it."""
        i = self._index.get(spaces.get(SPACE).canonical_text(arch))
        return None if i is None else tuple(float(self.frame.loc[i, c]) for c in COLUMNS[1:])

    def subset(self, name: str) -> list[str]:
        """The table's cells of subset `name` (all, tuning, held-out), in the table's order."""
        if name not in SUBSETS:
            raise ValueError(f"ranking.subset must be one of {', '.join(SUBSETS)}, got {name!r}")
        cells = list(self.frame["arch"])
        return cells if name == "all" else [a for a in cells if is_held_out(a) == (name == "held-out")]

    def mean(self) -> pd.Series:
        """The cells' accuracy, the mean of the two seeds, indexed by cell."""
        return self.frame.set_index("arch")[list(COLUMNS[1:])].mean(axis=1)

    def percentile(self, accuracy: float) -> float:
        """Percentage of the table's single trainings (every cell, both seeds) scoring at most `accuracy`.

        A found cell retrained once under the table's protocol is one such training, so this
        places it among the table's cells on the same footing."""
        return 100.0 * np.searchsorted(self._pooled, accuracy, side="right") / len(self._pooled)

    def noise_ceiling(self) -> dict:
        """Kendall τ between the seed columns, over every cell and over the top half (by the mean); where the
        best cells have two more trainings (seeds 2 and 3), their ceiling over the four seeds too."""
        from itertools import combinations

        from scipy.stats import kendalltau

        s0, s1 = (self.frame[c].to_numpy() for c in COLUMNS[1:])
        mean = (s0 + s1) / 2
        top = mean >= np.median(mean)
        out = {
            "cells": len(self.frame),
            "tau_all": float(kendalltau(s0, s1).statistic),
            "tau_top_half": float(kendalltau(s0[top], s1[top]).statistic),
            "seed_difference_sd": float(np.std(s0 - s1, ddof=1)),
        }
        if all(c in self.frame for c in EXTRA_COLUMNS):
            four = self.frame.dropna(subset=list(EXTRA_COLUMNS))
            if len(four) > 2:
                seeds = [four[c].to_numpy() for c in (*COLUMNS[1:], *EXTRA_COLUMNS)]
                pairs = [float(kendalltau(a, b).statistic) for a, b in combinations(seeds, 2)]
                out["four_seeds"] = {
                    "cells": len(four),
                    "tau_single_pairs_mean": float(np.mean(pairs)),  # one training against another
                    # the mean of two trainings against the mean of the other two: what a 2-training table reaches
                    "tau_two_vs_two": float(kendalltau((seeds[0] + seeds[1]) / 2, (seeds[2] + seeds[3]) / 2).statistic),
                    "seed_sd": float(np.mean(np.std(np.stack(seeds), axis=0, ddof=1))),
                }
        return out

    def nb201_agreement(self, nb201_table) -> dict:
        """Kendall τ and Spearman ρ between this table's accuracy (mean of seeds) and NB201's CIFAR-10 accuracy
        over this table's cells: how far NB201's table can stand in for Fashion-MNIST here."""
        from scipy.stats import kendalltau, spearmanr

        mean = self.mean()
        cifar = np.array([nb201_table.lookup(a)["cifar10"] for a in mean.index])
        return {"cells": len(mean), "kendall_tau": float(kendalltau(mean.to_numpy(), cifar).statistic),
                "spearman_rho": float(spearmanr(mean.to_numpy(), cifar).statistic)}


def ground_truth_for(dataset: str) -> GroundTruthTable | None:
    """The shipped table when `dataset` is the one it measured, else None (there is no ground truth there)."""
    return GroundTruthTable.load() if dataset == DATASET else None


def read_rows(csv: Path) -> pd.DataFrame:
    """The CSV's rows, checked: the columns (seeds 2 and 3 optional, empty where a cell has no such
    training), one row per canonical NB201 cell, accuracies in [0, 100]."""
    try:
        frame = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        raise GroundTruthError(f"ground-truth table {csv} is not a readable CSV ({exc}); restore it from git or rebuild it") from None
    if tuple(frame.columns) not in (COLUMNS, COLUMNS + EXTRA_COLUMNS):
        raise GroundTruthError(f"ground-truth table {csv} has columns {list(frame.columns)}, expected {list(COLUMNS)} "
                               f"(and optionally {list(EXTRA_COLUMNS)})")
    extra = frame[[c for c in EXTRA_COLUMNS if c in frame]].to_numpy(dtype=float) if len(frame.columns) > len(COLUMNS) else None
    if extra is not None and ((extra[~np.isnan(extra)] < 0).any() or (extra[~np.isnan(extra)] > 100).any()):
        raise GroundTruthError(f"ground-truth table {csv}: every accuracy must be a percentage in [0, 100]")
    nb201 = spaces.get(SPACE)
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
    from e2nas.atomic import write_text

    write_text(csv, frame.astype({c: float for c in frame.columns if c != "arch"}).to_csv(index=False, float_format="%.2f"))

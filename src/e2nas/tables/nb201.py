"""The NAS-Bench-201 accuracy table: look up a cell's test accuracies and its rank in the space.

The table is a CSV `arch,cifar10,cifar100,imagenet16_120` (one row per cell, accuracies in %).
The package ships it (`nb201_test_accuracy.csv`, provenance in `nb201_test_accuracy.json`);
`E2NAS_NB201_TABLE` names another file instead (e.g. one written by `e2nas.tables.nb201_convert`
from the official benchmark files), or `none` to run without one (look-ups are then skipped
with a logged note).

A table is checked as it loads, like the ground-truth table: every accuracy finite and a
percentage in [0, 100] (a table of fractions, every value at most 1, is refused: a 93% cell
would sit at the top of it), one row per cell. A table of fewer than the space's 15,625 cells
loads with a warning ("partial table: N of 15,625 cells"): its look-ups work, but it gives no
percentiles or ranks, which would rank a cell among the cells it happens to hold.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from e2nas import spaces

log = logging.getLogger(__name__)


def _canonical(cell) -> str:
    """A cell (text or op indices) as NB201's canonical string; the NB201 space is imported on first use."""
    return spaces.get("nb201").canonical_text(cell)

ENV_VAR = "E2NAS_NB201_TABLE"
SHIPPED_TABLE = Path(__file__).resolve().parent / "nb201_test_accuracy.csv"
NO_TABLE = "none"
COLUMNS = ("cifar10", "cifar100", "imagenet16_120")
SPACE_CELLS = 5**6  # NB201's cells: 5 ops on each of 6 edges


def table_path() -> Path | None:
    """The NB201 table the stages use: $E2NAS_NB201_TABLE when set ('none': no table), else the shipped one."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return SHIPPED_TABLE
    return None if value.lower() == NO_TABLE else Path(value)


class TableError(ValueError):
    """An NB201 table file that cannot be used; the message names the file and the fix."""


class Nb201Table:
    def __init__(self, frame: pd.DataFrame, path: str = "<memory>"):
        self.path = path
        # Key by parsed cell so any spelling of a cell string finds its row.
        self.frame = frame.set_index("arch")
        self._sorted = {c: np.sort(frame[c].to_numpy()) for c in COLUMNS}
        self.complete = len(frame) == SPACE_CELLS  # the whole space: percentiles and ranks mean something

    @classmethod
    def load(cls, path: str | os.PathLike) -> Nb201Table:
        path = Path(path)
        if path.is_dir():
            raise TableError(f"NB201 table {path} is a folder, not a CSV file; point {ENV_VAR} at the .csv inside it")
        if not path.is_file():
            raise TableError(f"NB201 table {path} does not exist; fix {ENV_VAR} (unset: the shipped table; '{NO_TABLE}': none)")
        try:
            frame = pd.read_csv(path)
        except Exception as exc:
            raise TableError(f"NB201 table {path} is not a readable CSV ({exc})") from None
        missing = [c for c in ("arch", *COLUMNS) if c not in frame.columns]
        if missing:
            raise TableError(
                f"NB201 table {path} lacks columns {missing}; expected a CSV with header "
                f"'arch,{','.join(COLUMNS)}' (see the NAS-Bench-201 table README)"
            )
        try:
            frame["arch"] = [_canonical(a) for a in frame["arch"]]
            frame[list(COLUMNS)] = frame[list(COLUMNS)].astype(float)
        except ValueError as exc:
            raise TableError(f"NB201 table {path} has a bad row: {exc}") from None
        if frame.empty:
            raise TableError(f"NB201 table {path} has a header but no rows; regenerate it (python -m e2nas.tables.nb201_convert)")
        missing = frame[list(COLUMNS)].isna().any(axis=1)
        if missing.any():
            row = frame.index[missing][0]
            raise TableError(f"NB201 table {path}: row {row + 2} ({frame['arch'][row]}) has an empty or NaN accuracy; "
                             "every cell needs all three accuracies")
        values = frame[list(COLUMNS)].to_numpy()
        bad = ~np.isfinite(values) | (values < 0) | (values > 100)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise TableError(f"NB201 table {path}: row {row + 2} ({frame['arch'][row]}) has {COLUMNS[col]} = {values[row, col]}; "
                             "every accuracy must be a finite percentage in [0, 100]")
        if (values <= 1).all():
            raise TableError(f"NB201 table {path}: every accuracy is at most 1, so they are fractions, not percentages "
                             "(a 93% cell would sit above all of them); write them in % (times 100)")
        repeated = frame["arch"].duplicated()
        if repeated.any():
            raise TableError(f"NB201 table {path}: cell {frame['arch'][repeated].iloc[0]} appears more than once "
                             f"(rows {', '.join(str(i + 2) for i in frame.index[frame['arch'] == frame['arch'][repeated].iloc[0]])}); "
                             "keep one row per cell")
        if len(frame) < SPACE_CELLS:
            log.warning("NB201 table %s is a partial table: %s of %s cells; its cells' accuracies are looked up, "
                        "but it gives no percentiles or ranks", path, f"{len(frame):,}", f"{SPACE_CELLS:,}")
        return cls(frame[["arch", *COLUMNS]], str(path))

    @classmethod
    def from_env(cls) -> Nb201Table | None:
        """The table in use (`table_path`), or None (with a logged note) when $E2NAS_NB201_TABLE is 'none'."""
        path = table_path()
        if path is None:
            log.warning("no NB201 table: %s=%s, so table accuracies are skipped", ENV_VAR, NO_TABLE)
            return None
        return cls.load(path)

    def __len__(self) -> int:
        return len(self.frame)

    def lookup(self, arch: str | tuple) -> dict | None:
        """{cifar10, cifar100, imagenet16_120} of a cell (string or op tuple); None if absent."""
        key = _canonical(arch)
        if key not in self.frame.index:
            return None
        row = self.frame.loc[key]
        return {c: float(row[c]) for c in COLUMNS}

    def percentile(self, value: float, column: str = "cifar10") -> float:
        """Percentage of the space's cells scoring at most `value` on `column` (NaN for a partial table)."""
        if not self.complete:
            return math.nan
        col = self._sorted[column]
        return 100.0 * np.searchsorted(col, value, side="right") / len(col)

    def rank(self, value: float, column: str = "cifar10") -> int | None:
        """1-based rank of `value` among the space's cells (1 = best); None for a partial table."""
        if not self.complete:
            return None
        return int(np.sum(self._sorted[column] > value)) + 1

    def stats(self, column: str = "cifar10") -> dict:
        col = self._sorted[column]
        return {"mean": float(col.mean()), "best": float(col[-1]), "worst": float(col[0])}

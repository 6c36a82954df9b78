"""benchmarks/study.py --recorded: a study run over several sessions adds the seeds its results lack
from the committed CSV, and checks every seed it reran against that record."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import study

    yield study
    sys.path.remove(str(REPO / "benchmarks"))


def rows(study, seeds, methods=("e2nas", "params"), percentile=50.0, arch="|a|"):
    frame = pd.DataFrame([{c: None for c in study.COLUMNS} | {"method": m, "seed": s, "arch": arch,
                                                             "ground_truth_percentile": percentile + s}
                          for m in methods for s in seeds], columns=study.COLUMNS)
    return frame.astype({"distinct_cells_last_epoch": "Int64"})


def test_recorded_seeds_the_run_lacks_are_added_in_method_order(study):
    merged, notes = study.merge_recorded(rows(study, [2, 3]), rows(study, [0, 1, 2]))
    assert sorted(set(merged["seed"])) == [0, 1, 2, 3]
    assert len(merged) == 8  # seed 2 once per method, not twice
    assert list(merged["method"]) == ["e2nas"] * 4 + ["params"] * 4  # study.ORDER, then seed
    assert list(merged["seed"][:4]) == [0, 1, 2, 3]
    assert "2 of 2 method-seed rows rerun here reproduce their recorded row (seeds 2" in notes[0]
    assert "seeds 0, 1 from the record (4 rows" in notes[-1]


def test_a_rerun_seed_that_differs_from_its_record_is_named_and_the_fresh_row_kept(study):
    fresh = rows(study, [0])
    recorded = rows(study, [0]).assign(arch="|b|")
    recorded.loc[recorded["method"] == "params", "arch"] = "|a|"
    merged, notes = study.merge_recorded(fresh, recorded)
    assert list(merged["arch"]) == ["|a|", "|a|"]
    assert notes[0].startswith("1 of 2 method-seed rows")
    assert any(n.startswith("e2nas seed 0 differs from its record: `|a|`") and "`|b|`" in n for n in notes)


def test_a_percentile_off_its_record_counts_as_a_difference(study):
    _, notes = study.merge_recorded(rows(study, [0], percentile=50.0), rows(study, [0], percentile=50.5))
    assert notes[0].startswith("0 of 2")


def test_each_judges_favourite_is_reported_per_seed_and_averaged(study, tmp_path):
    """What a perfect optimiser under each supernet would find among the ranked cells: the judge's half of a shortfall."""
    import json

    from e2nas import layout

    results = tmp_path / "study-nb201"
    for seed, (warmup, darts) in {1: (57.0, 90.0), 2: (71.0, 52.0)}.items():
        file = Path(layout.path("ranking", run=results.name, root=str(tmp_path), dataset="fashion-mnist", space="nb201",
                                seed=seed))
        file.parent.mkdir(parents=True, exist_ok=True)
        entry = lambda f: {"favourite_percentile": f, "top10_precision": 0.2, "parameter_free_top10": 0.5}  # noqa: E731
        file.write_text(json.dumps({"cells": ["|a|"] * 97, "supernets": {"warm-up": entry(warmup), "darts": entry(darts)}}))
    lines = study.judge_favourites(results)
    assert "97 ranked cells" in lines[1]
    assert "| warm-up | 2 | 64.0 (1: 57, 2: 71) | 0.20 | 0.50 |" in lines
    assert "| darts | 2 | 71.0 (1: 90, 2: 52) | 0.20 | 0.50 |" in lines
    assert study.judge_favourites(tmp_path / "empty") == []

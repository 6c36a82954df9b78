"""Two more trainings (seeds 2 and 3) of the ground-truth table's best cells: the build, its resume, the loaders,
and the four-seed noise ceiling of those cells."""

from __future__ import annotations

import pytest
import torch

from e2nas.tables import fashion_mnist as gt
from e2nas.tables import fashion_mnist_build as builder
from tables.test_fashion_mnist_table import tiny_data, tiny_protocol

torch.set_num_threads(1)


def test_extend_trains_the_best_cells_twice_more_resumes_and_the_loaders_read_it(tmp_path, monkeypatch):
    csv, meta = tmp_path / "t.csv", tmp_path / "t.json"
    data = tiny_data()
    builder.build(tiny_protocol(cells=6), csv, meta, progress=False, data=data)
    base = gt.GroundTruthTable.load(csv, meta)
    best = base.mean().nlargest(3).index.tolist()
    trained = []
    real = builder.train_cell
    monkeypatch.setattr(builder, "train_cell", lambda *a, **k: trained.append((a[2], a[4])) or real(*a, **k))
    table = builder.extend(3, csv, meta, progress=False, data=data)
    assert sorted(trained) == sorted((a, s) for a in best for s in gt.EXTRA_SEEDS)
    frame = table.frame.set_index("arch")
    assert frame.loc[best, list(gt.EXTRA_COLUMNS)].notna().all().all()
    assert frame.drop(index=best)[list(gt.EXTRA_COLUMNS)].isna().all().all()  # empty elsewhere
    # Percentiles and the mean stay those of seeds 0 and 1: every cell on the same footing.
    assert table.mean().equals(base.mean()) and table.percentile(50.0) == base.percentile(50.0)
    four = table.noise_ceiling()["four_seeds"]
    assert four["cells"] == 3 and -1 <= four["tau_two_vs_two"] <= 1
    assert "best 3 cells, trained four times" in builder.summary_text(table)
    trained.clear()
    builder.extend(3, csv, meta, progress=False, data=data)  # everything is there: nothing retrains
    assert trained == []


def test_an_extra_seed_out_of_range_is_refused(tmp_path):
    csv, meta = tmp_path / "t.csv", tmp_path / "t.json"
    builder.build(tiny_protocol(cells=2), csv, meta, progress=False, data=tiny_data())
    frame = gt.read_rows(csv)
    frame["fashion_mnist_seed2"], frame["fashion_mnist_seed3"] = 140.0, float("nan")
    frame.to_csv(csv, index=False)
    with pytest.raises(gt.GroundTruthError, match="percentage"):
        gt.read_rows(csv)

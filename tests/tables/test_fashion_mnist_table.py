"""The ground-truth table: its shipped rows and protocol, the build and its resume, look-ups and the noise ceiling."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from e2nas.data import ImageData
from e2nas.spaces import nb201
from e2nas.spaces.nb201.references import REFERENCES
from e2nas.tables import fashion_mnist as gt
from e2nas.tables import fashion_mnist_build as builder

torch.set_num_threads(1)


def tiny_protocol(**kw) -> gt.Protocol:
    retrain = {**gt.DEFAULT_RETRAIN, "epochs": 1, "channels": 2, "train_subset": 64, "batch_size": 32}
    return gt.Protocol(**{"retrain": retrain, "cells": 3, "cell_seed": 4, **kw})


def tiny_data() -> ImageData:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(160, 1, 8, 8, generator=g), torch.randint(10, (160,), generator=g)
    return ImageData("fashion-mnist", 10, 1, 8, x[:128], y[:128], x[128:], y[128:], augment=True, pad=1)


# ---------------------------------------------------------------- the shipped table


def test_the_shipped_table_has_its_cells_both_seeds_and_its_protocol():
    table = gt.GroundTruthTable.load()
    frame, protocol = table.frame, table.protocol
    assert len(frame) >= 200 and frame["arch"].is_unique
    assert all(nb201.format_arch(nb201.parse_arch(a)) == a for a in frame["arch"])
    values = frame[list(gt.COLUMNS[1:])]
    assert values.notna().all().all() and ((values >= 0) & (values <= 100)).all().all()
    assert set(frame["arch"]) == set(gt.table_cells(protocol))  # the drawn cells and the references, nothing else
    assert {REFERENCES[name].arch for name in protocol.references} <= set(frame["arch"])
    meta = table.provenance
    for key in ("dataset", "seeds", "test_images", "train_seconds", "revisions", "machines", "noise_ceiling"):
        assert meta[key] not in (None, [], ""), key
    assert meta["test_images"] == 10000 and meta["protocol"]["retrain"]["test_subset"] is None
    assert -1 <= meta["noise_ceiling"]["tau_all"] <= 1


def test_table_cells_are_a_seeded_uniform_draw_then_the_references():
    protocol = gt.Protocol(cells=50, cell_seed=3)
    cells = gt.table_cells(protocol)
    assert cells == gt.table_cells(gt.Protocol(cells=50, cell_seed=3)) != gt.table_cells(gt.Protocol(cells=50, cell_seed=4))
    assert len(cells) == len(set(cells)) and cells[-2:] == [REFERENCES[n].arch for n in protocol.references]


# ---------------------------------------------------------------- building and resuming


def test_build_writes_both_seeds_per_cell_and_resumes_from_the_csv(tmp_path, monkeypatch):
    protocol, data = tiny_protocol(), tiny_data()
    full = builder.build(protocol, tmp_path / "a.csv", tmp_path / "a.json", progress=False, data=data)
    assert list(full.frame["arch"]) == gt.table_cells(protocol) and len(full) == 5

    real, calls = builder.train_cell, {"n": 0}

    def dies_on_the_fifth_training(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(builder, "train_cell", dies_on_the_fifth_training)
    with pytest.raises(KeyboardInterrupt):
        builder.build(protocol, tmp_path / "b.csv", tmp_path / "b.json", progress=False, data=data)
    assert len(pd.read_csv(tmp_path / "b.csv")) == 2  # two cells written, the third lost with the kill
    monkeypatch.setattr(builder, "train_cell", real)
    resumed = builder.build(protocol, tmp_path / "b.csv", tmp_path / "b.json", progress=False, data=data)
    pd.testing.assert_frame_equal(resumed.frame, full.frame)
    meta = json.loads((tmp_path / "b.json").read_text())
    assert meta["rows"] == 5 and meta["train_seconds"] > 0 and meta["noise_ceiling"]["cells"] == 5

    with pytest.raises(gt.GroundTruthError, match="another protocol"):
        builder.build(tiny_protocol(cell_seed=5), tmp_path / "b.csv", tmp_path / "b.json", progress=False, data=data)


def test_workers_build_one_table_together_without_losing_a_row(tmp_path, monkeypatch):
    """Two workers at once (threads here, processes or machines in use) split the missing cells and
    each adds its rows to the file as it is then: together they write exactly the table, every row once."""
    import threading

    protocol = gt.Protocol(cells=12, cell_seed=2)
    cells = gt.table_cells(protocol)
    fake = {a: (50.0 + i, 60.0 + i) for i, a in enumerate(cells)}
    monkeypatch.setattr(builder, "train_cell", lambda data, split, arch, cfg, seed, device: (fake[arch][seed], 0.01))
    data = tiny_data()
    workers = [threading.Thread(target=builder.build, args=(protocol, tmp_path / "t.csv", tmp_path / "t.json"),
                                kwargs={"progress": False, "data": data, "worker": (k, 2)}) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    table = gt.GroundTruthTable.load(tmp_path / "t.csv", tmp_path / "t.json")
    assert sorted(table.frame["arch"]) == sorted(cells)
    assert all(tuple(r[1:]) == fake[r[0]] for r in table.frame.itertuples(index=False))
    assert table.provenance["rows"] == len(cells) and table.provenance["train_seconds"] == pytest.approx(0.02 * len(cells))
    with pytest.raises(gt.GroundTruthError, match="worker"):
        builder.build(protocol, tmp_path / "t.csv", tmp_path / "t.json", progress=False, data=data, worker=(2, 2))


# ---------------------------------------------------------------- reading and judging


def write_table(path, rows):
    pd.DataFrame(rows, columns=list(gt.COLUMNS)).to_csv(path, index=False)


CELLS = [nb201.format_arch(c) for c in nb201.sample_archs(6, torch.Generator().manual_seed(0)).tolist()]


@pytest.mark.parametrize("rows, match", [
    ([[CELLS[0], 80.0, "x"]], "readable|percentage"),
    ([[CELLS[0], 80.0, 101.0]], "percentage"),
    ([[CELLS[0], 80.0, float("nan")]], "percentage"),
    ([[CELLS[0], 80.0, 81.0], [CELLS[0], 79.0, 80.0]], "each once"),
    ([["|nor_conv_3x3~0|", 80.0, 81.0]], "bad cell"),
])
def test_a_bad_table_names_the_file_and_the_problem(tmp_path, rows, match):
    write_table(tmp_path / "t.csv", rows)
    with pytest.raises((gt.GroundTruthError, ValueError), match=match):
        gt.read_rows(tmp_path / "t.csv")
    (tmp_path / "c.csv").write_text("arch,accuracy\nx,1\n")
    with pytest.raises(gt.GroundTruthError, match="columns"):
        gt.read_rows(tmp_path / "c.csv")


def test_percentile_lookup_and_noise_ceiling_on_a_known_table():
    frame = pd.DataFrame({"arch": CELLS, "fashion_mnist_seed0": [70.0, 72.0, 74.0, 76.0, 78.0, 80.0],
                          "fashion_mnist_seed1": [71.0, 73.0, 75.0, 77.0, 79.0, 81.0]})
    table = gt.GroundTruthTable(frame, {"protocol": {}})
    assert table.percentile(69.0) == 0.0 and table.percentile(81.0) == 100.0
    assert table.percentile(75.0) == pytest.approx(100 * 6 / 12)  # 70..75 of the twelve trainings
    assert table.lookup(CELLS[2]) == (74.0, 75.0) and table.lookup(nb201.parse_arch(CELLS[2])) == (74.0, 75.0)
    assert table.lookup("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") is None
    ceiling = table.noise_ceiling()
    assert ceiling["tau_all"] == pytest.approx(1.0) and ceiling["tau_top_half"] == pytest.approx(1.0)
    assert ceiling["seed_difference_sd"] == pytest.approx(0.0)

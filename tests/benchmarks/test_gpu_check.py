"""benchmarks/gpu_check.py runs end to end on the CPU at a tiny size, so the GPU script cannot rot.

The runs hide MLflow, Snakemake and papermill (and, in one run, torchvision) behind stub
packages that fail to import, as they are missing on the GPU machine.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
DATA = Path(os.environ.get("E2NAS_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
ROWS = ("warm-up", "e2nas", "e2nas-3paths", "e2nas-grouped", "e2nas-3paths-grouped", "gdas", "darts", "rsps")
ABSENT_ON_GPU = ("mlflow", "snakemake", "papermill")

pytestmark = pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").is_file(), reason=f"no Fashion-MNIST in {DATA}")


def run_check(tmp_path: Path, *flags: str, absent=ABSENT_ON_GPU) -> subprocess.CompletedProcess:
    stubs = tmp_path / "stubs"
    for name in absent:
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed on the GPU machine')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stubs), str(REPO / "src")]), "OUT": str(tmp_path / "out")}
    cmd = [sys.executable, str(SCRIPT), "--data", str(DATA), "--device", "cpu", "--threads", "1", *flags]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=180)


def test_tiny_cpu_run_reports_every_row_and_bar(tmp_path):
    before = RESULTS.read_text() if RESULTS.exists() else ""
    out = run_check(
        tmp_path, "--steps", "2", "--warmup-steps", "1", "--channels", "4", "--cells", "1", "--half", "256"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert report.strip() in out.stdout  # the file holds what was printed
    for row in ROWS:
        assert f"| eager | {row} |" in report
    assert "read by e2nas.data" in report
    assert "e2nas step / gdas step" in report and ("PASS —" in report or "FAIL —" in report)
    assert "SKIP (not an H100/H200)" in report  # the epoch bar is for a GPU at paper size
    assert "one epoch = 4 steps" in report  # ceil(256 / 64)

    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    rows = {r["row"]: r for r in summary["rows"]}
    assert set(rows) == set(ROWS)
    assert all(r["median_ms"] > 0 and len(r["step_ms"]) == 2 for r in rows.values())
    assert rows["e2nas-3paths"]["mean_paths"] == 3.0  # a_t, a_{t−1}, a_c distinct in every timed step
    assert rows["e2nas-3paths-grouped"]["mean_paths"] == 3.0
    assert "grouped pass (opt-in): e2nas step" in report
    assert 2.0 <= rows["e2nas"]["mean_paths"] <= 3.0
    assert rows["gdas"]["mean_paths"] == rows["rsps"]["mean_paths"] == 1.0
    assert rows["darts"]["mean_paths"] is None  # the mixture trains no single path
    assert summary["verdicts"]["e2nas_over_gdas"] == pytest.approx(rows["e2nas"]["median_ms"] / rows["gdas"]["median_ms"])
    after = RESULTS.read_text() if RESULTS.exists() else ""
    assert report.splitlines()[0] not in after and len(after) >= len(before)  # no --record, no entry


def test_without_torchvision_the_script_reads_the_idx_files_itself(tmp_path):
    out = run_check(
        tmp_path, "--steps", "1", "--warmup-steps", "0", "--channels", "2", "--cells", "1", "--half", "128",
        absent=(*ABSENT_ON_GPU, "torchvision"),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "read by the IDX reader in gpu_check.py" in out.stdout
    assert "| eager | e2nas |" in out.stdout


@pytest.fixture(scope="module")
def gpu_check():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_check

    yield gpu_check
    sys.path.remove(str(REPO / "benchmarks"))


def test_fallback_reader_and_batches_match_the_library(gpu_check, monkeypatch):
    lib, source = gpu_check.load_halves(str(DATA), 300, seed=3)
    assert source.startswith("e2nas.data")
    monkeypatch.setattr(gpu_check, "library_reads_data", lambda: None)
    own, source = gpu_check.load_halves(str(DATA), 300, seed=3)
    assert "IDX reader" in source
    for half in ("weights", "arch"):
        assert torch.equal(lib[half][0], own[half][0]) and torch.equal(lib[half][1], own[half][1])
    assert lib["pad"] == own["pad"]
    x, y = lib["weights"]
    streams = [gpu_check.batch_stream(x, y, 64, "cpu", 0, lib["pad"], library) for library in (True, False)]
    for _ in range(6):  # past the end of the first epoch (4 batches of 64 in 300 images)
        (xa, ya), (xb, yb) = next(streams[0]), next(streams[1])
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_three_path_cells_make_three_distinct_paths(gpu_check):
    from e2nas.spaces.nb201 import complement_cell

    cells = gpu_check.three_path_cells(200, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    for prev, cur in itertools.pairwise(cells):
        assert len({prev, cur, complement_cell(prev, cur, gen)}) == 3

"""Shared fixtures: one torch thread per test process, the NB201 table, a project copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_TABLE = REPO.parent / "shared" / "benchmarks" / "nb201_test_accuracy.csv"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nb201_table_path() -> Path:
    path = Path(os.environ.get("E2NAS_NB201_TABLE", SHARED_TABLE))
    if not path.is_file():
        pytest.skip(f"no NB201 table at {path}")
    return path

"""Shared fixtures: one torch thread per test process, the NB201 table, a project copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_TABLE = REPO.parent / "shared" / "benchmarks" / "nb201_test_accuracy.csv"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nb201_table_path() -> Path:
    path = Path(os.environ.get("E2NAS_NB201_TABLE", SHARED_TABLE))
    if not path.is_file():
        pytest.skip(f"no NB201 table at {path}")
    return path


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROJECT_FILES = ("Snakefile", "workflow", "notebooks", "config", "src", "envs")
# A config string with spaces, quotes, `;` and `$( )`: it must reach the notebooks intact
# and never run as a command.
HOSTILE_NOTES = "smoke; it's a \"test\" $(touch PWNED) `touch PWNED2`; touch PWNED3"


def copy_project(dest: Path) -> Path:
    """A private copy of the workflow, so tests can touch files without touching the repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(project: Path, workdir: Path, *args: str, env: dict | None = None, timeout: int = 1800):
    return subprocess.run(
        [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile", str(project / "config" / "smoke.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def pipeline_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if SHARED_TABLE.is_file():
        env.setdefault("E2NAS_NB201_TABLE", str(SHARED_TABLE))
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """One complete smoke pipeline run, shared by every test that needs one."""
    root = tmp_path_factory.mktemp("smoke")
    project = copy_project(root / "project")
    smoke = project / "config" / "smoke.yaml"
    cfg = yaml.safe_load(smoke.read_text())
    cfg["notes"] = HOSTILE_NOTES
    smoke.write_text(yaml.safe_dump(cfg))
    workdir = root / "work"
    out = snakemake(project, workdir, "--cores", "2", env=pipeline_env())
    if out.returncode != 0:
        pytest.fail(f"smoke pipeline failed:\n{out.stderr[-6000:]}")
    return {"project": project, "workdir": workdir, "config": cfg, "log": out.stderr}

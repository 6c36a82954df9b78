"""The smoke pipeline killed again and again: SIGKILLs of the whole job tree (Snakemake, papermill, the
kernels) at seeded random moments, half of them the instant a stage's output appears (before Snakemake
records the job as done), each followed by the README's recovery unchanged; the run then finishes, and
its outputs equal those of the shared uninterrupted smoke run, timings aside."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from conftest import SNAKEMAKE, copy_project, kill_tree, pipeline_env

pytestmark = pytest.mark.slow

KILLS = 10
SEED = 20
OUTPUT_SUFFIXES = (".pt", ".json", ".csv")  # what the stages hand on (figures and notebooks: existence only)


def pipeline_command(project: Path, workdir: Path, *args: str) -> list[str]:
    """The README's command (and, with --unlock, its recovery) for the smoke profile."""
    return [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile",
            str(project / "config" / "smoke.yaml"), *args]


def stage_outputs(results: Path) -> set[Path]:
    """Every file under results/{run} but the executed notebooks and the checkpoints (temporary files included)."""
    return {p.relative_to(results) for p in results.rglob("*")
            if p.is_file() and p.relative_to(results).parts[0] not in ("notebooks", "checkpoints")}


def without_timings(value):
    """`value` with every entry whose key ends in `seconds` left out (wall-clock times differ run to run)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not str(k).endswith("seconds")}
    if isinstance(value, (list, tuple)):
        return [without_timings(v) for v in value]
    return value


def assert_same(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"  # NaN equals NaN here


def read(path: Path):
    if path.suffix == ".pt":
        return without_timings(torch.load(path, map_location="cpu", weights_only=True))
    if path.suffix == ".json":
        return without_timings(json.loads(path.read_text()))
    frame = pd.read_csv(path)
    return frame.drop(columns=[c for c in frame.columns if c.endswith("seconds")]).to_dict("list")


def wait_then_kill(proc: subprocess.Popen, results: Path, rng: random.Random, at_an_output: bool) -> bool:
    """Kill the job tree after a seeded random delay or, with at_an_output, the instant the first stage
    output after that delay appears; False when the pipeline ended first."""
    deadline = time.monotonic() + rng.uniform(2.0, 25.0)
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if at_an_output:
        seen = stage_outputs(results)
        while proc.poll() is None and not stage_outputs(results) - seen:
            time.sleep(0.01)
    if proc.poll() is not None:
        return False
    kill_tree(proc)
    return True


@pytest.mark.timeout(1500)
def test_seeded_kills_with_the_readme_recovery_end_in_the_uninterrupted_results(smoke_pipeline, tmp_path):
    project = copy_project(tmp_path / "project")
    shutil.copy2(smoke_pipeline["project"] / "config" / "smoke.yaml", project / "config" / "smoke.yaml")  # its notes too
    workdir = tmp_path / "work"
    results = workdir / "results" / smoke_pipeline["config"]["run"]
    rng, env = random.Random(SEED), pipeline_env()
    kills = 0
    with open(tmp_path / "runs.log", "w") as log:
        while kills < KILLS:
            proc = subprocess.Popen(pipeline_command(project, workdir, "--cores", "2"), stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
            if not wait_then_kill(proc, results, rng, at_an_output=kills % 2 == 1):
                break
            kills += 1
            # The README's recovery after a kill: unlock, then the same command (the next loop).
            unlock = subprocess.run(pipeline_command(project, workdir, "--unlock"), capture_output=True, text=True, env=env)
            assert unlock.returncode == 0, unlock.stderr[-3000:]
        assert kills == KILLS, f"the pipeline finished after {kills} kills: {(tmp_path / 'runs.log').read_text()[-3000:]}"
        final = subprocess.run(pipeline_command(project, workdir, "--cores", "2"), stdout=log, stderr=subprocess.STDOUT, env=env)
    assert final.returncode == 0, (tmp_path / "runs.log").read_text()[-6000:]

    reference = smoke_pipeline["workdir"] / "results" / smoke_pipeline["config"]["run"]
    assert stage_outputs(results) == stage_outputs(reference)
    compared = [p for p in stage_outputs(reference) if p.suffix in OUTPUT_SUFFIXES]
    assert len(compared) >= 20
    for rel in sorted(compared):
        assert_same(read(results / rel), read(reference / rel), str(rel))
    assert not list(results.glob("checkpoints/**/*.pt"))  # each dropped once its stage ran through

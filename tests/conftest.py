"""Shared fixtures: one torch thread per test process, the NB201 table, a project copy, pipeline runs and their dry-run plans."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def nb201_table_path() -> Path:
    """The table the stages use (the shipped one unless E2NAS_NB201_TABLE names another)."""
    from e2nas.tables.nb201 import table_path

    path = table_path()
    if path is None or not path.is_file():
        pytest.skip(f"no NB201 table at {path}")
    return path


SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PROJECT_FILES = ("Snakefile", "workflow", "notebooks", "config", "src", "envs", "profiles")
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


def snakemake(project: Path, workdir: Path, *args: str, env: dict | None = None, timeout: int = 1800, profile: str = "smoke.yaml"):
    return subprocess.run(
        [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile", str(project / "config" / profile), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), including the Jupyter kernel, which runs in its own session."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the job's process group and everything below it, as a lost machine or the OOM killer would.

    papermill starts the kernel with start_new_session, so killpg alone would leave it running
    until ipykernel's parent poller notices (about 1 s), time enough to finish another epoch.
    """
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and "Z" not in process_state(pid) for pid in below):
        assert time.monotonic() < deadline, "processes survived SIGKILL"
        time.sleep(0.1)


def process_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def pipeline_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(extra)
    return env


def run_pipeline(root: Path, profile: str, notes: str | None = None) -> dict:
    """A complete run of config/`profile` in a project copy under `root` (2 cores); `notes` replaces the profile's."""
    project = copy_project(root / "project")
    path = project / "config" / profile
    cfg = yaml.safe_load(path.read_text())
    if notes is not None:
        cfg["notes"] = notes
        path.write_text(yaml.safe_dump(cfg))
    workdir = root / "work"
    start = time.perf_counter()
    out = snakemake(project, workdir, "--cores", "2", env=pipeline_env(), profile=profile)
    if out.returncode != 0:
        pytest.fail(f"{profile} pipeline failed:\n{out.stderr[-6000:]}")
    return {"project": project, "workdir": workdir, "config": cfg, "profile": profile, "log": out.stderr,
            "seconds": time.perf_counter() - start}


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory):
    """One complete smoke pipeline run, shared by every test that needs one."""
    return run_pipeline(tmp_path_factory.mktemp("smoke"), "smoke.yaml", notes=HOSTILE_NOTES)


@pytest.fixture(scope="session")
def smoke_darts_pipeline(tmp_path_factory):
    """One complete run of the DARTS-space smoke profile."""
    return run_pipeline(tmp_path_factory.mktemp("smoke-darts"), "smoke-darts.yaml")


def planned_jobs(pipe) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run would start."""
    out = snakemake(pipe["project"], pipe["workdir"], "-n", "--cores", "1", env=pipeline_env(), profile=pipe["profile"])
    assert out.returncode == 0, out.stderr
    blocks = re.split(r"^(?:local)?(?:rule|checkpoint) (\w+):$", out.stdout + out.stderr, flags=re.M)[1:]
    jobs = []
    for rule, body in zip(blocks[::2], blocks[1::2]):
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, flags=re.M)
        jobs.append((rule, wildcards.group(1) if wildcards else ""))
    return jobs


@contextlib.contextmanager
def edited(pipe, relpath, part: str = "code"):
    """Edit one project file's content (Snakemake ignores a bare touch: it compares checksums
    of small inputs whose mtime changed), then restore it, mtime included. A notebook's `part`:
    "code" (a comment added to its last code cell), "markdown" (a sentence added to a markdown cell)
    or "outputs" (an output and metadata added, as an editor that ran it would)."""
    path = pipe["project"] / relpath
    text, stat = path.read_text(), path.stat()
    if path.suffix == ".ipynb":
        notebook = json.loads(text)
        if part == "markdown":
            cell = next(c for c in notebook["cells"] if c["cell_type"] == "markdown")
            cell["source"] = [*cell["source"], "\nOne more sentence, edited by a test."]
        elif part == "outputs":
            cell = next(c for c in notebook["cells"] if c["cell_type"] == "code")
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["run by hand\n"]}]
            cell["execution_count"] = 7
            notebook["metadata"]["edited_by_test"] = True
        else:
            cell = [c for c in notebook["cells"] if c["cell_type"] == "code"][-1]
            cell["source"] = [*cell["source"], "\n# edited by a test"]
        path.write_text(json.dumps(notebook))
    else:
        path.write_text(text + "\n# edited by a test\n")
    try:
        yield
    finally:
        path.write_text(text)
        os.utime(path, (stat.st_atime, stat.st_mtime))


@contextlib.contextmanager
def edited_config(pipe, section: str, **changes):
    """Change keys of one section of the pipeline's profile (as a user edits the config), then restore it."""
    path = pipe["project"] / "config" / pipe["profile"]
    text = path.read_text()
    cfg = yaml.safe_load(text)
    cfg[section] = {**(cfg.get(section) or {}), **changes}
    path.write_text(yaml.safe_dump(cfg))
    try:
        yield
    finally:
        path.write_text(text)


def host_syncs_of_a_step(method, x, y, warm_steps: int = 6) -> list[str]:
    """The host synchronisations (CUDA sync debug warnings) of one search step of `method` on (x, y),
    after `warm_steps` steps (past the novelty archive's filling, with a probe step)."""
    import warnings

    half = len(y) // 2
    method.start_epoch(0, 2)
    for _ in range(warm_steps):
        method.step(x[:half], y[:half], x[half:], y[half:], probe=method.has_paths)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            method.step(x[:half], y[:half], x[half:], y[half:], probe=method.has_paths)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return [str(w.message)[:120] for w in caught if "synchroniz" in str(w.message)]

"""`e2nas clean RUN` (issue 28, item 7): one run's folder, MLflow experiment and parameter files go; nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from e2nas import cli, layout, tracking
from e2nas.run_control import RunLock


def parameters(workdir, name, run):
    path = workdir / layout.parameters_file("search_architecture", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"run": run, "tracking": {"experiment": run, "stage": "search_architecture"}}))
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Two runs (mine, other) with files, MLflow experiments and parameter files; one parameter file of a run gone before."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    for run in ("mine", "other"):
        out = results / run / "search" / "result.json"
        out.parent.mkdir(parents=True)
        out.write_text("{}")
        stage = tracking.start_stage_run(run, "search_architecture", {"epochs": 1}, {"method": "e2nas", "seed": 0},
                                         results_dir=results)
        assert stage.active
    (results / "data-cache").mkdir()
    files = {"mine": parameters(tmp_path, "a" * 20, "mine"), "other": parameters(tmp_path, "b" * 20, "other"),
             "gone": parameters(tmp_path, "c" * 20, "gone")}
    return tmp_path, files


def test_clean_removes_the_run_its_experiment_and_its_parameter_files_only(workdir, capsys):
    root, files = workdir
    results = root / "results"
    assert cli.clean("mine", root, yes=True) == 0
    text = capsys.readouterr().out
    assert "1 runs, marked deleted" in text and "2 parameter files" in text and "removed run 'mine'" in text
    assert not (results / "mine").exists() and (results / "other" / "search" / "result.json").is_file()
    assert (results / "mlflow.db").is_file() and (results / "data-cache").is_dir()
    assert not files["mine"].exists() and not files["gone"].exists() and files["other"].exists()
    client = tracking._client(results)
    assert client.get_experiment_by_name("mine") is None  # the name is free for a later run of that name
    deleted = [e for e in client.search_experiments(view_type=3) if e.name.startswith("mine (deleted ")]
    assert len(deleted) == 1 and deleted[0].lifecycle_stage == "deleted"  # marked deleted by MLflow, restorable
    assert tracking.experiment_runs("other", results) == 1
    again = tracking.start_stage_run("mine", "search_architecture", {}, {"method": "e2nas", "seed": 0}, results_dir=results)
    assert again.active  # a new run of that name starts a fresh experiment


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """results/ with two runs and what the pipeline keeps beside them (no MLflow: nothing gets that far)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/never-asked")
    for name in ("mine/search", "other", "data-cache", "mlartifacts", "checkpoints", "mlflow.db-journal"):
        (tmp_path / "results" / name).mkdir(parents=True)
    (tmp_path / "results" / "mlflow.db").write_bytes(b"")
    parameters(tmp_path, "a" * 20, "mine")
    return tmp_path


@pytest.mark.parametrize("name", ["mlflow.db", "mlflow.db-journal", "mlartifacts", "data-cache", "checkpoints", "..", ".",
                                  "mine/search", "../mine", "/tmp", "nope", ""])
def test_clean_refuses_what_is_not_a_run(folders, name):
    root = folders
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(SystemExit) as err:
        cli.clean(name, root, yes=True)
    assert "is not a run name" in str(err.value) or "there is no run" in str(err.value)
    if name == "nope":
        assert "runs there: mine, other" in str(err.value)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_clean_asks_first_and_needs_a_yes(workdir):
    root, _ = workdir
    assert cli.clean("mine", root, ask=lambda prompt: "n") == 1
    assert (root / "results" / "mine").is_dir()
    out = subprocess.run([sys.executable, "-m", "e2nas.cli", "clean", "mine", "-d", str(root)], stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 1 and "pass --yes" in out.stderr and (root / "results" / "mine").is_dir()
    assert cli.clean("mine", root, ask=lambda prompt: "y") == 0 and not (root / "results" / "mine").exists()


def test_clean_refuses_a_run_in_use(workdir):
    root, _ = workdir
    code = f"from e2nas.run_control import RunLock; import time; RunLock({str(root / 'results' / 'mine')!r}).acquire(); print('held', flush=True); time.sleep(60)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(SystemExit, match=rf"is in use by another pipeline \(PID {holder.pid} on "):
                cli.clean("mine", root, yes=True)
            assert (root / "results" / "mine" / "search" / "result.json").is_file()
        finally:
            holder.kill()
    assert not RunLock(root / "results" / "mine").held_elsewhere()


def test_make_clean_passes_the_run_quoted():
    out = subprocess.run(["make", "-n", "clean", "RUN=a b; touch PWNED", "YES=1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and 'e2nas clean --yes -- "$RUN"' in out.stdout, out.stdout + out.stderr

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

WRITER = textwrap.dedent(
    """
    import sys
    from e2nas import tracking
    i = int(sys.argv[1])
    run = tracking.start_stage_run("parallel", "writer", {"worker": i}, {"seed": i}, None, sys.argv[2])
    for step in range(100):
        run.log_metrics({"loss": step * 0.5 + i}, step=step)
    run.client.set_terminated(run.run_id, "FINISHED")
    """
)


def test_parallel_writers_on_a_fresh_sqlite_store(tmp_path):
    """8 processes create a fresh store at once and log 100 metric steps each: nothing is lost."""
    results = tmp_path / "results"
    env = {k: v for k, v in __import__("os").environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(i), str(results)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(errors)
    assert not any("database is locked" in e for e in errors)
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    exp = client.get_experiment_by_name("parallel")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 8
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "loss")
        assert sorted(m.step for m in history) == list(range(100))


def test_stage_run_round_trip(tmp_path, monkeypatch):
    from e2nas import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    run_file = tmp_path / "nb.ipynb.mlflow_run"
    run = tracking.start_stage_run("exp", "build_graphs", {"a": {"b": 1}}, {"space": "nb201"}, run_file, results)
    run.log_metrics({"acc": 91.5, "skip": None, "flag": True}, step=3)
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": []}))
    run_id = tracking.finish_stage_run(notebook, run_file, False, "exp", "build_graphs", {}, results)
    assert run_id == run.run_id and not run_file.exists()
    got = MlflowClient(tracking.tracking_uri(results)).get_run(run_id)
    assert got.info.status == "FAILED"
    assert got.data.params == {"a.b": "1"}
    assert got.data.metrics == {"acc": 91.5}
    assert got.data.tags["stage"] == "build_graphs" and got.data.tags["space"] == "nb201"
    assert "pipeline_invocation" in got.data.tags
    artifacts = MlflowClient(tracking.tracking_uri(results)).list_artifacts(run_id, "notebook")
    assert sorted(a.path for a in artifacts) == ["notebook/build_graphs.html", "notebook/build_graphs.ipynb"]  # named after the run
    assert (results / "mlartifacts" / "exp").is_dir()


def test_notebook_that_died_early_still_leaves_a_failed_run(tmp_path, monkeypatch):
    from e2nas import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results = tmp_path / "results"
    run_id = tracking.finish_stage_run(tmp_path / "missing.ipynb", tmp_path / "none", False, "exp", "s", {"seed": 1}, results)
    got = MlflowClient(tracking.tracking_uri(results)).get_run(run_id)
    assert got.info.status == "FAILED" and got.data.tags["seed"] == "1"


def test_library_imports_without_mlflow():
    code = "import sys; sys.modules['mlflow'] = None\nimport e2nas.tracking as t\nr = t.start_stage_run('e', 's', {}, {})\nr.log_metrics({'a': 1})\nprint(r.active)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("exit_code, kept", [(0, False), (1, True)])
def test_the_finished_checkpoint_goes_only_when_the_stage_notebook_ran_through(tmp_path, exit_code, kept):
    """The step after papermill: a stage that failed after training (logging, plots) keeps its finished
    checkpoint, so the rerun resumes at the end; one that succeeded leaves nothing behind."""
    import os

    import yaml

    repo = Path(__file__).resolve().parents[1]
    checkpoint = tmp_path / "results" / "checkpoints" / "s.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"state")
    params = {"checkpoint": str(checkpoint), "tracking": {"experiment": "exp", "stage": "search_architecture", "tags": {},
                                                          "run_file": str(tmp_path / "nb.ipynb.mlflow_run")}}
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PYTHONPATH": str(repo / "src")}
    parameters = tmp_path / "parameters.yaml"  # the stage's parameters file, as the rules pass it
    parameters.write_text(yaml.safe_dump(params))
    out = subprocess.run([sys.executable, str(repo / "workflow" / "scripts" / "finish_stage_run.py"), str(tmp_path / "nb.ipynb"),
                          str(parameters), str(exit_code)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert checkpoint.exists() == kept


def test_a_moved_store_finds_its_artifacts(tmp_path, monkeypatch):
    """MLflow records absolute artifact URIs: after the checkout (results/ with it) moves, the next
    snakemake call (init_store) or `e2nas ui` points them at the new folder; other locations stay."""
    import shutil

    from e2nas import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old, new = tmp_path / "old" / "results", tmp_path / "new" / "results"
    run_file = tmp_path / "nb.ipynb.mlflow_run"
    run = tracking.start_stage_run("exp", "build_graphs", {}, {"space": "nb201"}, run_file, old)
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": []}))
    tracking.finish_stage_run(notebook, run_file, True, "exp", "build_graphs", {}, old)
    remote = MlflowClient(tracking.tracking_uri(old)).create_experiment("remote", artifact_location="s3://bucket/remote")
    assert tracking.relocate_artifacts(old) == 0  # where it was made: nothing to do
    shutil.move(tmp_path / "old", tmp_path / "new")

    assert tracking.init_store(new) == tracking.tracking_uri(new)
    client = MlflowClient(tracking.tracking_uri(new))
    info = client.get_run(run.run_id).info
    assert info.artifact_uri.startswith((new / "mlartifacts" / "exp").as_uri())
    assert client.get_experiment_by_name("exp").artifact_location == (new / "mlartifacts" / "exp").as_uri()
    assert client.get_experiment(remote).artifact_location == "s3://bucket/remote"
    got = client.download_artifacts(run.run_id, "notebook/build_graphs.ipynb", str(tmp_path))
    assert json.loads(Path(got).read_text()) == {"cells": []}
    assert tracking.relocate_artifacts(new) == 0  # done once

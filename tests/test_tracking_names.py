"""MLflow that reads well: run names, one parent run per `snakemake` call, settings as params,
the notebook as HTML, and experiments that open on their training runs (issue 18, item 6)."""

import json
import subprocess
import sys
import textwrap

import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from e2nas import tracking  # noqa: E402

SEARCH_TAGS = {"space": "nb201", "dataset": "fashion-mnist", "method": "e2nas", "seed": "0", "run": "exp", "notes": "a try"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A local SQLite store under tmp_path/results, outside any pipeline invocation."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("E2NAS_INVOCATION", raising=False)
    results = tmp_path / "results"
    return results, lambda: MlflowClient(tracking.tracking_uri(results))


def write_notebook(path, source="print('hello from the stage')"):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell(source, outputs=[new_output("stream", name="stdout", text="hello from the stage\n")])
    nbformat.write(new_notebook(cells=[cell]), str(path))
    return path


@pytest.mark.parametrize(
    "stage, tags, name",
    [
        ("search_architecture", SEARCH_TAGS, "e2nas seed0 · search"),
        ("pretrain_vgae", {"space": "nb201"}, "nb201 · vgae"),
        ("warmup_supernet", {"space": "nb201", "dataset": "fashion-mnist", "seed": "0"}, "seed0 · warm-up"),
        ("retrain_cell", {"dataset": "fashion-mnist", "method": "random", "seed": 2}, "random seed2 · retrain"),
        ("report", {"space": "nb201", "method": None, "seed": None}, "report"),
    ],
)
def test_run_names_lead_with_what_tells_siblings_apart(stage, tags, name):
    assert tracking.run_name(stage, tags) == name
    stem = tracking.artifact_stem(stage, tags)
    assert " " not in stem and stem.startswith(stage) and all(p in stem for p in name.split(" · ")[0].split() if p != "nb201")


def test_stage_runs_carry_their_names_in_the_store(store):
    results, client = store
    search = tracking.start_stage_run("exp", "search_architecture", {}, SEARCH_TAGS, None, results)
    vgae = tracking.start_stage_run("exp", "pretrain_vgae", {}, {"space": "nb201"}, None, results)
    assert client().get_run(search.run_id).info.run_name == "e2nas seed0 · search"
    assert client().get_run(vgae.run_id).info.run_name == "nb201 · vgae"
    # Outside a pipeline (no $E2NAS_INVOCATION) a run stands alone.
    assert tracking.PARENT_RUN_ID_TAG not in client().get_run(search.run_id).data.tags


def test_one_parent_run_per_invocation_nests_its_stage_runs(store, tmp_path, monkeypatch):
    results, client = store
    monkeypatch.setenv("E2NAS_INVOCATION", "inv-one")
    warmup = tracking.start_stage_run("exp", "warmup_supernet", {}, {**SEARCH_TAGS, "method": None}, tmp_path / "a.run", results)
    search = tracking.start_stage_run("exp", "search_architecture", {}, SEARCH_TAGS, tmp_path / "b.run", results)
    c = client()
    parent_id = c.get_run(warmup.run_id).data.tags[tracking.PARENT_RUN_ID_TAG]
    assert c.get_run(search.run_id).data.tags[tracking.PARENT_RUN_ID_TAG] == parent_id
    parent = c.get_run(parent_id)
    assert parent.info.run_name == "pipeline inv-one"
    assert parent.data.tags[tracking.PARENT_TAG] == "true" and parent.data.tags[tracking.INVOCATION_TAG] == "inv-one"
    assert parent.data.tags["mlflow.note.content"] == "a try" and parent.data.tags["notes"] == "a try"
    assert parent.info.status == "RUNNING"

    # One stage done, the other still running: the parent runs on; both done: it is FINISHED.
    notebook = write_notebook(tmp_path / "seed0.ipynb")
    tracking.finish_stage_run(notebook, tmp_path / "a.run", True, "exp", "warmup_supernet", {}, results)
    assert c.get_run(parent_id).info.status == "RUNNING"
    tracking.finish_stage_run(notebook, tmp_path / "b.run", True, "exp", "search_architecture", {}, results)
    done = c.get_run(parent_id).info
    assert done.status == "FINISHED" and done.end_time is not None

    # A later stage of the same call runs under the same parent, which runs again meanwhile.
    report = tracking.start_stage_run("exp", "report", {}, {"space": "nb201"}, tmp_path / "c.run", results)
    assert c.get_run(report.run_id).data.tags[tracking.PARENT_RUN_ID_TAG] == parent_id
    assert c.get_run(parent_id).info.status == "RUNNING"
    tracking.finish_stage_run(notebook, tmp_path / "c.run", False, "exp", "report", {}, results)
    assert c.get_run(parent_id).info.status == "FAILED"  # a stage of this call failed

    # Another `snakemake` call: another parent.
    monkeypatch.setenv("E2NAS_INVOCATION", "inv-two")
    again = tracking.start_stage_run("exp", "search_architecture", {}, SEARCH_TAGS, None, results)
    other = c.get_run(again.run_id).data.tags[tracking.PARENT_RUN_ID_TAG]
    assert other != parent_id and c.get_run(other).info.run_name == "pipeline inv-two"
    exp = c.get_experiment_by_name("exp")
    parents = c.search_runs([exp.experiment_id], f"tags.{tracking.PARENT_TAG} = 'true'")
    assert sorted(r.info.run_name for r in parents) == ["pipeline inv-one", "pipeline inv-two"]


def test_a_killed_stage_run_ends_its_pipeline_run_on_the_rerun(store, tmp_path, monkeypatch):
    results, client = store
    monkeypatch.setenv("E2NAS_INVOCATION", "killed-call")
    killed = tracking.start_stage_run("exp", "warmup_supernet", {}, {"seed": "0"}, tmp_path / "w.run", results)  # never finished
    old_parent = client().get_run(killed.run_id).data.tags[tracking.PARENT_RUN_ID_TAG]
    monkeypatch.setenv("E2NAS_INVOCATION", "rerun-call")
    tracking.start_stage_run("exp", "warmup_supernet", {}, {"seed": "0"}, tmp_path / "w.run", results)
    assert client().get_run(killed.run_id).info.status == "KILLED"
    assert client().get_run(old_parent).info.status == "FAILED"


def test_racing_creators_on_a_server_keep_one_parent(store, monkeypatch):
    """Without a lock file (a tracking server), a job that created a parent while another job did keeps
    the first created one and deletes its own."""
    results, client = store
    tracking.start_stage_run("exp", "build_graphs", {}, {}, None, results)  # the store and the experiment
    c = client()
    exp_id = c.get_experiment_by_name("exp").experiment_id
    first = c.create_run(exp_id, tags={tracking.PARENT_TAG: "true", tracking.INVOCATION_TAG: "race"}, start_time=1)
    real_parents, calls = tracking._parents, []

    def not_yet_visible(*args):  # the other job's parent appears only after this job's own lookup
        calls.append(args)
        return [] if len(calls) == 1 else real_parents(*args)

    monkeypatch.setattr(tracking, "_parents", not_yet_visible)
    got = tracking._parent_run(c, "http://server.invalid:5000", exp_id, "race", {})
    assert got == first.info.run_id
    live = real_parents(c, "", exp_id, "race")
    assert [r.info.run_id for r in live] == [first.info.run_id]  # the loser's own parent is deleted


PARALLEL = textwrap.dedent(
    """
    import sys
    from e2nas import tracking
    run = tracking.start_stage_run("par", "search_architecture", {}, {"method": "m", "seed": sys.argv[1]}, None, sys.argv[2])
    print(run.client.get_run(run.run_id).data.tags["mlflow.parentRunId"])
    """
)


def test_parallel_first_jobs_of_one_invocation_share_one_parent(tmp_path):
    import os

    results = tmp_path / "results"  # a fresh store: the jobs also race to create it
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "E2NAS_INVOCATION": "together"}
    procs = [subprocess.Popen([sys.executable, "-c", PARALLEL, str(i), str(results)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(err for _, err in outs)
    assert len({out.strip() for out, _ in outs}) == 1


def test_seed_and_epochs_are_params_and_epoch_metrics_keep_their_step(store):
    results, client = store
    run = tracking.start_stage_run("exp", "retrain_cell", {"seed": 0, "retrain": {"epochs": 3}}, SEARCH_TAGS, None, results)
    log_epoch = run.epoch_logger()
    for epoch in range(3):
        log_epoch({"epoch": epoch, "loss": 1.0 / (epoch + 1), "lr": 0.1})
    # A results dict as the retrain notebook logs it: settings beside the metrics.
    run.log_metrics({"test_accuracy": 91.5, "seed": 0, "epochs": 3, "params": 1234, "train_seconds": 2.5})
    got = client().get_run(run.run_id).data
    assert got.params["seed"] == "0" and got.params["epochs"] == "3" and got.params["retrain.epochs"] == "3"
    assert "seed" not in got.metrics and "epochs" not in got.metrics
    assert got.metrics["test_accuracy"] == 91.5 and got.metrics["params"] == 1234
    assert sorted(m.step for m in client().get_metric_history(run.run_id, "loss")) == [0, 1, 2]
    # The VGAE notebook's dict: epochs and torch_threads are settings too.
    vgae = tracking.start_stage_run("exp", "pretrain_vgae", {"vgae": {"epochs": 2}}, {}, None, results)
    vgae.log_metrics({"epochs": 2, "torch_threads": 1, "final_loss": 0.5, "device": "cpu"})
    got = client().get_run(vgae.run_id).data
    assert got.params["epochs"] == "2" and got.params["torch_threads"] == "1" and set(got.metrics) == {"final_loss"}


def test_the_executed_notebook_is_logged_as_ipynb_and_html_named_after_the_run(store, tmp_path):
    results, client = store
    run_file = tmp_path / "seed0.ipynb.mlflow_run"
    run = tracking.start_stage_run("exp", "search_architecture", {}, SEARCH_TAGS, run_file, results)
    notebook = write_notebook(tmp_path / "seed0.ipynb", "print('the search cell')")
    tracking.finish_stage_run(notebook, run_file, True, "exp", "search_architecture", SEARCH_TAGS, results)
    c = client()
    paths = sorted(a.path for a in c.list_artifacts(run.run_id, "notebook"))
    assert paths == ["notebook/search_architecture-e2nas-seed0.html", "notebook/search_architecture-e2nas-seed0.ipynb"]
    html = open(c.download_artifacts(run.run_id, paths[0], str(tmp_path / "dl"))).read()
    assert "<html" in html and "the search cell" in html  # code cells kept
    executed = json.load(open(c.download_artifacts(run.run_id, paths[1], str(tmp_path / "dl"))))
    assert "".join(executed["cells"][0]["source"]) == "print('the search cell')"


def test_the_html_is_optional_the_ipynb_is_not(store, tmp_path, monkeypatch):
    results, client = store
    monkeypatch.setattr(tracking, "notebook_html", lambda notebook, html: False)  # e.g. nbconvert missing
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({"cells": []}))
    run_id = tracking.finish_stage_run(notebook, tmp_path / "none", True, "exp", "pretrain_vgae", {"space": "nb201"}, results)
    assert [a.path for a in client().list_artifacts(run_id, "notebook")] == ["notebook/pretrain_vgae.ipynb"]


def test_experiments_open_on_their_training_runs(store):
    results, client = store
    tracking.start_stage_run("fresh", "build_graphs", {}, {}, None, results)
    assert client().get_experiment_by_name("fresh").tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # An experiment from before the tag existed gets it on its next run; another kind set by hand stays.
    c = client()
    old = c.create_experiment("old", artifact_location=(results / "mlartifacts" / "old").as_uri())
    mine = c.create_experiment("mine", tags={tracking.EXPERIMENT_KIND_TAG: "genai_development"})
    tracking.start_stage_run("old", "build_graphs", {}, {}, None, results)
    tracking.start_stage_run("mine", "build_graphs", {}, {}, None, results)
    assert c.get_experiment(old).tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert c.get_experiment(mine).tags[tracking.EXPERIMENT_KIND_TAG] == "genai_development"

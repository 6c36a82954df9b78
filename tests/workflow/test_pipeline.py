"""End to end on the smoke profile: outputs, MLflow, reruns after edits, config strings."""

import json
import re

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import HOSTILE_NOTES, edited, planned_jobs
from e2nas.spaces import nb201

pytestmark = pytest.mark.slow


def test_every_stage_wrote_valid_outputs(smoke_pipeline):
    cfg, results = smoke_pipeline["config"], smoke_pipeline["workdir"] / "results" / "smoke"
    assert json.loads((results / "graphs" / "nb201.json").read_text())["num_unique"] == 15625
    assert (results / "vgae" / "nb201" / "model.pt").is_file()
    for seed in cfg["seeds"]:
        assert (results / "supernet" / "fashion-mnist" / "nb201" / f"seed{seed}" / "warmup.pt").is_file()
        for method in cfg["methods"]:
            result = json.loads((results / "search" / "fashion-mnist" / "nb201" / method / f"seed{seed}" / "result.json").read_text())
            nb201.parse_arch(result["arch"])
            assert result["method"] == method and len(result["trajectory"]) == result["epochs"]
            metrics = json.loads((results / "retrain" / "fashion-mnist" / "nb201" / method / f"seed{seed}" / "metrics.json").read_text())
            assert metrics["arch"] == result["arch"] and 0 <= metrics["test_accuracy"] <= 100
    summary = pd.read_csv(results / "report" / "summary.csv")
    assert set(summary.method) == set(cfg["methods"]) | {"random"} | {f"ref-{n}" for n in cfg["references"]["nb201"]}
    best = summary[summary.method == "ref-nb201-best"].iloc[0]  # a reference row, with its NB201 table accuracy
    assert best.nb201_cifar10 == pytest.approx(94.37, abs=0.005) and 0 <= best.test_accuracy <= 100
    assert (results / "report" / "report.ipynb").is_file()
    assert not (results / "checkpoints").exists() or not any((results / "checkpoints").rglob("*.pt"))


def test_mlflow_holds_every_stage_with_notebook(smoke_pipeline):
    client = MlflowClient(f"sqlite:///{smoke_pipeline['workdir'] / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.stage LIKE '%'")  # the stage runs, not their parent
    stages = {r.data.tags["stage"] for r in runs}
    assert stages == {"build_graphs", "pretrain_vgae", "warmup_supernet", "search_architecture", "retrain_cell", "rank_supernet",
                      "report"}
    assert len({r.data.tags["pipeline_invocation"] for r in runs}) == 1
    stage1 = next(r for r in runs if r.data.tags["stage"] == "build_graphs")
    assert stage1.info.status == "FINISHED"
    assert stage1.data.params["space"] == "nb201"
    assert stage1.data.metrics["num_unique"] == 15625
    notebooks = [a.path for a in client.list_artifacts(stage1.info.run_id, "notebook")]
    assert notebooks == ["notebook/build_graphs.html", "notebook/build_graphs.ipynb"]
    local = client.download_artifacts(stage1.info.run_id, "notebook/build_graphs.ipynb")
    executed = json.load(open(local))
    assert executed["metadata"]["papermill"]["end_time"]  # logged after papermill finished
    assert not executed["metadata"]["papermill"]["exception"]
    search = [r for r in runs if r.data.tags["stage"] == "search_architecture"]
    # The baselines train the supernet as they search; E2NAS's default weight half is frozen: it trains nothing.
    assert all("loss_train" in r.data.metrics for r in search if r.data.tags["method"] != "e2nas")
    assert all("loss_val" in r.data.metrics for r in search if r.data.tags["method"] == "e2nas")


def test_hostile_config_string_arrives_intact_and_runs_nothing(smoke_pipeline):
    workdir = smoke_pipeline["workdir"]
    assert not list(workdir.rglob("PWNED*")) and not list(smoke_pipeline["project"].rglob("PWNED*"))
    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("smoke")
    assert {r.data.tags["notes"] for r in client.search_runs([exp.experiment_id])} == {HOSTILE_NOTES}
    executed = json.loads((workdir / "results" / "smoke" / "notebooks" / "build_graphs" / "nb201.ipynb").read_text())
    assert executed["metadata"]["papermill"]["parameters"]["tracking"]["tags"]["notes"] == HOSTILE_NOTES


def test_complete_run_schedules_nothing(smoke_pipeline):
    assert planned_jobs(smoke_pipeline) == []


@pytest.mark.parametrize("path", ["notebooks/01_graph_dataset.ipynb", "src/e2nas/spaces/nb201/cells.py"])
def test_editing_stage1_reruns_stage1(smoke_pipeline, path):
    with edited(smoke_pipeline, path):
        rules = {rule for rule, _ in planned_jobs(smoke_pipeline)}
    assert "build_graphs" in rules


@pytest.mark.parametrize("part", ["markdown", "outputs"])
def test_editing_a_notebooks_markdown_or_outputs_reruns_nothing(smoke_pipeline, part):
    with edited(smoke_pipeline, "notebooks/04_search.ipynb", part):
        assert planned_jobs(smoke_pipeline) == []


def test_editing_a_notebooks_code_cell_reruns_that_stage_and_what_follows(smoke_pipeline):
    with edited(smoke_pipeline, "notebooks/04_search.ipynb", "code"):
        rules = {rule for rule, _ in planned_jobs(smoke_pipeline)}
    assert rules == {"search_architecture", "retrain_cell", "rank_supernet", "report", "all"}


def test_editing_the_vgae_reruns_no_baseline(smoke_pipeline):
    with edited(smoke_pipeline, "notebooks/02_vgae_pretrain.ipynb"):
        jobs = planned_jobs(smoke_pipeline)
    rules = {rule for rule, _ in jobs}
    assert {"pretrain_vgae", "search_architecture"} <= rules and "build_graphs" not in rules
    assert "warmup_supernet" not in rules
    searched = {re.search(r"method=([\w-]+)", wc).group(1) for rule, wc in jobs if rule == "search_architecture"}
    assert searched and all(m.startswith("e2nas") for m in searched)


# One module each stage runs (and only its own stage and what follows, or a single method):
# editing it reruns exactly the jobs whose computed code inputs hold it.
EDITS = {
    "src/e2nas/graphs.py": {"build_graphs", "pretrain_vgae", "search_architecture"},  # the search: E2NAS's encodings
    "src/e2nas/vgae/train.py": {"pretrain_vgae", "search_architecture"},
    "src/e2nas/warmup.py": {"warmup_supernet", "search_architecture", "rank_supernet"},
    "src/e2nas/search/e2nas.py": {"search_architecture"},
    "src/e2nas/search/baselines.py": {"search_architecture"},
    "src/e2nas/retrain.py": {"retrain_cell"},
    "src/e2nas/report.py": {"report"},
    "src/e2nas/ranking.py": {"rank_supernet"},
}


@pytest.mark.parametrize("path", list(EDITS))
def test_editing_a_module_reruns_exactly_the_jobs_that_run_it(smoke_pipeline, path):
    from e2nas.code_inputs import stage_code

    project = smoke_pipeline["project"]
    target = str(project / path)
    with edited(smoke_pipeline, path):
        jobs = planned_jobs(smoke_pipeline)
    # The jobs whose code includes the file (computed from the copied project's own sources) ...
    notebooks = {"build_graphs": "01_graph_dataset", "pretrain_vgae": "02_vgae_pretrain", "warmup_supernet": "03_supernet_warmup",
                 "search_architecture": "04_search", "retrain_cell": "05_retrain", "rank_supernet": "06_rank_supernet",
                 "report": "07_report"}
    direct = set()
    for rule, wc in jobs:
        if rule in notebooks:
            method = re.search(r"method=([\w-]+)", wc)
            code = stage_code(project / "notebooks" / f"{notebooks[rule]}.ipynb", "nb201",
                              method.group(1) if method and rule == "search_architecture" else None, src=project / "src")
            direct |= {(rule, wc)} if target in code else set()
    assert direct and {rule for rule, _ in direct} == EDITS[path]
    # ... and the jobs that follow from their outputs, nothing else: no job upstream of them reruns.
    assert all(rule != "build_graphs" for rule, _ in jobs) or "build_graphs" in EDITS[path]
    if path.endswith(("e2nas.py", "baselines.py")):
        searched = {re.search(r"method=([\w-]+)", wc).group(1) for rule, wc in jobs if rule == "search_architecture"}
        assert searched == ({"e2nas"} if path.endswith("e2nas.py") else {"gdas", "darts", "rsps"})


def test_every_supernet_is_ranked_against_the_ground_truth_and_the_proxy(smoke_pipeline):
    cfg, results = smoke_pipeline["config"], smoke_pipeline["workdir"] / "results" / "smoke"
    ranking = json.loads((results / "ranking" / "fashion-mnist" / "nb201" / "seed0.json").read_text())
    assert set(ranking["supernets"]) == {"warm-up", *cfg["methods"]} and len(ranking["cells"]) == cfg["ranking"]["cells"]
    for entry in ranking["supernets"].values():
        assert len(entry["accuracy"]) == len(ranking["cells"])
        assert -1 <= entry["ground_truth"]["kendall_tau"] <= 1 and -1 <= entry["nb201_cifar10"]["kendall_tau"] <= 1
    assert ranking["noise_ceiling"]["cells"] >= 2 and "kendall_tau" in ranking["ground_truth_vs_nb201"]
    for method in cfg["methods"]:  # stage 4 keeps each searched supernet for the ranking
        assert (results / "search" / "fashion-mnist" / "nb201" / method / "seed0" / "supernet.pt").is_file()


def test_a_moved_checkout_with_its_results_plans_nothing_and_finds_its_artifacts(smoke_pipeline, tmp_path):
    """Commands and inputs are recorded relative to the working directory: the project and its
    results copied elsewhere (as a move or a fresh clone with results/ put back) rerun nothing,
    and the MLflow store links artifacts in the copy once a snakemake call or `e2nas ui` opened it."""
    import shutil

    from e2nas import tracking

    root = smoke_pipeline["project"].parent
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved, symlinks=True)  # copy2: modification times kept, as a move keeps them
    pipe = {**smoke_pipeline, "project": moved / "project", "workdir": moved / "work"}
    assert planned_jobs(pipe) == []

    results = pipe["workdir"] / "results"
    tracking.relocate_artifacts(results)
    client = MlflowClient(tracking.tracking_uri(results))
    exp = client.get_experiment_by_name(smoke_pipeline["config"]["run"])
    assert exp.artifact_location.startswith((results / "mlartifacts").as_uri())
    run = client.search_runs([exp.experiment_id], "tags.stage = 'report'")[0]
    assert run.info.artifact_uri.startswith((results / "mlartifacts").as_uri())
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"notebook"}

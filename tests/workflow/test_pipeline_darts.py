"""End to end on the DARTS-space smoke profile (config/smoke-darts.yaml): every stage's outputs,
MLflow, and which jobs an edit of a DARTS-only module or of a config section reruns."""

import json
import re

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import edited, edited_config, planned_jobs
from e2nas.graphs import GraphSet
from e2nas.report import NB201_COLUMNS
from e2nas.spaces import darts
from e2nas.spaces.darts import NetworkCIFAR, count_params_darts
from e2nas.warmup import load_warmup

pytestmark = pytest.mark.slow

FMNIST = {"num_classes": 10, "in_channels": 1}


def results(pipe):
    return pipe["workdir"] / "results" / pipe["config"]["run"]


def test_graphs_and_vgae_stages_on_the_sampled_genotypes(smoke_darts_pipeline):
    cfg, out = smoke_darts_pipeline["config"], results(smoke_darts_pipeline)
    n = cfg["graphs"]["num_archs"]
    info = json.loads((out / "graphs" / "darts.json").read_text())
    assert info["space"] == "darts" and info["num_archs"] == n and info["sample_seed"] == cfg["graphs"]["seed"]
    graphs = GraphSet.load(out / "graphs" / "darts.pt")
    assert len(graphs) == n
    assert torch.equal(graphs.archs, darts.sample_archs(n, torch.Generator().manual_seed(cfg["graphs"]["seed"])))
    metrics = json.loads((out / "vgae" / "darts" / "metrics.json").read_text())
    assert metrics["space"] == "darts" and metrics["num_archs"] == n and metrics["latent_dim"] == cfg["vgae"]["latent_dim"]
    assert metrics["num_heldout"] == round(0.1 * n) and 0.0 <= metrics["heldout_reconstruction_accuracy"] <= 1.0
    assert metrics["epochs"] == cfg["vgae"]["epochs"] and metrics["unique_means"] <= n


def test_search_and_retrain_stages_give_darts_genotypes_and_darts_params(smoke_darts_pipeline):
    cfg, out = smoke_darts_pipeline["config"], results(smoke_darts_pipeline)
    retrain = cfg["retrain"]
    for seed in cfg["seeds"]:
        net, meta = load_warmup(out / "supernet" / "fashion-mnist" / "darts" / f"seed{seed}" / "warmup.pt")
        assert meta["space"] == "darts" and len(net.cells) == cfg["supernet"]["layers"]
        for method in [*cfg["methods"], "random"]:
            metrics = json.loads((out / "retrain" / "fashion-mnist" / "darts" / method / f"seed{seed}" / "metrics.json").read_text())
            if method == "random":
                assert darts.is_valid(darts.parse_arch(metrics["arch"]))
            else:
                result = json.loads((out / "search" / "fashion-mnist" / "darts" / method / f"seed{seed}" / "result.json").read_text())
                assert result["space"] == "darts" and result["method"] == method and result["nb201"] is None
                assert darts.format_arch(darts.parse_arch(result["arch"])) == result["arch"]  # canonical Genotype text
                assert len(result["trajectory"]) == result["epochs"] == cfg["search"]["epochs"]
                for record in result["trajectory"]:
                    darts.parse_arch(record["arch"])
                    assert record["nb201_cifar10"] is None
                assert metrics["arch"] == result["arch"]
            assert metrics["space"] == "darts" and 0 <= metrics["test_accuracy"] <= 100
            net = NetworkCIFAR(metrics["arch"], retrain["channels"], retrain["layers"], **FMNIST)
            assert metrics["params"] == count_params_darts(net)


def test_report_lists_every_method_with_genotype_accuracy_and_params(smoke_darts_pipeline):
    cfg, out = smoke_darts_pipeline["config"], results(smoke_darts_pipeline)
    summary = pd.read_csv(out / "report" / "summary.csv")
    references = [f"ref-{name}" for name in cfg["references"]["darts"]]
    assert sorted(summary.method) == sorted([*cfg["methods"], "random", *references]) and set(summary.space) == {"darts"}
    assert not set(NB201_COLUMNS) & set(summary.columns)
    assert summary.test_accuracy.between(0, 100).all() and (summary.params > 0).all()
    for row in summary.itertuples():
        metrics = json.loads((out / "retrain" / "fashion-mnist" / "darts" / row.method / f"seed{row.seed}" / "metrics.json").read_text())
        assert row.arch == metrics["arch"] and row.params == metrics["params"]
    executed = json.loads((out / "report" / "report.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    for method in cfg["methods"]:
        assert f"{method} seed 0 (fashion-mnist)" in printed
    assert printed.count("Genotype(normal=") == len(cfg["methods"])


def test_mlflow_holds_every_stage_tagged_darts(smoke_darts_pipeline):
    client = MlflowClient(f"sqlite:///{smoke_darts_pipeline['workdir'] / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(smoke_darts_pipeline["config"]["run"]).experiment_id], filter_string="tags.stage LIKE '%'")
    assert {r.data.tags["stage"] for r in runs} == {
        "build_graphs", "pretrain_vgae", "warmup_supernet", "search_architecture", "retrain_cell", "report"}
    assert {r.data.tags["space"] for r in runs} == {"darts"} and {r.info.status for r in runs} == {"FINISHED"}
    stage1 = next(r for r in runs if r.data.tags["stage"] == "build_graphs")
    assert stage1.data.params["graphs.num_archs"] == str(smoke_darts_pipeline["config"]["graphs"]["num_archs"])
    search = [r for r in runs if r.data.tags["stage"] == "search_architecture"]
    assert all(r.data.tags["found_arch"].startswith("Genotype(") for r in search)


def test_complete_darts_run_schedules_nothing(smoke_darts_pipeline):
    assert planned_jobs(smoke_darts_pipeline) == []


def test_editing_the_darts_eval_network_reruns_only_retrains_and_the_report(smoke_darts_pipeline):
    with edited(smoke_darts_pipeline, "src/e2nas/spaces/darts/network.py"):
        rules = {rule for rule, _ in planned_jobs(smoke_darts_pipeline)}
    assert rules == {"retrain_cell", "report", "all"}


def test_editing_the_darts_supernet_reruns_warmup_and_searches(smoke_darts_pipeline):
    with edited(smoke_darts_pipeline, "src/e2nas/spaces/darts/supernet.py"):
        jobs = planned_jobs(smoke_darts_pipeline)
    rules = {rule for rule, _ in jobs}
    assert {"warmup_supernet", "search_architecture"} <= rules and not {"build_graphs", "pretrain_vgae"} & rules
    searched = {re.search(r"method=([\w-]+)", wc).group(1) for rule, wc in jobs if rule == "search_architecture"}
    assert searched == set(smoke_darts_pipeline["config"]["methods"])


def test_changing_the_retrain_section_reruns_only_retrains_and_the_report(smoke_darts_pipeline):
    with edited_config(smoke_darts_pipeline, "retrain", epochs=2):
        jobs = planned_jobs(smoke_darts_pipeline)
    assert {rule for rule, _ in jobs} == {"retrain_cell", "report", "all"}
    cfg = smoke_darts_pipeline["config"]
    assert sum(rule == "retrain_cell" for rule, _ in jobs) == len(cfg["methods"]) + 1 + len(cfg["references"]["darts"])


def test_a_published_cell_taking_one_input_twice_retrains_as_a_reference(smoke_darts_pipeline):
    """Issue 19: the E2NAS authors' CIFAR-10 cell (two nodes read c_{k-1} twice) goes through the same
    retrain rule and protocol as the found cells, and the report shows it as a reference row."""
    from e2nas import spaces

    space = spaces.get("darts")
    out = results(smoke_darts_pipeline)
    metrics = json.loads((out / "retrain" / "fashion-mnist" / "darts" / "ref-e2nas" / "seed0" / "metrics.json").read_text())
    expected = space.canonical_text(space.reference_cells()["e2nas"].arch)
    assert metrics["arch"] == expected and 0 <= metrics["test_accuracy"] <= 100 and metrics["params"] > 0
    normal = space.parse(expected)[:16]
    assert any(normal[i] == normal[i + 2] for i in range(0, 16, 4))  # a node with the same input in both slots
    found = json.loads((out / "retrain" / "fashion-mnist" / "darts" / "gdas" / "seed0" / "metrics.json").read_text())
    assert len(metrics["history"]["epoch"]) == len(found["history"]["epoch"])  # the found cells' protocol
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert summary.loc[summary.method == "ref-e2nas", "arch"].item() == expected


def test_changing_the_graphs_section_reruns_stage1_and_what_reads_the_vgae(smoke_darts_pipeline):
    with edited_config(smoke_darts_pipeline, "graphs", seed=1):
        jobs = planned_jobs(smoke_darts_pipeline)
    rules = {rule for rule, _ in jobs}
    assert {"build_graphs", "pretrain_vgae", "search_architecture"} <= rules and "warmup_supernet" not in rules
    searched = {re.search(r"method=([\w-]+)", wc).group(1) for rule, wc in jobs if rule == "search_architecture"}
    assert searched == {m for m in smoke_darts_pipeline["config"]["methods"] if m.startswith("e2nas")}

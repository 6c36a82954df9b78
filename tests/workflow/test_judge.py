"""The three-training judge (retrain.judge_seeds, rule judge_cell) in a real run: a cell found by several methods is
trained once per judge seed, and every method's metrics are that cell's trainings."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import copy_project, pipeline_env, snakemake
from e2nas import layout
from e2nas.retrain import found_arch


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_cell_found_three_ways_is_judged_once_per_seed(tmp_path):
    # params scores one cell, the first of the run seed's draw, which is the random reference's cell of that seed;
    # a literal reference names it a third time. One cell, so one judge training per judge seed.
    cell = found_arch(None, 0, "nb201")
    project = copy_project(tmp_path / "project")
    profile = project / "config" / "judge.yaml"
    cfg = yaml.safe_load((project / "config" / "smoke.yaml").read_text())
    cfg.update(run="judge", methods=["params"], seeds=[0], references={"nb201": [cell]})
    cfg["search"]["zero_cost_cells"] = 1
    cfg["retrain"] = {"protocol": "ground-truth", "judge_seeds": [100]}
    profile.write_text(yaml.safe_dump(cfg))
    workdir = tmp_path / "work"
    out = snakemake(project, workdir, "--cores", "2", env=pipeline_env(), profile="judge.yaml", timeout=1400)
    assert out.returncode == 0, out.stderr[-5000:]

    results = workdir / "results" / "judge"
    judged = sorted(results.glob("judge/*/*/*/seed*/metrics.json"))
    key = layout.cell_key(cell)
    assert [p.relative_to(results / "judge").parts for p in judged] == [("fashion-mnist", "nb201", key, "seed100", "metrics.json")]
    assert out.stderr.count("rule judge_cell:") == 1 and out.stderr.count("rule retrain_cell:") == 3
    training = json.loads(judged[0].read_text())
    assert training["arch"] == cell and training["seed"] == 100
    for metrics in sorted(results.glob("retrain/*/*/*/seed0/metrics.json")):  # params, random, the reference
        summary = json.loads(metrics.read_text())
        assert summary["arch"] == cell and summary["test_accuracy"] == training["test_accuracy"], metrics
        assert summary["judge_trainings"] == [{"seed": 100, "test_accuracy": training["test_accuracy"],
                                               "train_seconds": training["train_seconds"]}]

"""The pipeline on a real single-node Slurm (tests/workflow/slurm/local_cluster.py) with profiles/slurm.

One MLflow tracking server on 127.0.0.1 receives every job's run. The smoke pipeline through
Slurm must match a local run of the same config (the session's `smoke_pipeline`) in its files,
their JSON structure and its MLflow runs; `scancel` of a stage mid-epoch must fail that job
cleanly, and the rerun must resume it from its checkpoint.

The two end-to-end tests are slow and skipped (with the reason) when not root or when the
Slurm packages or the executor plugin are missing; CI installs them (.ci/run). Two fast tests
check the profiles themselves.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from slurm.local_cluster import LocalSlurm, die_with_parent, free_port, unavailable_reason

from conftest import REPO, SNAKEMAKE, copy_project, pipeline_env, snakemake


def _why_not() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -c constraints.txt -e '.[dev]')"
    return unavailable_reason()


WHY_NOT = _why_not()
needs_slurm = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")

STAGES = {"build_graphs", "pretrain_vgae", "warmup_supernet", "search_architecture", "retrain_cell", "rank_supernet", "report"}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$", re.M)
# Test-only settings on top of the profile: status checks every 5 s instead of the plugin's 40
# (each job would wait ~1 min to be seen finished), successful jobs' Slurm logs kept for the
# checks, and one thread per job on this 2-core machine (warm-up takes 2: cpus-per-task follows).
THREADS = {"warmup_supernet": 2, "search_architecture": 1, "retrain_cell": 1}
FAST = ["--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs",
        "--set-threads", *[f"{rule}={n}" for rule, n in THREADS.items()]]


@pytest.fixture(scope="module")
def cluster():
    with LocalSlurm(cpus=8) as local:
        yield local


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """The one `mlflow server` every job logs to: 127.0.0.1, SQLite backend, artifacts in a temporary folder."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not answer within 180 s"
            time.sleep(0.5)
        yield uri
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def slurm_project(root: Path, cfg: dict) -> Path:
    project = copy_project(root / "project")  # profiles/ included
    (project / "config" / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    return project


def slurm_args(project: Path, cluster: LocalSlurm, *extra: str) -> list[str]:
    """The README's command: the profile, plus this cluster's account."""
    return ["--profile", str(project / "profiles" / "slurm"), "--default-resources", f"slurm_account={cluster.account}", *FAST, *extra]


def slurm_env(cluster: LocalSlurm, uri: str) -> dict:
    return pipeline_env(MLFLOW_TRACKING_URI=uri, SLURM_CONF=cluster.env["SLURM_CONF"], PATH=cluster.env["PATH"])


def local_jobs(log: str) -> list[tuple[str, str]]:
    """(rule, wildcard values joined by '_') of every job in a local run's log: the plugin's job comment."""
    blocks = re.split(r"^(?:local)?(?:rule|checkpoint) (\w+):$", log, flags=re.M)[1:]
    jobs = []
    for rule, body in zip(blocks[::2], blocks[1::2]):
        wildcards = re.search(r"^\s+wildcards: (.*)$", body, flags=re.M)
        values = [kv.split("=", 1)[1] for kv in wildcards.group(1).split(", ")] if wildcards else []
        if rule != "all":
            jobs.append((rule, "_".join(values)))
    return sorted(jobs)


def shape(value):
    """A JSON document's structure: keys, list lengths and value kinds, not values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return type(value).__name__
    return "number"


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def run_key(run) -> tuple:
    tags = run.data.tags
    return tuple(tags.get(k, "") for k in ("stage", "dataset", "method", "seed"))


def run_structure(client, run) -> dict:
    return {
        "status": run.info.status,
        "tags": sorted(run.data.tags),
        "params": sorted(run.data.params),
        "metrics": sorted(run.data.metrics),
        "artifacts": sorted(artifacts(client, run.info.run_id)),
    }


def test_profiles_name_only_rules_of_the_workflow_and_ask_gpus_only_in_slurm_gpu():
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")), re.M))
    for name in ("slurm", "slurm-gpu"):
        profile = yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())
        assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
        named = set(profile.get("set-threads", {})) | set(profile.get("set-resources", {}))
        assert named and named <= rules, named - rules
        gpu = {rule for rule, res in profile.get("set-resources", {}).items() if res.get("gpu")}
        assert gpu == ({"pretrain_vgae", "warmup_supernet", "search_architecture", "search_standalone", "retrain_cell", "judge_cell",
                       "report"} if name == "slurm-gpu" else set())
        assert not {"slurm_account", "slurm_partition"} & {k for res in profile.get("set-resources", {}).values() for k in res}


@pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None, reason="snakemake-executor-plugin-slurm is not installed")
def test_gpu_profile_resources_reach_the_jobs(tmp_path):
    """A dry run through profiles/slurm-gpu: every training job asks one GPU, cpus follow threads, runtime in minutes."""
    out = snakemake(REPO, tmp_path / "work", "-n", "--cores", "8", "--profile", str(REPO / "profiles" / "slurm-gpu"), env=pipeline_env())
    assert out.returncode == 0, out.stderr[-3000:]
    blocks = dict(re.findall(r"^(?:rule|checkpoint) (\w+):$(.*?)(?=^\S|\Z)", out.stdout + out.stderr, flags=re.M | re.S))
    search = blocks["search_architecture"]
    assert re.search(r"resources: .*\bgpu=1\b", search) and "runtime=1440" in search and "threads: 8" in search  # Slurm: cpus_per_task = threads
    assert "gpu=" not in blocks["build_graphs"]


@pytest.mark.slow
@needs_slurm
@pytest.mark.timeout(2400)
def test_smoke_pipeline_through_slurm_matches_a_local_run(smoke_pipeline, cluster, tracking_server, tmp_path):
    from mlflow.tracking import MlflowClient

    assert cluster.wildcard_or_outside() == {}, f"daemons listen beyond this host: {cluster.listening()}"
    project = slurm_project(tmp_path, smoke_pipeline["config"])
    workdir = tmp_path / "work"
    t0 = time.monotonic()
    out = snakemake(project, workdir, *slurm_args(project, cluster, "--jobs", "8"), env=slurm_env(cluster, tracking_server), timeout=1800)
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stderr[-8000:]
    print(f"smoke pipeline through Slurm: {seconds:.0f} s")

    # Every job of the local run ran as one Slurm job, COMPLETED, the rule's own log written by Slurm.
    expected = local_jobs(smoke_pipeline["log"])
    submitted = dict(SUBMITTED.findall(out.stderr))
    run_uuid = re.search(r"SLURM run ID: (\S+)", out.stderr).group(1)
    jobs = [j for j in cluster.sacct("JobIDRaw", "JobName", "State", "Comment", "AllocCPUS") if j["JobName"] == run_uuid]
    assert sorted(j["JobIDRaw"] for j in jobs) == sorted(submitted)
    assert {j["State"] for j in jobs} == {"COMPLETED"}
    assert sorted(j["Comment"] for j in jobs) == sorted(f"rule_{r}_wildcards_{w}" if w else f"rule_{r}" for r, w in expected)
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)
        assert int(job["AllocCPUS"]) == THREADS.get(rule, 1), job  # cpus_per_task = the rule's threads
        slurm_log = Path(submitted[job["JobIDRaw"]])
        assert slurm_log.name == f"{job['JobIDRaw']}.log"
        assert f"Finished jobid: 0 (Rule: {rule})" in slurm_log.read_text()

    # The same files as the local run, each JSON with the same structure, the same report rows.
    local, remote = smoke_pipeline["workdir"] / "results" / "smoke", workdir / "results" / "smoke"
    assert files(remote) == files(local)
    for rel in sorted(files(local)):
        if rel.endswith(".json"):
            assert shape(json.loads((remote / rel).read_text())) == shape(json.loads((local / rel).read_text())), rel
    summary_local, summary_remote = pd.read_csv(local / "report" / "summary.csv"), pd.read_csv(remote / "report" / "summary.csv")
    assert list(summary_remote.columns) == list(summary_local.columns)
    assert sorted(zip(summary_remote.method, summary_remote.seed)) == sorted(zip(summary_local.method, summary_local.seed))
    assert not (workdir / "results" / "mlflow.db").exists()  # everything went to the server

    # Every stage's MLflow run is on the one server, shaped like the local run's, in one invocation.
    server = MlflowClient(tracking_server)
    local_store = MlflowClient(f"sqlite:///{smoke_pipeline['workdir'] / 'results' / 'mlflow.db'}")
    remote_runs = server.search_runs([server.get_experiment_by_name("smoke").experiment_id], filter_string="tags.stage LIKE '%'")
    local_runs = local_store.search_runs([local_store.get_experiment_by_name("smoke").experiment_id], filter_string="tags.stage LIKE '%'")
    assert len(remote_runs) == len(local_runs) == len(expected)
    assert {run_key(r) for r in remote_runs} == {run_key(r) for r in local_runs}
    assert {r.data.tags["stage"] for r in remote_runs} == STAGES
    by_key = {run_key(r): r for r in local_runs}
    for run in remote_runs:
        assert run_structure(server, run) == run_structure(local_store, by_key[run_key(run)]), run_key(run)
    assert len({r.data.tags["pipeline_invocation"] for r in remote_runs}) == 1  # E2NAS_INVOCATION reached every job
    assert {r.data.tags["notes"] for r in remote_runs} == {smoke_pipeline["config"]["notes"]}


def _warmup_job(cluster: LocalSlurm) -> str | None:
    out = cluster.run("squeue", "-h", "-o", "%i|%k|%T")
    for line in out.stdout.splitlines():
        jobid, comment, state = line.split("|")
        if comment.startswith("rule_warmup_supernet") and state == "RUNNING":
            return jobid
    return None


@pytest.mark.slow
@needs_slurm
@pytest.mark.timeout(1200)
def test_scancel_mid_warmup_fails_the_job_then_the_rerun_resumes_from_its_checkpoint(cluster, tracking_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from e2nas.warmup import load_warmup

    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    epochs = 6
    cfg["run"] = "slurm-kill"
    cfg["data"]["subset_per_half"] = 2048  # 64 steps of 32 per epoch: a few seconds each
    cfg["warmup"]["epochs"] = epochs
    project = slurm_project(tmp_path, cfg)
    workdir = tmp_path / "work"
    results = workdir / "results" / "slurm-kill"
    part = "fashion-mnist/nb201/seed0"
    ckpt = results / "checkpoints" / "warmup_supernet" / f"{part}.pt"
    output = results / "supernet" / "fashion-mnist" / "nb201" / "seed0" / "warmup.pt"
    env = slurm_env(cluster, tracking_server)
    args = [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile", str(project / "config" / "smoke.yaml"),
            *slurm_args(project, cluster, "--until", "warmup_supernet")]

    # No retry this time, so the kill shows as the failure a user would see without the profile's retries.
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([*args, "--retries", "0"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (ckpt.exists() and (jobid := _warmup_job(cluster))):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-5000:]
            assert time.monotonic() < deadline, "no checkpoint of a running warm-up job after 600 s"
            time.sleep(0.2)
        assert not output.exists(), "the stage finished before the kill"
        cancel = cluster.run("scancel", jobid)
        assert cancel.returncode == 0, cancel.stderr
        while jobid in cluster.run("squeue", "-h", "-o", "%i").stdout.split():  # until its processes are gone
            assert time.monotonic() < deadline, f"job {jobid} still listed after scancel"
            time.sleep(0.2)
        done = int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"])
        assert proc.wait(timeout=300) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    killed_log = (tmp_path / "killed.log").read_text()

    # Failed cleanly: Snakemake names the Slurm job and its state, keeps the logs and the
    # checkpoint, writes no output and leaves no lock behind.
    assert f"SLURM-job '{jobid}' failed, SLURM status is: 'CANCELLED'" in killed_log
    assert "Error in rule warmup_supernet" in killed_log
    (state,) = [j["State"] for j in cluster.sacct("JobIDRaw", "State") if j["JobIDRaw"] == jobid]
    assert state.startswith("CANCELLED")
    assert 0 <= done < epochs - 1 and ckpt.exists() and not output.exists()
    assert not output.parent.exists() or not any(output.parent.iterdir())  # nothing half-written for stage 4

    # The same command, as a user would type it again: the stage resumes after its last checkpoint.
    rerun = snakemake(project, workdir, *slurm_args(project, cluster, "--until", "warmup_supernet"), env=env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    (resumed,) = SUBMITTED.findall(rerun.stderr)
    (state,) = [j["State"] for j in cluster.sacct("JobIDRaw", "State") if j["JobIDRaw"] == resumed[0]]
    assert state == "COMPLETED"
    net, meta = load_warmup(output)
    assert meta["history"]["epoch"] == list(range(epochs))
    assert not ckpt.exists()
    executed = json.loads((results / "notebooks" / "warmup_supernet" / f"{part}.ipynb").read_text())
    assert not executed["metadata"]["papermill"]["exception"]
    bars = set(re.findall(rf"warm-up epoch (\d+)/{epochs}", json.dumps(executed)))
    assert bars == {str(e + 1) for e in range(done + 1, epochs)}  # only the remaining epochs ran (tqdm is 1-based)

    # On the server: the killed run is marked KILLED by the rerun; the rerun logged only the rest.
    client = MlflowClient(tracking_server)
    runs = client.search_runs([client.get_experiment_by_name("slurm-kill").experiment_id], filter_string="tags.stage LIKE '%'")
    by_status = {r.info.status: r for r in runs}
    assert len(runs) == 2 and set(by_status) == {"KILLED", "FINISHED"}
    steps = lambda r: sorted(m.step for m in client.get_metric_history(r.info.run_id, "loss"))  # noqa: E731
    assert steps(by_status["FINISHED"]) == list(range(done + 1, epochs))
    assert set(steps(by_status["KILLED"])) <= set(range(done + 1))
    assert by_status["KILLED"].data.tags["pipeline_invocation"] != by_status["FINISHED"].data.tags["pipeline_invocation"]
    print(f"scancel of Slurm job {jobid} after epoch {done + 1}/{epochs}; job {resumed[0]} resumed at epoch {done + 2}")

"""Reliability and security (issue 7): kill and resume, a real tracking server, bad inputs, safe loading.

Covered elsewhere, not repeated here:
- 8 parallel writers on one fresh SQLite store: tests/test_tracking.py::test_parallel_writers_on_a_fresh_sqlite_store
- unknown dataset / space / method, wrongly typed lists: tests/test_workflow.py::test_bad_config_fails_before_any_job_naming_the_key
- malformed NB201 strings: tests/test_spaces.py; NB201 table with wrong columns: tests/test_benchmarks.py
- config strings never reach a shell: tests/test_pipeline.py::test_hostile_config_string_arrives_intact_and_runs_nothing
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, SNAKEMAKE, copy_project, kill_tree, pipeline_env, snakemake
from e2nas import data as data_mod
from e2nas import spaces, tracking
from e2nas.checkpoint import CheckpointError, DivergedError, EpochCheckpoint, safe_load
from e2nas.data import DatasetError, ImageData, load_dataset, load_split, make_split, save_split
from e2nas.graphs import GraphSet, build_graph_set
from e2nas.spaces import nb201
from e2nas.vgae import VGAEConfig, load_vgae, save_vgae
from e2nas.vgae.train import build_model
from e2nas.warmup import WarmupConfig, load_warmup, run_warmup

torch.set_num_threads(1)

NET = spaces.get("nb201").config("supernet", {"channels": 4, "cells_per_stage": 1})
WARMUP_RULE_PATH = "fashion-mnist/nb201/seed0"


def toy_data(n: int = 128, classes: int = 4, size: int = 8, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, 1, size, size, generator=g)
    y, ty = torch.randint(classes, (n,), generator=g), torch.randint(classes, (n // 4,), generator=g)
    x = templates[y] + 0.3 * torch.randn(n, 1, size, size, generator=g)
    tx = templates[ty] + 0.3 * torch.randn(n // 4, 1, size, size, generator=g)
    return ImageData("toy", classes, 1, size, x, y, tx, ty, augment=True, pad=1)


def warm(data, tmp_path, cfg: WarmupConfig, **kw):
    out, ckpt = tmp_path / "out" / "warmup.pt", tmp_path / "ckpt" / "warmup.pt"
    split = make_split(len(data.train_y), seed=0)
    history = run_warmup(data, split, NET, cfg, 7, out, ckpt, progress=False, space="nb201", **kw)
    return out, ckpt, history


class Stop(Exception):
    """Stands in for a kill between two epochs."""


# ---------------------------------------------------------------- 5. security


def _torch_load_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            base = node.func.value
            if isinstance(base, ast.Name) and base.id == "torch":
                yield node


def test_every_torch_load_in_src_is_weights_only():
    sources = sorted((REPO / "src" / "e2nas").rglob("*.py"))
    calls, unsafe = 0, []
    for path in sources:
        text = path.read_text()
        tree = ast.parse(text)
        found = list(_torch_load_calls(tree))
        # A `from torch import load` or `torch.load` passed around would dodge the AST check.
        assert not re.search(r"from torch import[^\n]*\bload\b", text), path
        refs = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "load"
                and isinstance(n.value, ast.Name) and n.value.id == "torch"]
        assert len(found) == len(refs), f"{path}: torch.load used other than as a direct call"
        for call in found:
            calls += 1
            kw = {k.arg: k.value for k in call.keywords}
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                unsafe.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert calls >= 1  # the check found the loader (checkpoint.safe_load)
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"


def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    torch.save({"state_dict": Evil()}, path)
    for load in (load_vgae, load_warmup, lambda p: EpochCheckpoint(p, {}).load()):
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load(path)
    assert not marker.exists()


def test_mlflow_ui_commands_bind_to_localhost():
    """The UI commands bind to 127.0.0.1; no command anywhere binds to every interface.
    (The cluster section's team server binds to a host the user names, on purpose.)"""
    commands = []
    for name in ("README.md", "Makefile"):
        for line in (REPO / name).read_text().splitlines():
            if re.search(r"mlflow (ui|server)\b", line):
                commands.append((name, line))
                assert "0.0.0.0" not in line, f"{name}: {line}"
    ui = [(name, line) for name, line in commands if re.search(r"mlflow ui\b", line)]
    assert {name for name, _ in ui} == {"README.md", "Makefile"}
    for name, line in ui:
        assert re.search(r"(--host|-h) 127\.0\.0\.1\b", line), f"{name}: {line}"


# ---------------------------------------------------------------- 4. bad inputs, one clear error each


@pytest.mark.parametrize(
    "section, change, names",
    [
        ("search", {"epochs": 0}, ["search.epochs = 0", "must be >= 1"]),
        ("vgae", {"lr": "fast"}, ["vgae.lr = 'fast'", "expected number"]),
        ("warmup", {"batch_size": 2.5}, ["warmup.batch_size = 2.5", "expected integer"]),
        ("search", {"w_lr_min": 0.5, "w_lr": 0.1}, ["search.w_lr_min = 0.5 is larger than search.w_lr = 0.1"]),
    ],
)
def test_config_value_of_wrong_type_or_range_fails_before_any_job(tmp_path, section, change, names):
    cfg = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    cfg[section] = {**cfg[section], **change}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), "--configfile", str(path), "--cores", "1"],
        capture_output=True, text=True, timeout=300,
    )
    text = out.stderr + out.stdout
    assert out.returncode != 0
    assert "invalid configuration" in text and len(text.splitlines()) <= 12  # one screen, not the schema
    for name in names:
        assert name in text
    assert "Traceback" not in text and 'File "' not in text
    assert not (tmp_path / "work" / "results").exists()


def test_missing_dataset_files_name_every_folder_and_the_fix(tmp_path, monkeypatch):
    """$E2NAS_DATA_DIR at an empty folder, no Debian package: one DatasetError, no traceback needed."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(data_mod.ENV_VAR, str(empty))
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", str(tmp_path / "no-debian-package"))
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", download=False)
    msg = str(err.value)
    assert str(empty) in msg and str(tmp_path / "no-debian-package") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and data_mod.ENV_VAR in msg
    assert list(empty.iterdir()) == []  # nothing written where the user keeps data


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """One genuine file of each kind the stages read with torch: (name, path, loader, fix words)."""
    root = tmp_path_factory.mktemp("files")
    graphs = build_graph_set("nb201", nb201.all_archs()[:4])
    graphs.save(root / "graphs.pt")
    vcfg = VGAEConfig(latent_dim=4, hidden_dim=8, num_layers=1, decoder_layers=1)
    save_vgae(build_model(graphs, vcfg, torch.device("cpu")), vcfg, "nb201", root / "model.pt")
    toy = toy_data(64)
    split = make_split(64, 0)
    run_warmup(toy, split, NET, WarmupConfig(epochs=1, batch_size=32), 0, root / "warmup.pt", root / "w.ckpt", progress=False, space="nb201")
    save_split(split, root / "split.pt")
    EpochCheckpoint(root / "epoch.pt", {"stage": "test"}).save(0, model={"w": torch.randn(64, 64)})
    return {
        "graphs": (root / "graphs.pt", GraphSet.load),
        "vgae": (root / "model.pt", load_vgae),
        "warmup": (root / "warmup.pt", load_warmup),
        "split": (root / "split.pt", load_split),
        "checkpoint": (root / "epoch.pt", lambda p: EpochCheckpoint(p, {"stage": "test"}).load()),
    }


KINDS = ["graphs", "vgae", "warmup", "split", "checkpoint"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_corrupt_or_foreign_file_names_the_file_and_the_fix(real_files, tmp_path, kind, damage):
    good, load = real_files[kind]
    load(good)  # the genuine file loads
    bad = tmp_path / good.name
    if damage == "garbage":
        bad.write_bytes(b"\x00 definitely not a torch file \xff" * 10)
    elif damage == "truncated":  # what a kill mid-write would leave without atomic_save
        blob = good.read_bytes()
        bad.write_bytes(blob[: len(blob) // 2])
    else:  # a valid torch file that e2nas did not write
        torch.save({"something": torch.zeros(3)}, bad)
    with pytest.raises(CheckpointError) as err:
        load(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert "rerun" in msg or "delete it" in msg  # the fix, not just the problem


def test_checkpoint_from_another_config_names_the_differing_setting(tmp_path):
    path = tmp_path / "ckpt.pt"
    EpochCheckpoint(path, {"lr": 0.025, "epochs": 6}).save(2, model={})
    with pytest.raises(CheckpointError) as err:
        EpochCheckpoint(path, {"lr": 0.1, "epochs": 6}).load()
    msg = str(err.value)
    assert str(path) in msg and "lr: file 0.025 vs config 0.1" in msg and "delete it to start over" in msg
    assert "epochs" not in msg.split("(")[1]  # only what differs is listed
    assert EpochCheckpoint(path, {"lr": 0.025, "epochs": 6}).load()["epoch"] == 2  # and the file is untouched


def test_huge_learning_rate_stops_warmup_naming_the_epoch(tmp_path):
    with pytest.raises(DivergedError) as err:
        warm(toy_data(), tmp_path, WarmupConfig(epochs=3, batch_size=16, lr=1e9, lr_min=1e9))
    msg = str(err.value)
    assert "diverged in epoch 1 " in msg and "Lower the learning rate" in msg
    assert not (tmp_path / "out" / "warmup.pt").exists()


def test_divergence_keeps_the_last_good_checkpoint_and_it_resumes(tmp_path):
    cfg = WarmupConfig(epochs=3, batch_size=16)

    def stop_after_first_epoch(record):
        raise Stop

    with pytest.raises(Stop):
        warm(toy_data(), tmp_path, cfg, on_epoch=stop_after_first_epoch)
    ckpt = tmp_path / "ckpt" / "warmup.pt"
    assert safe_load(ckpt)["epoch"] == 0

    poisoned = toy_data()
    poisoned.train_x[:] = float("inf")  # the second epoch sees non-finite inputs: its loss is NaN
    with pytest.raises(DivergedError) as err:
        warm(poisoned, tmp_path, cfg)
    msg = str(err.value)
    assert "diverged in epoch 2 " in msg and f"last good checkpoint {ckpt} is kept" in msg
    assert safe_load(ckpt)["epoch"] == 0  # the good state was not overwritten by the diverged epoch
    assert not (tmp_path / "out" / "warmup.pt").exists()

    out, _, history = warm(toy_data(), tmp_path, cfg)  # the kept checkpoint is usable
    assert history["epoch"] == [0, 1, 2] and all(map(lambda v: v == v, history["loss"]))
    assert out.exists() and not ckpt.exists()


def test_huge_learning_rate_stops_the_search_naming_the_epoch(tmp_path):
    from e2nas.search import SearchConfig, run_search

    toy = toy_data()
    warmup = tmp_path / "warmup.pt"
    run_warmup(toy, make_split(128, 0), NET, WarmupConfig(epochs=1, batch_size=32), 0, warmup, tmp_path / "w.ckpt", progress=False, space="nb201")
    cfg = SearchConfig(epochs=2, batch_size=16, w_lr=1e9, w_lr_min=1e9, rsps_eval_images=16, rsps_num_candidates=2, eval_batch_size=16)
    with pytest.raises(DivergedError, match="diverged in epoch 1 .*Lower the learning rate"):
        run_search("gdas", toy, warmup, None, cfg, 0, tmp_path / "result.json", tmp_path / "s.ckpt", progress=False)
    assert not (tmp_path / "result.json").exists()


# ---------------------------------------------------------------- 3. tracking, fast parts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_retry_defaults_are_values_mlflow_accepts(monkeypatch):
    from mlflow import environment_variables as ev

    for name, value in tracking.HTTP_DEFAULTS.items():
        monkeypatch.setenv(name, value)
        var = getattr(ev, name)
        assert var.get() == var.type(value)  # MLflow parses them (the backoff factor as an int)


def test_dead_server_fails_a_stage_in_seconds_naming_the_uri(tmp_path, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in tracking.HTTP_DEFAULTS:
        monkeypatch.delenv(name, raising=False)  # the defaults e2nas sets must do the job
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError) as err:
        tracking.start_stage_run("exp", "build_graphs", {}, {}, None, tmp_path / "results")
    seconds = time.monotonic() - t0
    assert seconds < 20, f"took {seconds:.1f} s"  # MLflow's own defaults (7 retries, backoff 2) take minutes
    msg = str(err.value)
    assert uri in msg and "MLFLOW_TRACKING_URI" in msg and "Start the server" in msg
    with pytest.raises(tracking.TrackingError, match=re.escape(uri)):
        tracking.init_store(tmp_path / "results")  # the onstart check, before any job starts
    assert not (tmp_path / "results").exists()


def test_a_killed_stage_run_is_marked_killed_by_the_rerun(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    results, run_file = tmp_path / "results", tmp_path / "nb.ipynb.mlflow_run"
    killed = tracking.start_stage_run("exp", "warmup_supernet", {}, {}, run_file, results)  # never finished
    rerun = tracking.start_stage_run("exp", "warmup_supernet", {}, {}, run_file, results)
    client = MlflowClient(tracking.tracking_uri(results))
    assert client.get_run(killed.run_id).info.status == "KILLED"
    assert client.get_run(rerun.run_id).info.status == "RUNNING"
    assert run_file.read_text().strip() == rerun.run_id


# ---------------------------------------------------------------- 1. SIGKILL mid-stage, then resume (slow)


def project_copy(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    return copy_project(tmp_path / "project")


def _pipeline_cmd(project: Path, workdir: Path, *args: str) -> list[str]:
    config = project / "config" / "smoke.yaml"
    return [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile", str(config), *args]


def _stray_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and (".tmp" in p.name or p.name.startswith("."))]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_mid_warmup_then_rerun_resumes_from_the_checkpoint(tmp_path):
    project = project_copy(tmp_path)
    smoke = project / "config" / "smoke.yaml"
    cfg = yaml.safe_load(smoke.read_text())
    epochs = 6
    cfg["data"]["subset_per_half"] = 2048  # 64 steps of 32 per epoch: about 1-8 s on 2 shared cores
    cfg["warmup"]["epochs"] = epochs
    smoke.write_text(yaml.safe_dump(cfg))
    workdir = tmp_path / "work"
    results = workdir / "results" / "smoke"
    ckpt = results / "checkpoints" / "warmup_supernet" / f"{WARMUP_RULE_PATH}.pt"
    output = results / "supernet" / "fashion-mnist" / "nb201" / "seed0" / "warmup.pt"
    env = pipeline_env()

    # Start the stage; as soon as its first epoch is checkpointed, kill the whole job tree.
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(
        _pipeline_cmd(project, workdir, "--cores", "1", "--until", "warmup_supernet"),
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not ckpt.exists():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 600 s"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the next epoch
        assert proc.poll() is None and not output.exists(), "the stage finished before the kill"
    finally:
        kill_tree(proc)
        log.close()

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    done = int(state["epoch"])
    assert 0 <= done < epochs - 1 and state["log"]["epoch"] == list(range(done + 1))
    assert not output.exists() and not list(output.parent.glob("*"))  # nothing half-written for stage 4
    assert not _stray_files(results / "supernet")

    # After SIGKILL Snakemake's lock stays; plain `snakemake` refuses and says what to do.
    locked = snakemake(project, workdir, "--cores", "1", "--until", "warmup_supernet", env=env, timeout=600)
    assert locked.returncode != 0 and "--unlock" in locked.stderr
    unlock = snakemake(project, workdir, "--unlock", env=env, timeout=600)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    # ... then the same command as before, no --rerun-incomplete needed: the output was never written.
    rerun = snakemake(project, workdir, "--cores", "1", "--until", "warmup_supernet", env=env, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-5000:]

    # Complete, valid output; the checkpoint is gone; only the remaining epochs ran.
    net, meta = load_warmup(output)
    assert meta["history"]["epoch"] == list(range(epochs))
    assert all(s > 0 for s in meta["history"]["seconds"])
    assert not ckpt.exists() and not _stray_files(results / "supernet") and not _stray_files(results / "checkpoints")
    executed = json.loads((results / "notebooks" / "warmup_supernet" / f"{WARMUP_RULE_PATH}.ipynb").read_text())
    assert not executed["metadata"]["papermill"]["exception"]
    bars = set(re.findall(rf"warm-up epoch (\d+)/{epochs}", json.dumps(executed)))
    assert bars == {str(e + 1) for e in range(done + 1, epochs)}  # tqdm labels are 1-based

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], filter_string="tags.stage LIKE '%'")
    by_status = {r.info.status: r for r in runs}
    assert len(runs) == 2 and set(by_status) == {"KILLED", "FINISHED"}
    steps = lambda r: sorted(m.step for m in client.get_metric_history(r.info.run_id, "loss"))  # noqa: E731
    assert steps(by_status["FINISHED"]) == list(range(done + 1, epochs))
    assert set(steps(by_status["KILLED"])) <= set(range(done + 1))
    assert [a.path for a in client.list_artifacts(by_status["FINISHED"].info.run_id, "notebook")] == ["notebook/warmup_supernet-seed0.html", "notebook/warmup_supernet-seed0.ipynb"]


# ---------------------------------------------------------------- 3. a real tracking server (slow)


@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on 127.0.0.1 with its own SQLite store and artifact folder; always stopped."""
    port = free_port()
    folder = tmp_path / "server"
    folder.mkdir()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
    )
    uri = f"http://127.0.0.1:{port}"

    def stop():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

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
        yield {"uri": uri, "stop": stop, "artifacts": folder / "artifacts"}
    finally:
        stop()
        log.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stage_against_a_tracking_server_then_with_the_server_down(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    uri = mlflow_server["uri"]
    project = project_copy(tmp_path)
    workdir = tmp_path / "work"
    env = pipeline_env(MLFLOW_TRACKING_URI=uri)
    out = snakemake(project, workdir, "--cores", "1", "--until", "build_graphs", env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-5000:]
    graphs = workdir / "results" / "smoke" / "graphs"
    assert not (workdir / "results" / "mlflow.db").exists()  # everything went to the server

    # Read the run and its artifacts back over HTTP.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.stage LIKE '%'")
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "build_graphs"
    assert run.data.metrics["num_unique"] == 15625 and run.data.params["space"] == "nb201"
    paths = {a.path for top in ("notebook", "outputs", "plots") for a in client.list_artifacts(run.info.run_id, top)}
    assert paths == {"notebook/build_graphs.html", "notebook/build_graphs.ipynb", "outputs/nb201.json", "outputs/nb201.pt", "plots/op_counts.png"}
    fetched = Path(client.download_artifacts(run.info.run_id, "notebook/build_graphs.ipynb", str(tmp_path)))
    executed = json.loads(fetched.read_text())
    assert executed["metadata"]["papermill"]["end_time"] and not executed["metadata"]["papermill"]["exception"]
    summary = Path(client.download_artifacts(run.info.run_id, "outputs/nb201.json", str(tmp_path)))
    assert json.loads(summary.read_text()) == json.loads((graphs / "nb201.json").read_text())
    assert any(mlflow_server["artifacts"].rglob("nb201.pt"))  # stored by the server, served over HTTP

    # Server down: the rerun fails in seconds, naming the URI, before any job deletes an output.
    mlflow_server["stop"]()
    before = {p.name: p.stat().st_mtime_ns for p in graphs.iterdir()}
    t0 = time.monotonic()
    down = snakemake(project, workdir, "--cores", "1", "--until", "build_graphs", "--forcerun", "build_graphs", env=env, timeout=600)
    seconds = time.monotonic() - t0
    assert down.returncode != 0
    assert seconds < 60, f"took {seconds:.0f} s"
    assert f"MLflow tracking store {uri} failed" in down.stderr and "Start the server or fix MLFLOW_TRACKING_URI" in down.stderr
    assert {p.name: p.stat().st_mtime_ns for p in graphs.iterdir()} == before  # nothing lost
    print(f"dead server: snakemake failed after {seconds:.1f} s")

"""One pipeline per run, and what a run says when it stops (issue 29, items 5, 8 and 9; e2nas.run_control)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from conftest import SNAKEMAKE, copy_project, pipeline_env, snakemake
from e2nas import atomic, layout, run_control
from e2nas.run_control import RunLock, RunLocked

HOLD = ("import sys, time; from e2nas.run_control import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('held', flush=True); time.sleep(120)")


def holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_naming_the_first_and_a_killed_holder_frees_the_run(tmp_path):
    run_dir = tmp_path / "results" / "smoke"
    first = holder(run_dir)
    try:
        with pytest.raises(RunLocked) as err:
            RunLock(run_dir).acquire()
        text = str(err.value)
        assert f"PID {first.pid} on " in text and "--unlock does not apply" in text and len(text.splitlines()) == 1
    finally:
        first.send_signal(signal.SIGKILL)  # a kill, as a lost machine: nothing unlocks it by hand
        first.wait()
    RunLock(run_dir).acquire().release()


def test_the_run_start_removes_only_the_killed_writers_temporary_files(tmp_path):
    run_dir = tmp_path / "results" / "smoke"
    (run_dir / "search").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    host = atomic.temporary_path(run_dir / "x").name.split("-")[1]
    orphan = run_dir / "search" / f".result.json.tmp-{host}-{dead}-{'0' * 16}"
    foreign = run_dir / "search" / f".result.json.tmp-otherhost-{dead}-{'1' * 16}"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live_writer:
        live = run_dir / "search" / f".metrics.json.tmp-{host}-{live_writer.pid}-{'2' * 16}"
        for path in (orphan, foreign, live):
            path.write_text("half")
        try:
            run_control.start_run(tmp_path / "results", "smoke")
            assert not orphan.exists() and foreign.exists() and live.exists()
        finally:
            run_control.end_run()
            live_writer.kill()


def test_a_damaged_result_file_is_named_with_the_command_that_reruns_its_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = Path("results/smoke")
    good = run_dir / "search/fashion-mnist/nb201/gdas/seed0/result.json"
    bad = run_dir / "search/fashion-mnist/nb201/e2nas/seed0/result.json"
    for path in (good, bad):
        path.parent.mkdir(parents=True)
    good.write_text(json.dumps({"arch": "x"}))
    bad.write_text('{"arch": "|nor_conv_3x3~0|+|nor_co')  # truncated
    assert run_control.damaged_outputs(run_dir) == [bad]
    note = run_control.damaged_note(run_dir)
    assert f"with --forcerun {bad} added" in note and str(good) not in note
    assert run_control.damaged_note(tmp_path / "nothing") is None


def test_a_stop_signal_is_recorded_on_its_way_to_the_handler_in_place():
    code = ("import os, signal, sys; from e2nas.run_control import StopSignals\n"
            "signal.signal(signal.SIGTERM, lambda s, f: print('snakemake handler', flush=True))\n"
            "StopSignals.install(); os.kill(os.getpid(), signal.SIGTERM)\n"
            "print(StopSignals.note())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[0] == "snakemake handler"  # Snakemake's own graceful stop still runs
    assert out.stdout.splitlines()[1].startswith("stopped on request (SIGTERM): ")


def test_sigterm_stops_the_running_jobs_with_sigint_and_an_ignored_sigint_stays_ignored(tmp_path):
    """Snakemake's own SIGTERM handler only stops scheduling and waits for the running jobs (a search: many
    minutes); its jobs now get SIGINT, as from Ctrl-C in a terminal. A SIGINT the process was started ignoring
    (a script's `nohup snakemake … &`) is left ignored, not turned into a stop request."""
    job = ("import signal, sys, time\n"
           "signal.signal(signal.SIGINT, lambda s, f: (print('job got SIGINT', flush=True), sys.exit(130)))\n"
           "print('job running', flush=True); time.sleep(60); print('job finished', flush=True)\n")
    code = ("import os, signal, subprocess, sys, time; from e2nas.run_control import StopSignals\n"
            "signal.signal(signal.SIGTERM, lambda s, f: None)\n"  # Snakemake's graceful handler: stops nothing
            f"child = subprocess.Popen([sys.executable, '-c', {job!r}], stdout=subprocess.PIPE, text=True)\n"
            "assert child.stdout.readline() == 'job running\\n'\n"
            "StopSignals.install(); start = time.monotonic(); os.kill(os.getpid(), signal.SIGTERM)\n"
            "print(child.stdout.read().strip(), child.wait(), f'{time.monotonic() - start < 30}')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "job got SIGINT 130 True", out.stderr[-2000:]

    ignored = ("import os, signal; from e2nas.run_control import StopSignals\n"
               "signal.signal(signal.SIGINT, signal.SIG_IGN); StopSignals.install()\n"
               "os.kill(os.getpid(), signal.SIGINT); print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "
               "StopSignals.note())\n")
    out = subprocess.run([sys.executable, "-c", ignored], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True None", out.stderr[-2000:]


def test_a_second_pipeline_of_a_run_stops_at_its_start_naming_the_first(tmp_path):
    """Item 5: after `--unlock` (which the lock message suggests) a second pipeline deleted the first's files;
    now it stops before any job, with one line naming the first's PID."""
    project = copy_project(tmp_path / "project")
    workdir = tmp_path / "work"
    first = holder(workdir / "results" / "smoke")  # the first pipeline, still running
    try:
        out = snakemake(project, workdir, "--cores", "1", env=pipeline_env(), timeout=600)
    finally:
        first.kill()
    assert out.returncode == 1
    line = [x for x in out.stderr.splitlines() if "in use by another pipeline" in x]
    assert len(line) == 1 and f"PID {first.pid} on " in line[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in (workdir / "results").rglob("*") if p.is_file()) == [run_control.LOCK_NAME]  # no job ran


@pytest.mark.slow  # a smoke pipeline whose warm-up is made too long to finish, stopped while it trains
def test_sigterm_to_snakemake_stops_the_running_warmup_says_so_and_keeps_its_checkpoint(tmp_path):
    """Item 9: SIGTERM ended Snakemake with "At least one job did not complete successfully" after a clean stop;
    and Snakemake alone lets a running job finish (minutes for a search). The warm-up here would take many
    minutes, so the run ends early only if the stop reached the job; its last epoch's checkpoint is kept."""
    project = copy_project(tmp_path / "project")
    profile = project / "config" / "smoke.yaml"
    cfg = yaml.safe_load(profile.read_text())
    cfg["warmup"]["epochs"] = 20_000  # smoke's epoch is a fraction of a second: an hour or more in all
    profile.write_text(yaml.safe_dump(cfg))
    workdir = tmp_path / "work"
    run = workdir / "results" / "smoke"
    job = dict(dataset="fashion-mnist", space="nb201", seed=0)
    checkpoint = Path(layout.checkpoint("warmup_supernet", run="smoke", root=str(workdir / "results"), **job))
    warmup = Path(layout.path("warmup", run="smoke", root=str(workdir / "results"), **job))
    cmd = [SNAKEMAKE, "-s", str(project / "Snakefile"), "-d", str(workdir), "--configfile", str(profile), "--cores", "2"]
    log = tmp_path / "snakemake.err"  # a file, not a pipe: a job left running must not hold the test's reads open
    with log.open("w") as stderr:
        proc = subprocess.Popen(cmd, env=pipeline_env(), stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    jobs = []
    try:
        deadline = time.monotonic() + 900
        while not checkpoint.exists():  # the warm-up has trained an epoch: it is in its loop
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        jobs = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)  # a hang guard: unstopped, the warm-up runs on for an hour
    finally:
        for process in [psutil.Process(proc.pid), *jobs] if proc.poll() is None else jobs:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        proc.wait()
    err = log.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "stopped on request (SIGTERM)" in err and "rerun the same command to resume" in err
    assert "At least one job did not complete successfully" not in err
    assert not warmup.exists() and checkpoint.exists(), err[-3000:]  # stopped mid-way, resumable
    assert not RunLock(run).held_elsewhere()


@pytest.mark.slow  # a copy of the finished smoke pipeline, one of its search results truncated
def test_a_truncated_search_result_is_named_with_a_command_that_reruns_the_search(smoke_pipeline, tmp_path):
    """Item 8: a truncated result.json said "rerun the search stage", but a plain rerun replanned only the retrain
    and failed again; the failed run now names the file and a command that does rerun the search."""
    root = smoke_pipeline["project"].parent
    shutil.copytree(root, tmp_path / "copy", symlinks=True)
    project, workdir = tmp_path / "copy" / "project", tmp_path / "copy" / "work"
    run = workdir / "results" / smoke_pipeline["config"]["run"]
    result = next(run.glob("search/*/*/e2nas/seed0/result.json"))
    good = json.loads(result.read_text())
    result.write_text(result.read_text()[:40])  # as a disk-full write left it before atomic writes named the errno
    next(run.glob("retrain/*/*/e2nas/seed0/metrics.json")).unlink()  # its consumer reruns
    failed = snakemake(project, workdir, "--cores", "2", env=pipeline_env())
    assert failed.returncode != 0
    rel = result.relative_to(workdir)
    assert "damaged result file(s)" in failed.stderr and f"with --forcerun {rel} added" in failed.stderr, failed.stderr[-4000:]
    again = snakemake(project, workdir, "--cores", "2", "--forcerun", str(rel), env=pipeline_env())  # the command it names
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads(result.read_text())["arch"] == good["arch"]  # the search ran again, to the same cell


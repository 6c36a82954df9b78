"""The `e2nas` console script: its subcommands wrap the pipeline, the config check, the UI and the tables."""

import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO


@pytest.fixture(autouse=True)
def own_store(tmp_path, monkeypatch):
    """`e2nas check` opens the tracking store as a run's start would: a store of the test's own, not results/."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    (tmp_path / "store").mkdir()


def e2nas(*args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "e2nas.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd or REPO, **kw)


def test_help_lists_the_common_jobs():
    out = e2nas("--help")
    assert out.returncode == 0
    assert all(word in out.stdout for word in ("run", "check", "ui", "table convert", "table build", "table summary"))


def test_check_accepts_every_profile_and_names_a_bad_key_or_an_empty_file(tmp_path):
    for profile in ("default", "smoke", "study-nb201", "smoke-darts"):
        out = e2nas("check", "--profile", profile)
        assert out.returncode == 0 and "configuration OK" in out.stdout, (profile, out.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  epoch: 3\n")
    out = e2nas("check", "--configfile", bad)
    assert out.returncode == 1 and "unknown key 'epoch' in section `search` (did you mean 'epochs'?)" in out.stderr
    assert "Traceback" not in out.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    out = e2nas("check", "--configfile", empty)
    assert out.returncode == 1 and f"config file {empty} is empty" in out.stderr


def test_an_unknown_profile_lists_the_profiles():
    out = e2nas("run", "--profile", "nope")
    assert out.returncode == 1 and "no profile 'nope'" in out.stderr and "smoke" in out.stderr


@pytest.mark.slow  # a Snakemake dry run
def test_run_passes_its_arguments_to_snakemake():
    out = e2nas("run", "--profile", "smoke", "--cores", "1", "-n", "--quiet", "rules")
    assert out.returncode == 0, out.stderr
    assert "retrain_cell" in out.stdout + out.stderr


def test_run_help_says_where_the_other_arguments_go():
    out = e2nas("run", "--help")
    assert out.returncode == 0 and "Every argument e2nas run does not know goes to snakemake" in out.stdout
    assert "e2nas run --profile smoke -n" in out.stdout


def test_check_opens_the_tracking_store_as_a_run_would(tmp_path):
    out = e2nas("check", "--profile", "smoke")
    assert out.returncode == 0 and f"tracking store OK (sqlite:///{tmp_path / 'store' / 'mlflow.db'})" in out.stdout, out.stderr
    broken = tmp_path / "store" / "mlflow.db"
    broken.write_bytes(b"not a database" * 100)
    out = e2nas("check", "--profile", "smoke")
    assert out.returncode == 1 and "is not a readable MLflow database" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("text, expected", [
    (None, "config file {path} is a folder, not a YAML file"),
    ("run: x\nnotes: !!python/object/apply:os.system ['touch PWNED']\n",
     "config file {path}, line 2, column 8: the tag !!python/object/apply:os.system is not allowed"),
    ("run: x\nsearch:\n  epochs: [3\n", "config file {path}, line 4, column 1: expected ',' or ']'"),
    ("run: x\nreferences:\n  darts: [\"Genotype(normal=[], normal_concat=range(0, 200000000), reduce=[], reduce_concat=[])\"]\n",
     "references.darts[0]: "),
])
def test_check_names_a_file_it_cannot_take_in_one_line(tmp_path, text, expected):
    """Item 7: a directory, a !!python tag, broken YAML gave tracebacks; an invalid reference of another space passed."""
    path = tmp_path / "cfg"
    if text is None:
        path.mkdir()
    else:
        path = tmp_path / "cfg.yaml"
        path.write_text(text)
    out = e2nas("check", "--configfile", path, cwd=tmp_path)
    assert out.returncode == 1 and expected.format(path=path) in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) <= 3
    assert not (tmp_path / "PWNED").exists()


def test_ui_refuses_to_serve_beyond_localhost():
    """Item 2: `e2nas ui --host 0.0.0.0` listened off-localhost (its --host came after ours, and the last one wins)."""
    for args in (["--host", "0.0.0.0"], ["--host=0.0.0.0"], ["--gunicorn-opts", "--bind 0.0.0.0:5000"], ["--uvicorn-opts=--host ::"]):
        start = time.monotonic()
        out = e2nas("ui", "--port", "5999", *args)
        assert out.returncode == 1 and "e2nas ui serves on 127.0.0.1 only" in out.stderr, (args, out.stderr)
        assert time.monotonic() - start < 60  # refused before a server starts


def test_ui_binds_127_0_0_1_last_whatever_else_it_is_given(monkeypatch):
    from e2nas import cli, tracking

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    monkeypatch.setattr(tracking, "relocate_artifacts", lambda results: 0)  # the checkout's store is not touched
    assert cli.main(["ui", "--port", "5123", "--workers", "2", "-p", "7000"]) == 0
    (cmd,) = calls
    assert cmd[1] == "ui" and cmd[-4:] == ["--port", "5123", "--host", "127.0.0.1"] and cmd.count("--host") == 1
    assert "--workers" in cmd


def test_make_mlflow_ui_takes_a_port():
    out = subprocess.run(["make", "-n", "mlflow-ui", "PORT=6123"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--host 127.0.0.1 --port 6123 " in out.stdout, out.stdout + out.stderr
    out = subprocess.run(["make", "-n", "mlflow-ui"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "--port 5000 " in out.stdout


def test_table_summary_is_worded_and_rounded():
    out = e2nas("table", "summary")
    assert out.returncode == 0, out.stderr
    assert "cells, each trained twice" in out.stdout and "{" not in out.stdout and "[" not in out.stdout  # no raw dicts
    numbers = re.findall(r"-?\d+\.\d+", out.stdout)
    assert numbers and all(len(n.split(".")[1]) <= 2 for n in numbers), numbers


FAKE_SNAKEMAKE = """
import signal, sys, time
from pathlib import Path
out = Path(sys.argv[1])
def stop(signum, frame):
    out.write_text(f"got {signal.Signals(signum).name}\\n")
    time.sleep(1.5)  # a clean stop takes a while: the parent must wait for it
    out.write_text(out.read_text() + "stopped\\n")
    sys.exit(1)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
out.write_text("running\\n")
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_forwards_a_stop_signal_to_snakemake_and_waits_for_it(tmp_path, sig):
    """Item 9: SIGTERM to `e2nas run` left Snakemake running, reparented to PID 1."""
    marker, fake = tmp_path / "snakemake.txt", tmp_path / "fake_snakemake.py"
    fake.write_text(FAKE_SNAKEMAKE)
    code = ("import sys; from pathlib import Path; from e2nas.cli import _run_snakemake; "
            f"sys.exit(_run_snakemake([sys.executable, {str(fake)!r}, {str(marker)!r}], Path('.')))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().startswith("running")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert marker.read_text() == f"got {sig.name}\nstopped\n"  # forwarded once, and waited for until it stopped
    assert proc.returncode == 128 + sig
    assert f"e2nas: snakemake stopped on request ({sig.name})" in err and "rerun the same command to resume" in err

"""Atomic writes (issue 29, items 4 and 5): a failed write names the file and the errno and leaves nothing;
a writer never removes another writer's temporary file; the killed writers' files go at the run's start."""

from __future__ import annotations

import builtins
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from e2nas import atomic
from e2nas.atomic import WriteError, orphaned_temporaries, remove_orphans, temporary_path
from e2nas.checkpoint import EpochStage, atomic_save, safe_load, write_json


@pytest.fixture
def disk_full(monkeypatch):
    """Every file e2nas.atomic opens is created where asked but written to /dev/full (ENOSPC from the kernel)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    created = []

    def full_open(path, mode="r", **kw):
        Path(path).touch()
        created.append(Path(path))
        return builtins.open("/dev/full", mode, **kw)

    monkeypatch.setattr(atomic, "open", full_open, raising=False)
    return created


@pytest.mark.parametrize("write", [
    lambda path: atomic_save({"w": torch.randn(64, 64)}, path),  # torch.save: its C++ writer hides the errno
    lambda path: atomic_save({"w": torch.zeros(1)}, path),  # small enough to fail only at the flush
    lambda path: write_json({"arch": "x" * 100_000}, path),
])
def test_disk_full_names_the_file_and_the_errno_and_leaves_no_temporary_file(tmp_path, disk_full, write):
    path = tmp_path / "out" / "state.pt"
    path.parent.mkdir()
    path.write_bytes(b"the previous good file")
    with pytest.raises(WriteError) as err:
        write(path)
    text = str(err.value)
    assert text.startswith(f"cannot write {path}: disk full (ENOSPC, errno 28)") and "free space" in text
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert disk_full and not any(p.exists() for p in disk_full)  # its own temporary file is gone ...
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]  # ... so the space it held is free
    assert path.read_bytes() == b"the previous good file"  # and the old file is untouched


def test_a_failed_checkpoint_of_an_epoch_stage_names_the_file(tmp_path, disk_full):
    stage = EpochStage(tmp_path / "ckpt.pt", {"lr": 0.1})
    with pytest.raises(WriteError, match=rf"cannot write {tmp_path / 'ckpt.pt'}: disk full"):
        stage.end_epoch(0, 1.0, net={"w": torch.zeros(3)})
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_carry_the_pid_and_a_random_part():
    a, b = temporary_path("/x/result.json"), temporary_path("/x/result.json")
    assert a != b and a.parent == Path("/x")
    assert a.name.startswith(".result.json.tmp-") and f"-{os.getpid()}-" in a.name


def test_a_writer_never_removes_another_writers_temporary_file(tmp_path):
    """Item 5: a second writer's save used to glob `.{name}.tmp*` and delete the first's live temporary file."""
    path = tmp_path / "result.json"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            host = temporary_path(path).name.split("-")[1]
            live = tmp_path / f".result.json.tmp-{host}-{other.pid}-{'0' * 16}"  # the other writer's, mid-write
            foreign = tmp_path / f".result.json.tmp-elsewhere-1-{'1' * 16}"  # a writer on another host (shared disk)
            live.write_text("half of a result")
            foreign.write_text("another machine's half")
            write_json({"arch": "a"}, path)
            atomic_save({"x": 1}, tmp_path / "model.pt")
            assert live.read_text() == "half of a result" and foreign.exists()
            assert json.loads(path.read_text()) == {"arch": "a"}
            assert list(orphaned_temporaries(tmp_path)) == []  # its writer lives: not an orphan either
        finally:
            other.kill()
    other.wait()
    assert list(orphaned_temporaries(tmp_path)) == [live]  # now its writer is gone
    assert remove_orphans(tmp_path) == [live] and foreign.exists() and not live.exists()


def test_two_processes_writing_one_file_never_fail_each_other(tmp_path):
    path = tmp_path / "shared.pt"
    code = ("import sys, torch; from e2nas.checkpoint import atomic_save\n"
            "for i in range(40): atomic_save({'who': int(sys.argv[1]), 'i': i, 'w': torch.randn(256)}, sys.argv[2])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(path)], stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert safe_load(path)["i"] == 39
    assert [p.name for p in tmp_path.iterdir()] == ["shared.pt"]

"""Bad inputs get one clear error naming the problem and the fix, not a raw traceback (issue 20):
$E2NAS_DATA_DIR at a file, a results/ that cannot be written, a damaged results/mlflow.db."""

import errno
import shlex
import sqlite3

import pytest

from e2nas import data

mlflow = pytest.importorskip("mlflow")
from e2nas import tracking  # noqa: E402


@pytest.fixture
def local_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("E2NAS_INVOCATION", raising=False)


def one_clear_error(err) -> str:
    """The message, checked to be the whole story: no chained exception to print under it."""
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    msg = str(err.value)
    assert "Traceback" not in msg and len(msg.splitlines()) <= 3
    return msg


# ---------------------------------------------------------------- a damaged results/mlflow.db


def test_a_truncated_store_names_the_file_and_how_to_recover(tmp_path, local_store):
    results = tmp_path / "results"
    run = tracking.start_stage_run("exp", "build_graphs", {"a": 1}, {}, None, results)
    run.log_metrics({"acc": 1.0})
    db = results / "mlflow.db"
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 3)
    with pytest.raises(tracking.TrackingError) as err:
        tracking.init_store(results)
    msg = one_clear_error(err)
    assert f"{db} is not a readable MLflow database" in msg
    assert f"mv {shlex.quote(str(db))} {shlex.quote(str(db) + '.broken')}" in msg and "backup" in msg
    assert "Start the server" not in msg and "MLFLOW_TRACKING_URI" not in msg  # a local file: no server to start


@pytest.mark.parametrize("content", [b"SQLite format 3\x00" + b"\x07" * 200, b"this is no database at all" * 50])
def test_a_file_that_is_no_database_fails_every_entry_point_the_same_way(tmp_path, local_store, content):
    results = tmp_path / "results"
    results.mkdir()
    (results / "mlflow.db").write_bytes(content)
    for call in (lambda: tracking.init_store(results),
                 lambda: tracking.start_stage_run("exp", "s", {}, {}, None, results),
                 lambda: tracking.finish_stage_run(tmp_path / "nb.ipynb", tmp_path / "none", True, "exp", "s", {}, results)):
        with pytest.raises(tracking.TrackingError) as err:
            call()
        msg = one_clear_error(err)
        assert "is not a readable MLflow database" in msg and "mlflow.db.broken" in msg


def test_moving_the_broken_store_aside_as_told_recovers(tmp_path, local_store):
    results = tmp_path / "results"
    results.mkdir()
    (results / "mlflow.db").write_bytes(b"garbage" * 100)
    with pytest.raises(tracking.TrackingError):
        tracking.init_store(results)
    (results / "mlflow.db").rename(results / "mlflow.db.broken")
    assert tracking.init_store(results).endswith("mlflow.db")


# ---------------------------------------------------------------- a results/ that cannot be written


def test_a_read_only_results_folder_names_the_file_and_the_fix(tmp_path, local_store, monkeypatch):
    """As root chmod does not stop writes, so the lock file's creation fails as it does for a user
    on a read-only results/ (PermissionError on results/mlflow.db.lock)."""
    results = tmp_path / "results"
    lock_file = str(results / "mlflow.db.lock")

    class ReadOnlyFolderLock:
        def __init__(self, path, *args, **kwargs):
            self.path = path

        def acquire(self, *args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", self.path)

        def release(self):
            pass

    monkeypatch.setattr(tracking, "FileLock", ReadOnlyFolderLock)
    for call in (lambda: tracking.init_store(results), lambda: tracking.start_stage_run("exp", "s", {}, {}, None, results)):
        with pytest.raises(tracking.TrackingError) as err:
            call()
        msg = one_clear_error(err)
        assert f"{lock_file} is not writable" in msg and "Permission denied" in msg
        assert f"Make {results} writable" in msg and "MLFLOW_TRACKING_URI" in msg
        assert "Start the server" not in msg


def test_a_read_only_database_file_names_the_fix():
    """SQLite's own word for a store it may not write (e.g. results/mlflow.db without write permission)."""
    uri = "sqlite:////somewhere/results/mlflow.db"
    msg = str(tracking._store_error(uri, sqlite3.OperationalError("attempt to write a readonly database")))
    assert "cannot write the local MLflow store" in msg and "/somewhere/results" in msg and "chmod" in msg


def test_results_below_a_file_names_that_file(tmp_path, local_store):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(tracking.TrackingError) as err:
        tracking.init_store(blocker / "results")
    msg = one_clear_error(err)
    assert f"{blocker} is a file, not a folder" in msg and f"Move {blocker} aside" in msg


def test_a_dead_server_still_says_start_the_server():
    msg = str(tracking._store_error("http://127.0.0.1:1", ConnectionError("refused")))
    assert "Start the server" in msg and "MLFLOW_TRACKING_URI" in msg


# ---------------------------------------------------------------- $E2NAS_DATA_DIR at a file


def test_data_dir_at_a_file_is_one_dataset_error_naming_the_variable_and_the_fix(tmp_path, monkeypatch):
    archive = tmp_path / "fashion-mnist.tar.gz"
    archive.write_bytes(b"not a folder")
    monkeypatch.setenv(data.ENV_VAR, str(archive))
    for name in ("fashion-mnist", "cifar10", "imagenet16-120"):
        with pytest.raises(data.DatasetError) as err:
            data.load_dataset(name, download=False)
        msg = one_clear_error(err)
        assert f"{data.ENV_VAR}='{archive}'" in msg and "is a file, not a folder" in msg
        assert f"export {data.ENV_VAR}={tmp_path}" in msg and "unset it" in msg


def test_data_dir_below_a_file_names_the_file(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(data.ENV_VAR, str(blocker / "data"))
    with pytest.raises(data.DatasetError) as err:
        data.load_dataset("fashion-mnist", download=False)
    assert f"{blocker} above it is a file" in one_clear_error(err)


def test_cache_dir_and_root_at_a_file_name_the_argument(tmp_path, monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(data.DatasetError, match=r"cache_dir=.*is a file, not a folder"):
        data.load_dataset("fashion-mnist", cache_dir=file, download=False)
    with pytest.raises(data.DatasetError, match=r"root=.*is a file, not a folder"):
        data.load_dataset("cifar10", root=file, cache_dir=tmp_path / "cache", download=False)


# ---------------------------------------------------------------- issue 29: a held store, SQLite's companions


def test_a_store_held_locked_is_one_line_naming_it_after_the_retries(tmp_path, local_store, monkeypatch):
    """Item 7: a store held locked (here an sqlite3 shell inside an exclusive transaction) gave
    `sqlalchemy.exc.OperationalError: database is locked` and a traceback after 128 s."""
    results = tmp_path / "results"
    tracking.init_store(results)
    db = results / "mlflow.db"
    monkeypatch.setattr(tracking, "LOCK_RETRY_SECONDS", 1.0)
    holder = sqlite3.connect(db, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        tracking._forget_engine(tracking.tracking_uri(results))  # a new process would open the store afresh
        with pytest.raises(tracking.TrackingError) as err:
            tracking.start_stage_run("exp", "build_graphs", {"a": 1}, {}, None, results)
    finally:
        holder.rollback()
        holder.close()
    msg = one_clear_error(err)
    assert msg.startswith(f"the local MLflow store {db} cannot be used: {db} stayed locked for 1 s")
    assert "database is locked" in msg and "fuser" in msg and "chmod" not in msg


def test_a_store_whose_lock_file_stays_held_is_one_line_too(tmp_path, local_store, monkeypatch):
    import subprocess
    import sys

    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(tracking, "LOCK_RETRY_SECONDS", 0.5)
    code = (f"from filelock import FileLock; import time; lock = FileLock({str(results / 'mlflow.db.lock')!r}); lock.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as other:
        try:
            assert other.stdout.readline().strip() == "held"
            with pytest.raises(tracking.TrackingError) as err:
                tracking.init_store(results)
        finally:
            other.kill()
    msg = one_clear_error(err)
    assert f"its lock file {results / 'mlflow.db'}.lock stayed held for 0 s" in msg and "fuser" in msg, msg


def test_a_folder_where_sqlite_keeps_its_journal_is_named_not_chmod(tmp_path, local_store):
    """Item 1: a run named mlflow.db-journal made that folder; every write then failed with advice to chmod
    (the names are reserved now: tests/workflow/test_config_check.py)."""
    results = tmp_path / "results"
    journal = results / "mlflow.db-journal"
    journal.mkdir(parents=True)
    with pytest.raises(tracking.TrackingError) as err:
        tracking.init_store(results)
    msg = one_clear_error(err)
    assert f"{journal} is a folder, where SQLite keeps the store's journal file" in msg and "chmod" not in msg
    assert f"mv {journal} {journal}.moved" in msg

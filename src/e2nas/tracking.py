"""MLflow tracking for the stages; the only module that touches MLflow.

Defaults: the embedded store `sqlite:///results/mlflow.db` with artifacts under
`results/mlartifacts`; `MLFLOW_TRACKING_URI` points everything at a team server instead.
One MLflow run per stage invocation, in one experiment per config `run`, named
`{method} seed{seed} · {stage}` (the parts a stage has, see `run_name`). A notebook opens its run with
`start_stage_run` and records the run id in a small file; the rule's step after papermill
(`finish_stage_run`) logs the executed notebook (.ipynb and .html) and ends the run, so the
notebook is logged complete, also when the stage failed.

The stage runs of one `snakemake` call ($E2NAS_INVOCATION) are nested under one parent run,
`pipeline {invocation}`, which the first of its jobs creates; it is RUNNING while any of its stage
runs is, and FINISHED (FAILED if a stage failed or was killed) once none is.

Errors of the store become one TrackingError naming the store and the fix: a server that does
not answer, a local store that cannot be written, is held locked past LOCK_RETRY_SECONDS, or is
not a readable database. `delete_experiment` marks a run's experiment deleted (`e2nas clean`).

Without MLflow installed (the GPU machine) every call is a no-op with one logged note.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import random
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

try:
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient
except ImportError:  # the library must import without MLflow
    mlflow = None

log = logging.getLogger(__name__)

RESULTS_DIR = "results"
# A dead server should fail a stage in seconds; MLflow's own default backoff takes minutes.
# MLflow parses these at request time, and the backoff factor as an int ("0.5" is an error).
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
LOCK_RETRY_SECONDS = 120.0
SQLITE_COMPANIONS = ("-journal", "-wal", "-shm")  # the files SQLite keeps beside a database

# The tags that nest a pipeline's stage runs under its parent run.
INVOCATION_TAG = "pipeline_invocation"
PARENT_TAG = "is_parent"
PARENT_RUN_ID_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a run under this run id
# MLflow 3 opens an experiment on a GenAI overview unless it is tagged as classic model training.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# Integer settings that results dicts carry beside their metrics: logged as params, not metrics.
CONFIG_KEYS = frozenset({"seed", "epochs", "sample_seed", "split_seed", "torch_threads"})


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or written; names the URI and the fix."""


def tracking_uri(results_dir: str | os.PathLike = RESULTS_DIR) -> str:
    """$MLFLOW_TRACKING_URI, else the embedded SQLite store under `results_dir`."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return "sqlite:///" + str(Path(results_dir).resolve() / "mlflow.db")


def artifact_root(experiment: str, results_dir: str | os.PathLike = RESULTS_DIR) -> str | None:
    """Where a new experiment keeps artifacts: results/mlartifacts/{experiment} locally, the server's choice otherwise."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (Path(results_dir).resolve() / "mlartifacts" / experiment).as_uri()


def _is_transient(exc: Exception) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database table is locked" in text


def retry_locked(fn: Callable) -> Callable:
    """Retry `fn` with jittered exponential backoff while SQLite reports a lock (parallel jobs)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _is_transient(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 2.0)

    return wrapper


def _local_db(uri: str) -> Path | None:
    """The SQLite file of a local store URI (None for a server or another backend)."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _store_error(uri: str, exc: BaseException) -> TrackingError:
    """One TrackingError for a failed store call: what is wrong with which store, and the fix."""
    detail = f"{type(exc).__name__}: {_first_line(exc)}"
    db = _local_db(uri)
    if db is None:
        fix = "Start the server or fix" if uri.startswith("http") else "Fix"
        return TrackingError(
            f"MLflow tracking store {uri} failed: {detail}. "
            f"{fix} MLFLOW_TRACKING_URI (unset it to use {RESULTS_DIR}/mlflow.db)"
        )
    # A local store is a file: there is no server to start; the folder or the file is what is wrong.
    text = str(exc).lower()
    q = shlex.quote
    move_aside = f"mv {q(str(db))} {q(str(db) + '.broken')}"
    if _is_transient(exc):
        return _locked_error(db, exc)
    for companion in (Path(f"{db}{suffix}") for suffix in SQLITE_COMPANIONS):
        if companion.exists() and not companion.is_file():  # e.g. the folder of a run named mlflow.db-journal
            return TrackingError(
                f"the local MLflow store {db} cannot be written: {companion} is a folder, where SQLite keeps the store's "
                f"{companion.name[len(db.name) + 1:]} file ({detail}). Move it aside "
                f"(mv {q(str(companion))} {q(str(companion) + '.moved')}) and rerun"
            )
    blocker = next((p for p in (db, *db.parents) if p.exists()), None)
    if blocker is not None and blocker != db and not blocker.is_dir():
        return TrackingError(
            f"the local MLflow store {db} cannot be created: {blocker} is a file, not a folder ({detail}). "
            f"Move {blocker} aside, run from another folder, or set MLFLOW_TRACKING_URI to a tracking server"
        )
    if db.is_dir():
        return TrackingError(
            f"the local MLflow store {db} is a folder, not an SQLite file ({detail}). "
            f"Move it aside ({move_aside}) to start a fresh store"
        )
    if (
        isinstance(exc, PermissionError)
        or (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS))
        or "readonly database" in text
        or "read-only file system" in text
        or "unable to open database file" in text
        or "permission denied" in text
    ):
        where = getattr(exc, "filename", None) or db
        return TrackingError(
            f"cannot write the local MLflow store: {where} is not writable ({detail}). "
            f"Make {db.parent} writable (chmod -R u+w {q(str(db.parent))}), run from a folder you can write, "
            f"or set MLFLOW_TRACKING_URI to a tracking server"
        )
    broken = ("file is not a database", "malformed", "disk i/o error", "not a database", "corrupt", "no such table")
    if any(b in text for b in broken):
        return TrackingError(
            f"{db} is not a readable MLflow database ({detail}); move it aside ({move_aside}) "
            f"to start a fresh store, or restore it from a backup"
        )
    return TrackingError(f"the local MLflow store {db} refused a call: {detail}")


def _locked_error(db: Path, exc: BaseException, what: str | None = None) -> TrackingError:
    """One line for a local store that stayed locked past LOCK_RETRY_SECONDS, naming who may hold it and the fix."""
    held = what or f"{db} stayed locked"
    return TrackingError(
        f"the local MLflow store {db} cannot be used: {held} for {LOCK_RETRY_SECONDS:.0f} s "
        f"({type(exc).__name__}: {_first_line(exc)}). Another process holds it (a pipeline or stage still writing, an "
        f"sqlite3 shell inside a transaction); let it finish or stop it (fuser -v {shlex.quote(str(db))} names it), then rerun"
    )


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """The lock file beside a local SQLite store (nothing for a server): one job at a time inside."""
    db = _local_db(uri)
    if db is None:
        yield
        return
    from filelock import Timeout

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(db) + ".lock", timeout=LOCK_RETRY_SECONDS)
        lock.acquire()
    except Timeout as exc:
        raise _locked_error(db, exc, f"its lock file {db}.lock stayed held") from None
    except OSError as exc:  # a read-only results/, or a file where the folder should be
        raise _store_error(uri, exc) from None
    try:
        yield
    finally:
        lock.release()


def _client(results_dir: str | os.PathLike = RESULTS_DIR) -> MlflowClient:
    uri = tracking_uri(results_dir)
    if uri.startswith("http"):
        for k, v in HTTP_DEFAULTS.items():
            os.environ.setdefault(k, v)
        return MlflowClient(tracking_uri=uri)
    if _local_db(uri) is None:
        return MlflowClient(tracking_uri=uri)
    # Opening a fresh SQLite file creates its schema; jobs that start together would race on
    # it, so opening the store and its first query are serialised by a lock file beside it.
    with _store_lock(uri):
        try:
            client = retry_locked(MlflowClient)(tracking_uri=uri)
        except Exception as exc:  # a damaged file fails here, while MLflow checks its schema (a locked one after retries)
            _forget_engine(uri)
            raise _store_error(uri, exc) from None
        _call(uri, client.search_experiments, max_results=1)
    return client


def _forget_engine(uri: str) -> None:
    """Drop MLflow's cached engine of a store that failed to open, so that once the file is moved
    aside, the next call in this process opens the fresh one (MLflow caches engines per URI)."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
    except Exception:  # another MLflow keeps its engines elsewhere: a new process opens afresh anyway
        pass


def _call(uri: str, fn: Callable, *args, **kwargs):
    """Run one store call; a store that cannot be reached or read becomes one TrackingError naming it."""
    try:
        return retry_locked(fn)(*args, **kwargs)
    except TrackingError:
        raise
    except Exception as exc:  # a store still locked after LOCK_RETRY_SECONDS of retries is one line too
        raise _store_error(uri, exc) from None


def init_store(results_dir: str | os.PathLike = RESULTS_DIR) -> str | None:
    """Create the store (schema migrations) once, before parallel jobs start. Returns the URI.

    A tracking server that does not answer raises TrackingError here, before any job starts
    (and before a --forcerun deletes the outputs it would rewrite). A local store moved with its
    checkout gets its artifact links pointed at where it is now (`relocate_artifacts`).
    """
    if mlflow is None:
        log.warning("MLflow is not installed: tracking is off")
        return None
    client = _client(results_dir)
    uri = tracking_uri(results_dir)
    if uri.startswith("http"):
        _call(uri, client.search_experiments, max_results=1)
    else:
        _call(uri, relocate_artifacts, results_dir)
    return uri


def relocate_artifacts(results_dir: str | os.PathLike = RESULTS_DIR) -> int:
    """Point the local store's artifact links at `results_dir`/mlartifacts; returns the rows rewritten.

    MLflow records every artifact location as an absolute URI (it resolves a relative one) and has
    no API to change it, so a checkout moved or re-cloned with its results/ would link the old
    folder. Rewritten: experiments and runs whose location lies in another folder's `mlartifacts`
    (a run logs under its experiment's location); a server's store, or artifacts kept elsewhere
    (a location without `/mlartifacts/`), are left alone.
    """
    db = _local_db(tracking_uri(results_dir))
    if mlflow is None or db is None or not db.is_file():
        return 0
    from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlRun
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    here = (Path(results_dir).resolve() / "mlartifacts").as_uri()
    engine = create_engine(f"sqlite:///{db}")
    rewritten = 0
    try:
        with Session(engine) as session, session.begin():
            for exp in session.query(SqlExperiment).filter(SqlExperiment.artifact_location.like("file://%/mlartifacts/%")):
                old = exp.artifact_location[: exp.artifact_location.rindex("/mlartifacts/") + len("/mlartifacts")]
                if old == here:
                    continue
                exp.artifact_location = here + exp.artifact_location[len(old):]
                runs = session.query(SqlRun).filter(SqlRun.experiment_id == exp.experiment_id,
                                                    SqlRun.artifact_uri.startswith(old + "/", autoescape=True))
                for run in runs:
                    run.artifact_uri = here + run.artifact_uri[len(old):]
                    rewritten += 1
                rewritten += 1
    finally:
        engine.dispose()
    if rewritten:
        log.info("MLflow store %s: %d artifact links now point at %s", db, rewritten, here)
    return rewritten


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _experiment_id(client, uri: str, name: str, results_dir) -> str:
    """The experiment `name`, created on first need, tagged as model training (see EXPERIMENT_KIND_TAG)."""
    exp = _call(uri, client.get_experiment_by_name, name)
    if exp is not None:
        if EXPERIMENT_KIND_TAG not in exp.tags:  # created before the tag was set: set it, keep any other kind
            _call(uri, client.set_experiment_tag, exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    try:
        return _call(
            uri, client.create_experiment, name, artifact_location=artifact_root(name, results_dir),
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    except TrackingError:
        exp = _call(uri, client.get_experiment_by_name, name)  # another job created it first
        if exp is None:
            raise
        return exp.experiment_id


# A stage's short name in its run name (the rule names are long and alike: MLflow's narrow name column cut them).
STAGE_NAMES = {"build_graphs": "graphs", "pretrain_vgae": "vgae", "warmup_supernet": "warm-up", "search_architecture": "search",
               "retrain_cell": "retrain", "rank_supernet": "ranking", "report": "report"}


def _parts(tags: dict[str, Any]) -> list[str]:
    """What tells one stage invocation from its siblings: method and seed (the space for the space-wide stages)."""
    parts = [str(tags["method"])] if tags.get("method") is not None else []
    if tags.get("seed") is not None:
        parts.append(f"seed{tags['seed']}")
    return parts


def run_name(stage: str, tags: dict[str, Any]) -> str:
    """What tells siblings apart first, then the stage: `e2nas seed0 · search`, `seed1 · warm-up`, `nb201 · vgae`, `report`."""
    parts = _parts(tags) or ([str(tags["space"])] if tags.get("space") is not None and stage != "report" else [])
    short = STAGE_NAMES.get(stage, stage)
    return f"{' '.join(parts)} · {short}" if parts else short


def artifact_stem(stage: str, tags: dict[str, Any]) -> str:
    """A stage invocation as a file name, rule first so the files sort by stage: `search_architecture-e2nas-seed0`."""
    return re.sub(r"[^\w.+-]+", "-", " ".join([stage, *_parts(tags)])).strip("-") or "notebook"


def _search_all(client, uri: str, exp_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = _call(uri, client.search_runs, [exp_id], filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _parents(client, uri: str, exp_id: str, invocation: str) -> list:
    """The parent runs of `invocation` in the experiment, the first created first."""
    if re.fullmatch(r"[\w.:-]+", invocation):
        found = _search_all(client, uri, exp_id, f"tags.{PARENT_TAG} = 'true' and tags.{INVOCATION_TAG} = '{invocation}'")
    else:  # a hand-set id a filter string cannot quote: filter here
        found = _search_all(client, uri, exp_id, f"tags.{PARENT_TAG} = 'true'")
    found = [r for r in found if r.data.tags.get(INVOCATION_TAG) == invocation]
    return sorted(found, key=lambda r: (r.info.start_time, r.info.run_id))


def _parent_run(client, uri: str, exp_id: str, invocation: str, tags: dict[str, Any]) -> str:
    """The id of the parent run of this `snakemake` call, created by whichever job comes first.

    A local store: lookup and creation under the lock file beside it. A server: lookup, create,
    and look again; of racing creators all keep the first created and delete their own.
    """
    with _store_lock(uri):
        found = _parents(client, uri, exp_id, invocation)
        if found:
            parent = found[0]
        else:
            notes = str(tags.get("notes") or "")
            parent_tags = {
                PARENT_TAG: "true",
                INVOCATION_TAG: invocation,
                "git_commit": git_commit(),
                **{k: str(tags[k]) for k in ("run", "notes") if tags.get(k) is not None},
            }
            if notes:
                parent_tags["mlflow.note.content"] = notes  # the run's description in the UI
            parent = _call(uri, client.create_run, exp_id, tags=parent_tags, run_name=f"pipeline {invocation}")
            if _local_db(uri) is None:
                found = _parents(client, uri, exp_id, invocation)
                if found and found[0].info.run_id != parent.info.run_id:
                    _call(uri, client.delete_run, parent.info.run_id)  # another job's came first
                    parent = found[0]
    if parent.info.status != "RUNNING":  # an earlier stage of this call ended it: a stage runs again
        try:
            _call(uri, client.update_run, parent.info.run_id, status="RUNNING")
        except TrackingError as exc:  # the stage's own run matters more than its parent's status
            log.warning("could not mark the pipeline run %s running: %s", parent.info.run_id, exc)
    return parent.info.run_id


def _update_parent(client, uri: str, parent_id: str | None) -> None:
    """After a stage run ended: end its parent (FINISHED, or FAILED if a stage failed or was killed)
    once none of its stage runs is RUNNING; otherwise leave it RUNNING."""
    if not parent_id:
        return
    try:
        parent = _call(uri, client.get_run, parent_id)
        children = _search_all(client, uri, parent.info.experiment_id, f"tags.`{PARENT_RUN_ID_TAG}` = '{parent_id}'")
        statuses = {r.info.status for r in children}
        if "RUNNING" in statuses or "SCHEDULED" in statuses:
            return
        status = "FAILED" if statuses & {"FAILED", "KILLED"} else "FINISHED"
        if parent.info.status != status or parent.info.end_time is None:
            _call(uri, client.set_terminated, parent_id, status)
    except TrackingError as exc:  # the stage itself is logged: a parent left as it was is no reason to fail it
        log.warning("could not update the pipeline run %s: %s", parent_id, exc)


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """Nested parameters as MLflow's flat 'section.key' strings."""
    flat = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, key + "."))
        else:
            flat[key] = str(v)[:6000]
    return flat


class StageRun:
    """One stage invocation's MLflow run (or a no-op when MLflow is absent)."""

    def __init__(self, client, uri: str, run_id: str | None):
        self.client, self.uri, self.run_id = client, uri, run_id
        self._params: dict[str, str] = {}  # what this object logged as params (no round trip to check)

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Numbers as metrics at `step` (0 if None); None, NaN and booleans are left out.

        The integer settings a results dict carries beside its metrics (CONFIG_KEYS: seed,
        epochs, ...) are logged as params instead, once.
        """
        if not self.active:
            return
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        settings = {}
        for k in [k for k in numbers if k in CONFIG_KEYS]:
            value = numbers[k]
            value = str(int(value)) if float(value).is_integer() else str(value)
            if self._params.get(k, value) == value:  # one already logged differently stays a metric
                settings[k] = value
                del numbers[k]
        if settings:
            self.log_params(settings)
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in numbers.items()]
        for i in range(0, len(batch), 500):
            _call(self.uri, self.client.log_batch, self.run_id, metrics=batch[i : i + 500])

    def log_params(self, params: dict) -> None:
        if self.active:
            values = {k: v for k, v in flatten(params).items() if self._params.get(k) != v}
            flat = [Param(k, v) for k, v in values.items()]
            for i in range(0, len(flat), 90):
                _call(self.uri, self.client.log_batch, self.run_id, params=flat[i : i + 90])
            self._params.update(values)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.active:
            _call(self.uri, self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if self.active:
            _call(self.uri, self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_figure(self, figure, name: str) -> None:
        if self.active:
            _call(self.uri, self.client.log_figure, self.run_id, figure, f"plots/{name}")

    def log_dict(self, data: dict, name: str) -> None:
        if self.active:
            _call(self.uri, self.client.log_dict, self.run_id, data, name)

    def child(self, name: str, params: dict | None = None, metrics: dict | None = None, tags: dict | None = None) -> StageRun:
        """A run nested under this one (e.g. one training of a random search), finished, with params and metrics."""
        if not self.active:
            return StageRun(None, "", None)
        parent = _call(self.uri, self.client.get_run, self.run_id)
        inherited = {k: v for k, v in parent.data.tags.items() if not k.startswith("mlflow.")}
        run = _call(self.uri, self.client.create_run, parent.info.experiment_id, run_name=name,
                    tags={**inherited, **{k: str(v) for k, v in (tags or {}).items()}, PARENT_RUN_ID_TAG: self.run_id})
        child = StageRun(self.client, self.uri, run.info.run_id)
        child.log_params(params or {})
        child.log_metrics(metrics or {})
        _call(self.uri, self.client.set_terminated, child.run_id, "FINISHED")
        return child

    def epoch_logger(self, prefix: str = "") -> Callable:
        """An `on_epoch` callback for the training loops: `(epoch, metrics)` or `(record)` with an "epoch" key."""

        def log_epoch(epoch_or_record, metrics: dict | None = None) -> None:
            if metrics is None:
                metrics, epoch_or_record = epoch_or_record, epoch_or_record["epoch"]
            self.log_metrics({f"{prefix}{k}": v for k, v in metrics.items() if k != "epoch"}, step=epoch_or_record)

        return log_epoch


def _end_killed_run(client, uri: str, run_file: str | os.PathLike) -> None:
    """A run file left behind names the run of an invocation that was killed: mark that run KILLED
    (and end its pipeline run, if nothing of that call runs any more)."""
    run_file = Path(run_file)
    if not run_file.exists():
        return
    run_id = run_file.read_text().strip()
    try:
        run = retry_locked(client.get_run)(run_id)
        if run.info.status == "RUNNING":
            retry_locked(client.set_terminated)(run_id, "KILLED")
            _update_parent(client, uri, run.data.tags.get(PARENT_RUN_ID_TAG))
    except Exception as exc:  # e.g. a run file from another store: nothing to end there
        log.warning("could not end the killed run %s named in %s: %s", run_id, run_file, exc)


def start_stage_run(
    experiment: str,
    stage: str,
    params: dict,
    tags: dict[str, Any],
    run_file: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
) -> StageRun:
    """Open the MLflow run of one stage invocation and record its id in `run_file`.

    Named `{method} seed{seed} · {stage}` (see `run_name`). Tags: the given ones (space, dataset,
    method, seed, ...) plus stage, git commit and the pipeline invocation ($E2NAS_INVOCATION, set
    once per `snakemake` call); with $E2NAS_INVOCATION set, the run is nested under that call's
    parent run `pipeline {invocation}` (created here by the first job that needs it).
    """
    if mlflow is None:
        log.warning("MLflow is not installed: stage %s is not tracked", stage)
        return StageRun(None, "", None)
    client = _client(results_dir)
    uri = tracking_uri(results_dir)
    exp_id = _experiment_id(client, uri, experiment, results_dir)
    invocation = os.environ.get("E2NAS_INVOCATION")
    all_tags = {
        "stage": stage,
        "git_commit": git_commit(),
        INVOCATION_TAG: invocation or "interactive",
        **{k: v for k, v in tags.items() if v is not None},
    }
    if invocation:
        all_tags[PARENT_RUN_ID_TAG] = _parent_run(client, uri, exp_id, invocation, tags)
    run = _call(uri, client.create_run, exp_id, tags={k: str(v) for k, v in all_tags.items()}, run_name=run_name(stage, tags))
    stage_run = StageRun(client, uri, run.info.run_id)
    stage_run.log_params(params)
    if run_file:
        _end_killed_run(client, uri, run_file)
        Path(run_file).parent.mkdir(parents=True, exist_ok=True)
        Path(run_file).write_text(run.info.run_id + "\n")
    return stage_run


def stage_params(**values) -> dict:
    """A stage's MLflow params: config dataclasses as their fields, other values as given, None left out."""
    return {k: (asdict(v) if is_dataclass(v) else v) for k, v in values.items() if v is not None}


def open_stage_run(tracking: dict, **params) -> StageRun:
    """The MLflow run of this stage invocation with `params` logged (see `stage_params`).

    `tracking` is what the workflow injects (experiment, stage, tags, run file). Empty — a
    notebook opened by hand and run with its defaults — the run is not tracked (a no-op run).
    """
    if not tracking:
        log.warning("no tracking settings (notebook run by hand): this run is not logged to MLflow")
        return StageRun(None, "", None)
    return start_stage_run(params=stage_params(**params), **tracking)


def notebook_html(notebook: str | os.PathLike, html: str | os.PathLike, code: bool = True) -> bool:
    """The executed notebook as one HTML page (nbconvert; `code`: keep the code cells, else only what
    they showed), written atomically; False, with a note, if it cannot. Of the parameters, the page shows
    the cell papermill injected (what the stage ran with), not the notebook's defaults."""
    try:
        import nbformat
        from nbconvert import HTMLExporter

        nb = nbformat.read(str(notebook), as_version=4)
        tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb.cells]
        if any("injected-parameters" in t for t in tags):  # the page shows the run's parameters, not the defaults
            nb.cells = [c for c, t in zip(nb.cells, tags) if "parameters" not in t]
        body, _ = HTMLExporter(exclude_input=not code).from_notebook_node(nb)
        from e2nas.atomic import write_text

        write_text(html, body)
        return True
    except Exception as exc:  # e.g. nbconvert missing, or a notebook torn by a kill: the .ipynb still goes
        log.warning("could not render %s as HTML (%s: %s); only the .ipynb is logged", notebook, type(exc).__name__, exc)
        return False


def finish_stage_run(
    notebook: str | os.PathLike,
    run_file: str | os.PathLike,
    succeeded: bool,
    experiment: str,
    stage: str,
    tags: dict[str, Any] | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
) -> str | None:
    """After papermill: log the executed notebook to the stage's run and end it.

    The notebook goes under `notebook/` as `{run name}.ipynb` and `.html` (e.g.
    `notebook/search_architecture-e2nas-seed0.html`). If the notebook died before opening a run,
    a FAILED run is created to hold it, so every invocation leaves a trace. The pipeline's parent
    run ends once none of its stage runs is running (see `_update_parent`).
    """
    if mlflow is None:
        return None
    run_file = Path(run_file)
    if run_file.exists():
        client = _client(results_dir)
        uri = tracking_uri(results_dir)
        run = StageRun(client, uri, run_file.read_text().strip())
        run_file.unlink()
    else:
        run = start_stage_run(experiment, stage, {}, tags or {}, None, results_dir)
    info = _call(run.uri, run.client.get_run, run.run_id)
    if Path(notebook).exists():
        stem = artifact_stem(stage, tags or {})
        with tempfile.TemporaryDirectory() as tmp:
            named = Path(tmp) / f"{stem}.ipynb"
            shutil.copyfile(notebook, named)
            run.log_artifact(named, "notebook")
            if notebook_html(named, named.with_suffix(".html")):
                run.log_artifact(named.with_suffix(".html"), "notebook")
    _call(run.uri, run.client.set_terminated, run.run_id, "FINISHED" if succeeded else "FAILED")
    _update_parent(run.client, run.uri, info.data.tags.get(PARENT_RUN_ID_TAG))
    return run.run_id


def experiment_runs(name: str, results_dir: str | os.PathLike = RESULTS_DIR) -> int | None:
    """How many runs the experiment `name` holds, or None when the store has no such (active) experiment.
    A local store that does not exist is not created to answer."""
    if mlflow is None:
        return None
    uri = tracking_uri(results_dir)
    db = _local_db(uri)
    if db is not None and not db.is_file():
        return None
    client = _client(results_dir)
    exp = _call(uri, client.get_experiment_by_name, name)
    if exp is None or exp.lifecycle_stage != "active":
        return None
    return len(_search_all(client, uri, exp.experiment_id, ""))


def delete_experiment(name: str, results_dir: str | os.PathLike = RESULTS_DIR) -> bool:
    """Mark the experiment `name` deleted with MLflow's own API (its runs and artifacts stay until `mlflow gc`,
    and `mlflow experiments restore` brings it back). It is renamed `{name} (deleted {time})` first, so that a
    later run of that name starts a fresh experiment (MLflow keeps a deleted experiment's name taken).
    Returns whether there was one."""
    if mlflow is None:
        return False
    uri = tracking_uri(results_dir)
    db = _local_db(uri)
    if db is not None and not db.is_file():
        return False
    client = _client(results_dir)
    exp = _call(uri, client.get_experiment_by_name, name)
    if exp is None:
        return False
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    if exp.lifecycle_stage != "active":  # deleted before (the UI): free its name if MLflow lets us
        with contextlib.suppress(TrackingError):
            _call(uri, client.rename_experiment, exp.experiment_id, f"{name} (deleted before {stamp})")
        return False
    _call(uri, client.rename_experiment, exp.experiment_id, f"{name} (deleted {stamp})")
    _call(uri, client.delete_experiment, exp.experiment_id)
    return True

"""MLflow tracking for the stages; the only module that touches MLflow.

Defaults: the embedded store `sqlite:///results/mlflow.db` with artifacts under
`results/mlartifacts`; `MLFLOW_TRACKING_URI` points everything at a team server instead.
One MLflow run per stage invocation, in one experiment per config `run`. A notebook opens its
run with `start_stage_run` and records the run id in a small file; the rule's step after
papermill (`finish_stage_run`) logs the executed notebook and ends the run, so the notebook
is logged complete, also when the stage failed.

Without MLflow installed (the GPU machine) every call is a no-op with one logged note.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import subprocess
import time
from collections.abc import Callable
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


def _client(results_dir: str | os.PathLike = RESULTS_DIR) -> MlflowClient:
    uri = tracking_uri(results_dir)
    if uri.startswith("http"):
        for k, v in HTTP_DEFAULTS.items():
            os.environ.setdefault(k, v)
        return MlflowClient(tracking_uri=uri)
    if not uri.startswith("sqlite:///"):
        return MlflowClient(tracking_uri=uri)
    # Opening a fresh SQLite file creates its schema; jobs that start together would race on
    # it, so opening the store and its first query are serialised by a lock file beside it.
    db = Path(uri[len("sqlite:///") :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock"):
        client = retry_locked(MlflowClient)(tracking_uri=uri)
        _call(uri, client.search_experiments, max_results=1)
    return client


def _call(uri: str, fn: Callable, *args, **kwargs):
    """Run one store call; a store that cannot be reached becomes one TrackingError naming the URI."""
    try:
        return retry_locked(fn)(*args, **kwargs)
    except Exception as exc:
        if _is_transient(exc):
            raise
        raise TrackingError(
            f"MLflow tracking store {uri} failed: {type(exc).__name__}: {str(exc)[:300]}. "
            f"Start the server or fix MLFLOW_TRACKING_URI (unset it to use {RESULTS_DIR}/mlflow.db)"
        ) from None


def init_store(results_dir: str | os.PathLike = RESULTS_DIR) -> str | None:
    """Create the store (schema migrations) once, before parallel jobs start. Returns the URI.

    A tracking server that does not answer raises TrackingError here, before any job starts
    (and before a --forcerun deletes the outputs it would rewrite).
    """
    if mlflow is None:
        log.warning("MLflow is not installed: tracking is off")
        return None
    client = _client(results_dir)
    uri = tracking_uri(results_dir)
    if uri.startswith("http"):
        _call(uri, client.search_experiments, max_results=1)
    return uri


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _experiment_id(client, uri: str, name: str, results_dir) -> str:
    exp = _call(uri, client.get_experiment_by_name, name)
    if exp is not None:
        return exp.experiment_id
    try:
        return _call(uri, client.create_experiment, name, artifact_location=artifact_root(name, results_dir))
    except TrackingError:
        exp = _call(uri, client.get_experiment_by_name, name)  # another job created it first
        if exp is None:
            raise
        return exp.experiment_id


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

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if not self.active:
            return
        now = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), now, step or 0)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
        ]
        for i in range(0, len(batch), 500):
            _call(self.uri, self.client.log_batch, self.run_id, metrics=batch[i : i + 500])

    def log_params(self, params: dict) -> None:
        if self.active:
            flat = [Param(k, v) for k, v in flatten(params).items()]
            for i in range(0, len(flat), 90):
                _call(self.uri, self.client.log_batch, self.run_id, params=flat[i : i + 90])

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

    def epoch_logger(self, prefix: str = "") -> Callable:
        """An `on_epoch` callback for the training loops: `(epoch, metrics)` or `(record)` with an "epoch" key."""

        def log_epoch(epoch_or_record, metrics: dict | None = None) -> None:
            if metrics is None:
                metrics, epoch_or_record = epoch_or_record, epoch_or_record["epoch"]
            self.log_metrics({f"{prefix}{k}": v for k, v in metrics.items() if k != "epoch"}, step=epoch_or_record)

        return log_epoch


def _end_killed_run(client, run_file: str | os.PathLike) -> None:
    """A run file left behind names the run of an invocation that was killed: mark that run KILLED."""
    run_file = Path(run_file)
    if not run_file.exists():
        return
    run_id = run_file.read_text().strip()
    try:
        if retry_locked(client.get_run)(run_id).info.status == "RUNNING":
            retry_locked(client.set_terminated)(run_id, "KILLED")
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

    Tags: the given ones (space, dataset, method, seed, ...) plus stage, git commit and the
    pipeline invocation ($E2NAS_INVOCATION, set once per `snakemake` call).
    """
    if mlflow is None:
        log.warning("MLflow is not installed: stage %s is not tracked", stage)
        return StageRun(None, "", None)
    client = _client(results_dir)
    uri = tracking_uri(results_dir)
    exp_id = _experiment_id(client, uri, experiment, results_dir)
    all_tags = {
        "stage": stage,
        "git_commit": git_commit(),
        "pipeline_invocation": os.environ.get("E2NAS_INVOCATION", "interactive"),
        **{k: v for k, v in tags.items() if v is not None},
    }
    name = "-".join(str(v) for v in [stage, *[tags.get(k) for k in ("dataset", "method")], tags.get("seed")] if v is not None)
    run = _call(uri, client.create_run, exp_id, tags={k: str(v) for k, v in all_tags.items()}, run_name=name)
    stage_run = StageRun(client, uri, run.info.run_id)
    stage_run.log_params(params)
    if run_file:
        _end_killed_run(client, run_file)
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

    If the notebook died before opening a run, a FAILED run is created to hold the notebook,
    so every invocation leaves a trace.
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
    if Path(notebook).exists():
        run.log_artifact(notebook, "notebook")
    _call(run.uri, run.client.set_terminated, run.run_id, "FINISHED" if succeeded else "FAILED")
    return run.run_id

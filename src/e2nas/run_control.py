"""One pipeline at a time per run, and what the workflow says when a run stops: the Snakefile's hooks.

- **The run lock** (`RunLock`): `results/{run}/.e2nas-run.lock`, an exclusive `flock` taken when
  Snakemake starts its jobs (`onstart`) and held by that process until it ends. Snakemake's own
  lock is a file that `--unlock` deletes (its message after a kill suggests it), so two
  pipelines of one run could write the same files; this one is the kernel's: it goes when its
  process goes (a kill included) and nothing unlocks it by hand. A second pipeline of the run
  stops with one line naming the first's PID. `e2nas clean` takes it too.
- **Orphans**: at the start, under the lock, the temporary files of writers that were killed
  (`e2nas.atomic.remove_orphans`).
- **Stops on request** (`StopSignals`): SIGTERM or SIGINT ends Snakemake with "At least one job
  did not complete successfully" although it stopped cleanly; the hooks record the signal and
  `onerror` says that it stopped on request and how to resume. Snakemake's SIGTERM stops only its
  scheduler and lets running jobs finish (a search can run many minutes), so on SIGTERM the jobs get
  the SIGINT a terminal's Ctrl-C gives them: they stop, their checkpoints kept. A signal the process
  was started ignoring (SIGINT under `nohup … &` from a script) stays ignored.
- **Damaged results** (`damaged_outputs`): a truncated `result.json` fails its consumer, and a
  plain rerun repeats that (Snakemake judges files by time, not content; and with the searches as
  Snakemake checkpoints even a deleted result.json is not replanned); `onerror` names each damaged
  JSON output of the run and the command that reruns its stage (`--forcerun FILE`).

Torch-free and import-light (the Snakefile's hooks call it).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".e2nas-run.lock"
# The JSON outputs of a run (e2nas.layout's kinds), checked for damage after a failed run.
JSON_OUTPUTS = ("graphs/*.json", "vgae/*/metrics.json", "search/*/*/*/seed*/result.json", "retrain/*/*/*/seed*/metrics.json",
                "ranking/*/*/seed*.json")


class RunLocked(RuntimeError):
    """Another process holds the run lock; the message names it (one line)."""


class RunLock:
    """The exclusive lock of one run's folder (see the module doc); `acquire` raises RunLocked naming the holder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def holder(self) -> str:
        """What the lock file says of its holder (PID, host, since when), or 'unknown'."""
        try:
            info = json.loads(self.path.read_text())
            return f"PID {info['pid']} on {info['host']}, since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process whose PID it did not record"

    def acquire(self, what: str = "snakemake") -> RunLock:
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if not isinstance(exc, BlockingIOError):  # a file system without locks (some network or FUSE mounts)
                print(f"warning: {self.path} cannot be locked ({exc.strerror}): two pipelines of run {self.run_dir.name!r} "
                      f"are not kept apart on this file system", file=sys.stderr)
                return self
            raise RunLocked(
                f"run {self.run_dir.name!r} is in use by another pipeline ({self.holder()}; lock {self.path}): "
                f"two pipelines would overwrite each other's files. Wait for it to end or stop it (kill PID); "
                f"snakemake --unlock does not apply to this lock, which ends with its process"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"), "by": what}
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd
        return self

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (without taking it)."""
        try:
            self.acquire("probe").release()
        except RunLocked:
            return True
        return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


_held: RunLock | None = None


def start_run(results_dir: str | os.PathLike, run: str) -> None:
    """`onstart`: take the run lock (RunLocked naming the holder), then remove the temporary files of killed writers."""
    global _held
    from e2nas.atomic import remove_orphans

    lock = RunLock(Path(results_dir) / run).acquire()
    _held = lock
    remove_orphans(lock.run_dir)


def end_run() -> None:
    """`onsuccess` / `onerror`: release the run lock (a killed process releases it anyway)."""
    global _held
    if _held is not None:
        _held.release()
        _held = None


class StopSignals:
    """Records SIGTERM / SIGINT on their way to the handlers in place (Snakemake's), for `onerror` to read."""

    received: int | None = None

    @classmethod
    def install(cls) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if previous == signal.SIG_IGN:  # a background job of a script's shell: not a stop request
                continue

            def handler(signum, frame, previous=previous):
                if cls.received is None and signum == signal.SIGTERM:
                    stop_jobs()
                cls.received = cls.received or signum
                if callable(previous):
                    return previous(signum, frame)
                if previous == signal.SIG_DFL:
                    signal.signal(signum, signal.SIG_DFL)
                    os.kill(os.getpid(), signum)
                return None

            signal.signal(sig, handler)

    @classmethod
    def note(cls) -> str | None:
        """The one line `onerror` prints when the run stopped on a signal, else None."""
        if cls.received is None:
            return None
        return stopped_note(cls.received)


def stop_jobs() -> None:
    """SIGINT to every process under this one (the jobs' shells, notebooks and kernels), as Ctrl-C in a
    terminal sends it to the whole process group: a stage stops at once and resumes from its checkpoint."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            child.send_signal(signal.SIGINT)
        except psutil.NoSuchProcess:  # ended meanwhile
            pass


def stopped_note(signum: int, command: str = "the same command") -> str:
    name = signal.Signals(signum).name
    return (f"stopped on request ({name}): the jobs that were running were stopped, what finished is kept; "
            f"rerun {command} to resume (long stages resume from their last checkpointed epoch)")


def damaged_outputs(run_dir: str | os.PathLike) -> list[Path]:
    """The run's JSON outputs that do not parse (truncated, emptied), sorted."""
    found = []
    for pattern in JSON_OUTPUTS:
        for path in Path(run_dir).glob(pattern):
            try:
                json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found.append(path)
    return sorted(found)


def damaged_note(run_dir: str | os.PathLike) -> str | None:
    """One line per damaged output of the run and the command that reruns its stage (a plain rerun does not:
    Snakemake sees a file of the right age), or None."""
    damaged = damaged_outputs(run_dir)
    if not damaged:
        return None
    files = " ".join(shlex.quote(os.path.relpath(p)) for p in damaged)
    return (f"damaged result file(s), which a plain rerun would read again: {files}. Rerun the same snakemake command "
            f"with --forcerun {files} added: their stages run again, and what follows them")

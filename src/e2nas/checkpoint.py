"""Atomic, resumable checkpoints and the life of a long stage (warm-up, search, retrain: `EpochStage`).

A stage keeps its checkpoint outside its declared outputs, so Snakemake never deletes it
after a kill; it writes to a temporary file and renames it (`e2nas.atomic`), so a kill never
leaves a torn file, and a failed write (disk full) leaves nothing behind and names the file and
the errno. Everything is loaded with `weights_only=True`.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from e2nas.atomic import WriteError, atomic_write

__all__ = ["CheckpointError", "DivergedError", "EpochCheckpoint", "EpochStage", "WriteError", "atomic_save",
           "check_finite", "check_same_config", "file_digest", "rng_state", "safe_load", "set_rng_state", "write_json"]

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint or model file that cannot be used; the message names the file and the fix."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file of this writer beside `path`, then rename it into place.

    A failed write (e.g. disk full) removes that temporary file and raises WriteError (an OSError)
    naming `path` and the errno; temporary files of other writers are never touched (`e2nas.atomic`).
    """
    atomic_write(path, lambda f: torch.save(obj, f))


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """JSON through a temporary file beside `path` and a rename, so a kill never leaves a torn file
    (failures as `atomic_save`)."""
    import json

    text = json.dumps(obj, indent=2) + "\n"  # serialised first: an unserialisable object writes nothing
    atomic_write(path, lambda f: f.write(text), "w")


def safe_load(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """torch.load(weights_only=True); a missing, corrupt or foreign file raises CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; run the stage that writes it first")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a torn or foreign file
        raise CheckpointError(
            f"{what} {path} is corrupt or not a file e2nas wrote ({type(exc).__name__}: {str(exc)[:200]}); "
            f"delete it and rerun the stage that writes it"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} holds a {type(obj).__name__}, not an e2nas dict; delete it and rerun")
    return obj


def check_same_config(saved: dict, expected: dict, path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Raise CheckpointError if a file was written under other settings than `expected`."""
    diff = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k) and k != "inputs")
    old, new = saved.get("inputs") or {}, expected.get("inputs") or {}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff or changed:
        detail = ", ".join([*(f"{k}: file {saved.get(k)!r} vs config {expected.get(k)!r}" for k in diff[:5]),
                            *(f"input {k} has changed since (sha256 {str(old.get(k))[:12]} then, {str(new.get(k))[:12]} now)"
                              for k in changed)])
        raise CheckpointError(
            f"{what} {path} was written with other settings ({detail}); delete it to start over, "
            f"or restore the config it was made with"
        )


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """Global torch and Python RNG states plus those of the named generators."""
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        **{f"gen_{k}": g.get_state() for k, g in generators.items()},
    }


def set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    for k, g in generators.items():
        g.set_state(state[f"gen_{k}"])


def check_finite(value: float, epoch: int, checkpoint: str | os.PathLike | None) -> None:
    """Stop a diverging run with an error naming the epoch (counted from 1, as the progress lines do) and
    the checkpoint that is kept."""
    if not math.isfinite(value):
        kept = f"the last good checkpoint {checkpoint} is kept" if checkpoint else "nothing was saved"
        raise DivergedError(
            f"training diverged in epoch {epoch + 1} (loss {value}); {kept}. Lower the learning rate in the config and rerun"
        )


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's content (what a stage read, whatever its name or modification time)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class EpochCheckpoint:
    """One resumable training state per stage invocation: {"epoch", "config", ...state}.

    `config` is the dict of settings that must match for a resume to be valid; `inputs`
    ({name: file}) the files the stage read, whose content digests must match too, so that a
    checkpoint of a run on an older input (e.g. a warm-up since retrained) is never resumed.
    """

    def __init__(self, path: str | os.PathLike, config: dict, inputs: dict[str, str | os.PathLike | None] | None = None):
        self.path = Path(path)
        digests = {name: file_digest(file) for name, file in (inputs or {}).items() if file is not None}
        self.config = {**config, **({"inputs": digests} if digests else {})}

    def load(self) -> dict | None:
        """The saved state, or None when there is none; a mismatched one raises CheckpointError."""
        if not self.path.exists():
            return None
        state = safe_load(self.path, "checkpoint")
        check_same_config(state.get("config", {}), self.config, self.path, "checkpoint")
        return state

    def save(self, epoch: int, **state: Any) -> None:
        atomic_save({"epoch": epoch, "config": self.config, **state}, self.path)


class EpochStage:
    """The life of one long stage (warm-up, search, retrain): resume, run the epochs left, write, drop the checkpoint.

    `identity`: the settings a checkpoint must match to be resumed; `inputs` ({name: file}): the files
    the stage read, whose content digests must match too (EpochCheckpoint). After every epoch the
    caller's state, the per-epoch `log` (any picklable record: a list or columns) and the elapsed
    training seconds are checkpointed atomically; `finish` writes the outputs by atomic renames.
    keep_checkpoint: leave the finished checkpoint for the caller to delete once all that follows
    has succeeded (the pipeline does, after the stage's notebook: workflow/scripts/finish_stage_run.py):
    a failure after training then reruns nothing, the next call resumes at the end.
    """

    def __init__(self, checkpoint_path: str | os.PathLike, identity: dict, inputs: dict | None = None, *,
                 keep_checkpoint: bool = False, log=None, name: str = "training"):
        self.checkpoint = EpochCheckpoint(checkpoint_path, identity, inputs)
        self.keep_checkpoint, self.name = keep_checkpoint, name
        self.log, self.elapsed, self.start = log if log is not None else [], 0.0, 0

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    def resume(self, restore: Callable[[dict], None]) -> int:
        """Load the checkpoint, if any: `restore(state)` sets the caller's state; returns the first epoch to run."""
        state = self.checkpoint.load()
        if state is not None:
            restore(state)
            self.log, self.elapsed, self.start = state["log"], float(state["elapsed"]), int(state["epoch"]) + 1
            log.info("resuming %s from epoch %d (%s)", self.name, self.start + 1, self.path)
        return self.start

    def kept(self) -> Path | None:
        """The last good checkpoint, if there is one (a diverged epoch names it)."""
        return self.path if self.path.exists() else None

    def end_epoch(self, epoch: int, seconds: float, **state: Any) -> None:
        """Checkpoint the state after `epoch` (its log record already appended), with the elapsed time."""
        self.elapsed += seconds
        self.checkpoint.save(epoch, log=self.log, elapsed=self.elapsed, **state)

    def finish(self, outputs: dict[str | os.PathLike, Any]) -> None:
        """Write each output ({path: object}: JSON for .json, torch.save otherwise) atomically, then drop the
        checkpoint unless it is kept for the caller."""
        for path, obj in outputs.items():
            (write_json if str(path).endswith(".json") else atomic_save)(obj, path)
        if not self.keep_checkpoint:
            self.path.unlink(missing_ok=True)

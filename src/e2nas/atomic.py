"""Atomic file writes: a temporary file beside the target, then a rename, so a kill never leaves a torn file.

The temporary file is named `.{name}.tmp-{host}-{pid}-{random}`: the random part keeps two writers
of one path (two processes, or two threads of one) from ever sharing a temporary file, and the
host and PID say whose it is. A writer removes only its own temporary file: on any failure
(disk full, a kill of the write by an exception, a rename that fails), never another's. A failed
write raises `WriteError` (an OSError) naming the path and the errno, ENOSPC as "disk full".

The temporary files of writers that were killed (SIGKILL leaves them) are removed by
`remove_orphans`, which the pipeline calls at its start, under its run lock
(`e2nas.run_control`): only files named for this host whose process is gone.

Torch-free and import-light (the Snakefile uses it before any job).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

_HOST = re.sub(r"[^A-Za-z0-9_]+", "_", socket.gethostname())[:40] or "host"
# .{name}.tmp-{host}-{pid}-{16 hex digits}
_TEMPORARY = re.compile(r"^\..+\.tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{16}$")


class WriteError(OSError):
    """A file that could not be written; the message names the file, the errno and what to do."""

    def __str__(self) -> str:
        return str(self.strerror)


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path` for this process: `.{name}.tmp-{host}-{pid}-{random}`."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(8)}")


def describe(exc: OSError, path: str | os.PathLike) -> str:
    """One line for a failed write of `path`: the errno by name (ENOSPC: disk full) and the fix."""
    code = exc.errno
    name = errno.errorcode.get(code, "") if code is not None else ""
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "disk full" if code == errno.ENOSPC else "disk quota exceeded"
        fix = f"free space on the disk that holds {Path(path).parent} and rerun"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        what, fix = "not writable", f"make {Path(path).parent} writable and rerun"
    else:
        what, fix = (exc.strerror or type(exc).__name__).lower(), "fix the cause and rerun"
    tag = f"{name}, errno {code}" if name else f"errno {code}"
    return f"cannot write {path}: {what} ({tag}); {fix}"


class _Recorder:
    """A file whose writes go through Python and whose first OSError is kept: a writer that turns it into
    another error (torch.save writing a real file from C++ says `basic_ios::clear: iostream error`)
    still lets `atomic_write` name the errno."""

    def __init__(self, file: IO):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name):
        return getattr(self.file, name)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], mode: str = "wb") -> None:
    """Write `path` through `write(file)` on a temporary file beside it, then rename it into place.

    On any failure the temporary file is removed and nothing at `path` changes; an OSError (also
    one the writer turned into another error) becomes WriteError naming the path and the errno
    (ENOSPC: "disk full").
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(exc.errno, describe(exc, path)) from None
    tmp = temporary_path(path)
    recorder = None
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            recorder = _Recorder(f)
            write(recorder)
            f.flush()
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # ours, by its random name; never another writer's
        cause = recorder.error if recorder is not None and recorder.error is not None else exc
        if isinstance(cause, OSError) and not isinstance(cause, WriteError):
            raise WriteError(cause.errno, describe(cause, path)) from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """`text` (UTF-8) to `path` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(text), "w")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def orphaned_temporaries(folder: str | os.PathLike) -> Iterator[Path]:
    """Temporary files under `folder` whose writer was killed: named for this host, their PID not running.

    A live writer's file (its PID runs) and other hosts' files (a shared file system) are never listed.
    """
    for path in Path(folder).rglob(".*.tmp-*"):
        found = _TEMPORARY.match(path.name)
        if found and found["host"] == _HOST and int(found["pid"]) != os.getpid() and not _alive(int(found["pid"])):
            yield path


def remove_orphans(folder: str | os.PathLike) -> list[Path]:
    """Remove `orphaned_temporaries(folder)`; returns what was removed."""
    removed = []
    for path in list(orphaned_temporaries(folder)):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed

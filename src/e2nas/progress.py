"""Plain-text progress lines for the library's loops, readable in a terminal, a log and an executed notebook.

`tqdm.auto` renders as a Jupyter widget under papermill: the executed notebook and the terminal
running snakemake (papermill's --log-output forwards only the kernel's streams) then show a bar
frozen at its first state. `progress` is plain `tqdm.tqdm` writing one complete line per update
to sys.stderr instead: no widget, no carriage-return redraws, at most one line every
`mininterval` seconds, plus a first line when the loop starts and a last one when it ends.

    for x in progress(items, desc="vgae", unit="epoch"):
        ...
        bar.set_postfix(loss=f"{loss:.3f}")  # shown on the next line written, not written at once
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable

from tqdm import tqdm

__all__ = ["MININTERVAL", "progress"]

MININTERVAL = 15.0
"""Default seconds between two lines of one bar (the first and the last line are always written)."""

NCOLS = 200
"""Fixed line width: a cap only (the bar itself is BAR_WIDTH characters), so the postfix shows."""

BAR_WIDTH = 20
_BAR_FORMAT = f"{{l_bar}}{{bar:{BAR_WIDTH}}}{{r_bar}}"


class LineWriter:
    """A file for tqdm that turns each in-place redraw ('\\r' + status) into one complete line.

    Blank redraws (tqdm clearing its bar) are dropped. The target stream is looked up at each
    write, so a redirected or replaced sys.stderr (a Jupyter kernel's, pytest's) gets the lines. Inside a
    pipeline job ($E2NAS_JOB, set by the workflow) each line starts with the job's name, so the lines of
    parallel jobs on one console say whose they are: `[e2nas seed0 · search] e2nas epoch 2/5 ...`.
    """

    _split = re.compile(r"[\r\n]+")

    def __init__(self, stream=None):
        self._stream = stream

    @property
    def stream(self):
        return self._stream if self._stream is not None else sys.stderr

    def write(self, text: str) -> int:
        job = os.environ.get("E2NAS_JOB")
        lines = [part.rstrip() for part in self._split.split(str(text))]
        lines = [f"[{job}] {line}" if job else line for line in lines if line.strip()]
        stream = self.stream
        if lines and stream is not None:  # None: at interpreter shutdown
            stream.write("".join(line + "\n" for line in lines))
            self.flush()
        return len(text)

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()


class _LineBar(tqdm):
    """tqdm with line-per-update semantics: postfix/description changes wait for the next throttled
    line instead of forcing one, and closing writes the final state once (whatever `leave` says:
    a log has nothing to erase)."""

    def __init__(self, *args, **kwargs):
        self._shown_n = None  # n of the last line written (display() runs inside tqdm.__init__)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        shown = super().display(msg=msg, pos=pos)
        if msg is None:
            self._shown_n = self.n
        return shown

    def set_postfix(self, ordered_dict=None, refresh=False, **kwargs):
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)

    def set_postfix_str(self, s="", refresh=False):
        super().set_postfix_str(s, refresh=refresh)

    def set_description(self, desc=None, refresh=False):
        super().set_description(desc, refresh=refresh)

    def set_description_str(self, desc=None, refresh=False):
        super().set_description_str(desc, refresh=refresh)

    def close(self):
        if not getattr(self, "disable", True) and hasattr(self, "sp") and self._shown_n != self.n:
            with self._lock:
                self._ema_dt = lambda: None  # the overall rate, as tqdm's own final line
                self.display()
        self.leave = False  # the final line is written: tqdm's close only clears (a blank write, dropped)
        super().close()


def progress(
    iterable: Iterable | None = None,
    total: float | None = None,
    desc: str | None = None,
    disable: bool = False,
    leave: bool = True,
    mininterval: float = MININTERVAL,
    unit: str = "it",
    stream=None,
    **kwargs,
) -> tqdm:
    """A tqdm over `iterable` (or updated by hand up to `total`) that writes plain lines to sys.stderr.

    Each line is tqdm's usual status: description, percentage, an ASCII bar, n/total, elapsed<ETA,
    rate and the postfix. `mininterval`: the least seconds between two lines (0 = every update).
    `leave` is accepted as tqdm's, but a line log erases nothing: every bar ends with its final line.
    `stream`: where the lines go (default: sys.stderr as it is at each write). Other keyword
    arguments go to tqdm.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if total is not None:
        kwargs.setdefault("bar_format", _BAR_FORMAT)
    return _LineBar(
        iterable,
        total=total,
        desc=desc,
        disable=disable,
        leave=True,
        mininterval=mininterval,
        miniters=1,  # check the clock at every update; no monitor-thread redraws
        unit=unit,
        file=LineWriter(stream),
        ascii=True,
        dynamic_ncols=False,
        ncols=NCOLS,
        position=0,  # one bar per line: never the cursor moves of nested bars
        **kwargs,
    )

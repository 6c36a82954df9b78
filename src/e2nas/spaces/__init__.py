"""Search spaces: one package each (`nb201`, `darts`), one `Space` object per package.

`get(name)` imports the space's package on first use, so a stage's code depends on the
spaces it runs and no other (the workflow's code inputs follow the same rule). A third space
is one new package here with a `SPACE` object, plus its name in the config schema's `space`
enum; docs/extending.md shows one.
"""

from __future__ import annotations

import importlib
import pkgutil

from e2nas.spaces.base import Cell, Space, TrainingHooks

NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))

__all__ = ["NAMES", "Cell", "Space", "TrainingHooks", "get"]


def get(name: str) -> Space:
    """The space called `name` (config key `space`); an unknown name raises ValueError listing the known ones."""
    if name not in NAMES:
        raise ValueError(f"unknown search space {name!r} (config key `space`); known: {', '.join(NAMES)}")
    return importlib.import_module(f"e2nas.spaces.{name}").SPACE

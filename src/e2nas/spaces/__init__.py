"""Search spaces: one package each (`nb201`, `darts`), one `Space` object per package.

`get(name)` imports the space's package on first use, so a stage's code depends on the
spaces it runs and no other (the workflow's code inputs follow the same rule). A third space
is one new package here with a `SPACE` object (and, for config keys of its own, a `config.py`
and `config.schema.yaml`); nothing outside the package lists it. docs/extending.md shows one.
"""

from __future__ import annotations

import importlib
import pkgutil

from e2nas.spaces.base import Cell, Space, TrainingHooks

NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg))

__all__ = ["NAMES", "Cell", "Space", "TrainingHooks", "configured", "from_config", "get", "resolve"]


def get(name: str) -> Space:
    """The space called `name` (config key `space`); an unknown name raises ValueError listing the known ones."""
    if name not in NAMES:
        raise ValueError(f"unknown search space {name!r} (config key `space`); known: {', '.join(NAMES)}")
    return importlib.import_module(f"e2nas.spaces.{name}").SPACE


def configured(name: str, options: dict | None = None) -> Space:
    """The space called `name` with its `options` (DARTS: distinct_inputs), the object a stage resolves
    once at its entry and passes down."""
    return get(name).configured(**(options or {}))


def from_config(name: str, sections: dict) -> Space:
    """The space called `name` with the options config `sections` ({section: values}) set for it."""
    space = get(name)
    return space.configured(**space.options_of(sections))


def resolve(space: Space | str) -> Space:
    """A Space given as itself or by its name (library entry points take either)."""
    return space if isinstance(space, Space) else get(space)

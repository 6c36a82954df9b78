"""Search spaces. Each space module exposes NAME, OPS, CHOICE_SIZES, format_arch, parse_arch."""

from __future__ import annotations

from types import ModuleType

SPACES = ("nb201", "darts")


def get_space(name: str) -> ModuleType:
    """The module that describes search space `name`; an unknown name raises ValueError."""
    if name == "nb201":
        from e2nas.spaces import nb201

        return nb201
    if name == "darts":
        from e2nas.spaces import darts

        return darts
    raise ValueError(f"unknown search space {name!r} (config key `space`); known: {', '.join(SPACES)}")

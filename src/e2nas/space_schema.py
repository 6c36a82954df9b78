"""The config keys each space package adds to the shared sections, read from its `config.schema.yaml`.

Torch-free and import-light: the config check (before any job) and `Space.config` (in every stage) read it,
and a stage's code inputs hold it alone, not the config check.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SPACES_DIR = Path(__file__).resolve().parent / "spaces"
SPACE_SCHEMA = "config.schema.yaml"  # a space package's keys in the shared sections


def space_names(spaces_dir: Path = SPACES_DIR) -> list[str]:
    """The space packages (folders of e2nas.spaces with an __init__.py), as e2nas.spaces.NAMES finds them."""
    return sorted(p.parent.name for p in spaces_dir.glob("*/__init__.py"))


def fragment(name: str, spaces_dir: Path = SPACES_DIR) -> dict:
    """{section: {key: schema}} of space `name` (empty for a space without keys of its own)."""
    path = spaces_dir / name / SPACE_SCHEMA
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def space_keys(section: str, spaces_dir: Path = SPACES_DIR) -> set[str]:
    """The keys the space packages add to config section `section` (every space's)."""
    return set().union(*(set(fragment(name, spaces_dir).get(section) or {}) for name in space_names(spaces_dir)))

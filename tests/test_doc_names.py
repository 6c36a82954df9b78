"""Every dotted `e2nas.…` name the docs and the library's own text cite exists: a module (the longest
importable prefix) and, after it, attributes that resolve."""

from __future__ import annotations

import importlib
import re

import pytest

from conftest import REPO

NAME = re.compile(r"(?<![/\w.-])e2nas(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
FILE_SUFFIXES = ("py", "yaml", "yml", "json", "ipynb", "csv", "md", "pt", "smk")  # e2nas.yaml is a file, not a module
TEXTS = [*REPO.glob("*.md"), *(REPO / "docs").glob("*.md"), *(REPO / "src" / "e2nas").rglob("*.py"),
         *(REPO / "workflow").rglob("*.smk"), *(REPO / "notebooks").glob("*.ipynb"), REPO / "Snakefile"]


def cited_names() -> dict[str, str]:
    found = {}
    for path in TEXTS:
        for match in NAME.finditer(path.read_text()):
            name = match.group(0)
            if name.rsplit(".", 1)[-1] not in FILE_SUFFIXES:
                found.setdefault(name, str(path.relative_to(REPO)))
    return found


def resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_every_cited_e2nas_name_exists():
    missing = {name: where for name, where in cited_names().items() if not resolves(name)}
    assert missing == {}, f"names cited but not found (name: first file): {missing}"


@pytest.mark.parametrize("name, ok", [("e2nas.layout.parse", True), ("e2nas.search.space", False), ("e2nas.nope", False)])
def test_the_check_itself(name, ok):
    assert resolves(name) is ok

"""Which library files a stage runs: its notebook's e2nas imports, closed over the imports of those modules.

Snakemake's `code` rerun trigger sees a rule's shell text and notebook, never the modules they
import; the rules declare these files as inputs, so editing one reruns exactly the stages that
import it. Computed with `ast` over `src/e2nas` (every import statement, also inside
functions): a module imports its parent packages too, and `from package import name` imports
`package.name` when that is a module. Spaces are imported by name at run time
(`e2nas.spaces.get`), so a stage of a space adds the closure of the package's core
(`spaces/<space>/__init__.py`), and of each part of it (its `graphs`, `supernet`, ... modules) that a
module of the stage declares in a module-level `SPACE_PARTS` tuple: an edit of one space's
package reruns that space's jobs only, and of its network only the stages that build it.

This module imports nothing of the library (the Snakefile loads it before any job runs).
"""

from __future__ import annotations

import ast
import json
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent  # the folder holding the e2nas package
PACKAGE = "e2nas"


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The file of module `name` under `src`, or None when it is not one of ours."""
    base = src.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(source: str, src: Path = SRC) -> set[str]:
    """The e2nas modules a piece of Python source imports (absolute imports; every statement)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}", src))
    with_parents = set()
    for name in found:
        parts = name.split(".")
        with_parents.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return {name for name in with_parents if module_file(name, src)}


def import_closure(modules: set[str], src: Path = SRC) -> set[str]:
    """`modules` and everything they import, transitively, within the package."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_modules(module_file(name, src).read_text(), src) - seen)
    return seen


def notebook_source(path: str | Path) -> str:
    """The code cells of a notebook, IPython magics and shell lines left out."""
    cells = json.loads(Path(path).read_text())["cells"]
    code = ("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return "\n".join(line for cell in code for line in cell.splitlines() if not line.lstrip().startswith(("%", "!")))


@cache
def stage_modules(notebook: str, space: str | None = None, method: str | None = None, src: Path = SRC) -> tuple[str, ...]:
    """The modules a stage notebook runs, sorted: for a job of `space`, that space's package too; for
    a search job of `method`, the e2nas.search module implementing it (both are imported by name)."""
    from e2nas.names import METHOD_MODULES

    modules = imported_modules(notebook_source(notebook), src)
    if method is not None:
        modules |= imported_modules(f"import {PACKAGE}.search.{METHOD_MODULES[method]}", src)
    closure = import_closure(modules, src)
    if space is not None:
        parts = {part for name in closure for part in space_parts(module_file(name, src))}
        package = f"{PACKAGE}.spaces.{space}"
        wanted = {package} | {f"{package}.{part}" for part in parts if module_file(f"{package}.{part}", src)}
        closure |= import_closure(wanted, src)
    return tuple(sorted(closure))


def space_parts(path: Path) -> set[str]:
    """The names in a module's top-level `SPACE_PARTS = ("...", ...)`, if it has one."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SPACE_PARTS" for t in node.targets):
            return {elt.value for elt in node.value.elts}
    return set()


def stage_code(notebook: str | Path, space: str | None = None, method: str | None = None, src: Path = SRC) -> list[str]:
    """The files of `stage_modules`: the code inputs of a rule."""
    return [str(module_file(name, src)) for name in stage_modules(str(notebook), space, method, src)]

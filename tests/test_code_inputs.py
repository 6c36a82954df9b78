"""The rules' code inputs are the import closures of the stage notebooks (e2nas.code_inputs)."""

from __future__ import annotations

import importlib
import importlib.util
import modulefinder
from pathlib import Path

import pytest

from conftest import REPO
from e2nas import spaces
from e2nas.code_inputs import SRC, imported_modules, notebook_source, stage_code, stage_modules
from e2nas.names import METHOD_MODULES, METHODS

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def modulefinder_closure(source: str, tmp_path: Path) -> set[str]:
    """The e2nas modules Python's own ModuleFinder finds from `source` (bytecode scan of every module it loads)."""
    script = tmp_path / "stage.py"
    script.write_text(source)
    finder = modulefinder.ModuleFinder(path=[str(SRC)])  # only our package: third-party imports are not followed
    finder.run_script(str(script))
    return {name for name in finder.modules if name == "e2nas" or name.startswith("e2nas.")}


def declared_parts(modules: set[str], space: str) -> str:
    """Imports of the space parts the (imported) modules declare in SPACE_PARTS, as source."""
    parts = {p for name in modules for p in getattr(importlib.import_module(name), "SPACE_PARTS", ())}
    return "".join(f"import e2nas.spaces.{space}.{p}\n" for p in sorted(parts)
                   if importlib.util.find_spec(f"e2nas.spaces.{space}.{p}") is not None)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
@pytest.mark.parametrize("space", spaces.NAMES)
def test_code_inputs_equal_the_import_closure_modulefinder_sees(notebook, space, tmp_path):
    methods = METHODS if notebook.stem == "04_search" else [None]
    for method in methods:
        source = notebook_source(notebook) + (f"\nimport e2nas.search.{METHOD_MODULES[method]}\n" if method else "")
        stage = modulefinder_closure(source, tmp_path)
        want = modulefinder_closure(source + f"\nimport e2nas.spaces.{space}\n" + declared_parts(stage, space), tmp_path)
        assert set(stage_modules(str(notebook), space, method)) == want, (notebook.stem, space, method)


def test_the_closure_follows_submodules_parents_and_function_level_imports():
    found = imported_modules("from e2nas import spaces\ndef f():\n    from e2nas.search import plots\n")
    assert {"e2nas", "e2nas.spaces", "e2nas.search", "e2nas.search.plots"} <= found
    assert imported_modules("import numpy\nfrom e2nas.names import METHODS\n") == {"e2nas", "e2nas.names"}


def test_each_search_job_runs_only_its_own_method_and_no_other_space():
    gdas = set(stage_code(REPO / "notebooks" / "04_search.ipynb", "nb201", "gdas"))
    e2nas = set(stage_code(REPO / "notebooks" / "04_search.ipynb", "nb201", "e2nas"))
    vgae = {str(p) for p in (SRC / "e2nas" / "vgae").glob("*.py") if p.name != "plots.py"}  # stage 2's figures
    assert vgae <= e2nas and not vgae & gdas  # editing the VGAE reruns no baseline
    assert not any("/spaces/darts/" in f for f in gdas | e2nas)


def test_every_stage_runs_the_modules_the_old_hand_lists_missed():
    """Measured in issue 17: runtime.py in every stage that runs a network, checkpoint.py and training.py in the
    stage that scores supernets (once the report's work), checkpoint.py in stage 1, the grouped pass in the search."""
    code = {nb.stem: {Path(f).relative_to(SRC / "e2nas").as_posix() for f in stage_code(nb, "nb201", "e2nas" if "search" in nb.stem else None)}
            for nb in NOTEBOOKS}
    assert all("runtime.py" in files for stem, files in code.items() if stem not in ("01_graph_dataset", "07_report"))
    assert "checkpoint.py" in code["06_rank_supernet"] and "training.py" in code["06_rank_supernet"]
    assert "checkpoint.py" in code["01_graph_dataset"]
    assert "spaces/nb201/grouped.py" in code["04_search"]

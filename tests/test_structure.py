"""House rules that keep the layout easy to live in: spaces asked, not branched on; thin notebooks."""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess

import pytest

from conftest import REPO
from e2nas import spaces
from e2nas.spaces.base import Space

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
BRANCH = r'space *(==|!=) *|(==|!=) *"(nb201|darts)"|== *nb201\.NAME'


def test_no_layer_branches_on_a_space_name():
    out = subprocess.run(["grep", "-rnE", BRANCH, "src", "notebooks", "workflow"], cwd=REPO, capture_output=True, text=True)
    hits = [line for line in out.stdout.splitlines() if not line.startswith("src/e2nas/spaces/")]
    assert hits == []


def test_no_library_signature_defaults_to_a_space():
    hits = []
    for path in (REPO / "src" / "e2nas").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                named = [*args.posonlyargs, *args.args][-len(args.defaults):] if args.defaults else []
                pairs = list(zip(named, args.defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
                hits += [f"{path.name}:{node.name}" for a, d in pairs
                         if a.arg == "space" and isinstance(d, ast.Constant) and d.value in spaces.NAMES]
    assert hits == []


@pytest.mark.parametrize("name", spaces.NAMES)
def test_every_space_implements_the_interface(name):
    space = spaces.get(name)
    assert isinstance(space, Space) and space.name == name
    for attr, member in inspect.getmembers(Space, inspect.isfunction):
        body = inspect.getsource(member)
        if "raise NotImplementedError" in body and attr != "grouped_losses":
            assert getattr(type(space), attr) is not member, f"{name} does not implement {attr}"
    cell = space.sample(1, None, valid=True)[0]
    assert space.parse(space.format(cell)) == tuple(cell) and space.is_valid(cell)
    assert space.decoder_shape == (len(space.choice_sizes), max(space.choice_sizes))


def test_the_schema_lists_the_space_packages():
    from e2nas.config_check import composed_schema

    schema = composed_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert sorted(schema["properties"]["space"]["enum"]) == sorted(spaces.NAMES)


def code_lines(cell) -> int:
    return sum(1 for line in "".join(cell["source"]).splitlines() if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_cells_stay_thin(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])]
    assert max(code_lines(c) for c in code) <= 15
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_builds_its_mlflow_params_through_one_helper(notebook):
    source = "".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"])
    assert source.count("tr.open_stage_run(tracking") == 1 and "start_stage_run" not in source
    assert not re.search(r"\bvars\(", source)  # configs go in as objects; the helper flattens them


def test_space_parts_named_in_the_code_exist():
    """Every part a space loads by name, and every part a stage module declares, is a module of some space."""
    from e2nas.code_inputs import SRC, space_parts

    modules = {name: {p.stem for p in (SRC / "e2nas" / "spaces" / name).glob("*.py")} for name in spaces.NAMES}
    for name in spaces.NAMES:
        used = set(re.findall(r'self\.part\("(\w+)"\)', (SRC / "e2nas" / "spaces" / name / "space.py").read_text()))
        assert used and used <= modules[name], name
    declared = set().union(*(space_parts(p) for p in (SRC / "e2nas").rglob("*.py") if "spaces" not in p.parts))
    assert declared and declared <= set().union(*modules.values())

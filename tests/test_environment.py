"""environment.yml and envs/*.yaml stay in step with pyproject.toml and constraints.txt.

No conda channel is reachable here, so the check is structural.
"""

import re

import tomllib
import yaml

from conftest import REPO


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    return {norm(k): v for k, v in (line.split("==") for line in lines if "==" in line)}


def pyproject_deps(extra: str | None = None) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return {norm(re.split(r"[<>=!~ \[]", d)[0]) for d in deps}


def pip_pins(env_file) -> dict[str, str]:
    env = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {norm(p.split("==")[0]): p.split("==")[1] for p in pip if "==" in p}


def test_torch_pins():
    pins = constraints()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_rule_env_matches_requirements():
    pins = pip_pins(REPO / "envs" / "e2nas.yaml")
    assert set(pins) == pyproject_deps()
    assert all(constraints()[name] == version for name, version in pins.items())


def test_project_env_matches_requirements():
    pins = pip_pins(REPO / "environment.yml")
    assert set(pins) == pyproject_deps() | pyproject_deps("dev")
    assert all(constraints()[name] == version for name, version in pins.items())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "-e ." in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))


def test_every_stage_rule_uses_the_rule_env():
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        assert text.count("shell:") == text.count("conda:"), smk.name

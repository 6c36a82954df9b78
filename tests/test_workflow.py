"""The Snakemake workflow: config validation before any job starts (dry runs, fast)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def dry_run(tmp_path, config: dict) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), "--configfile", str(cfg), "--cores", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def smoke() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def test_smoke_config_plans_a_run(tmp_path):
    out = dry_run(tmp_path, smoke())
    assert out.returncode == 0, out.stderr
    assert "build_graphs" in out.stdout


@pytest.mark.parametrize(
    "change, names",
    [
        ({"seedz": [0]}, ["seedz"]),
        ({"seeds": "0"}, ["seeds", "array"]),
        ({"datasets": ["mnist"]}, ["mnist", "datasets"]),
        ({"methods": ["e2nas", "enas"]}, ["enas"]),
        ({"space": "nb301"}, ["nb301"]),
        ({"run": "my run; rm -rf /"}, ["run", "pattern"]),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, change, names):
    out = dry_run(tmp_path, {**smoke(), **change})
    assert out.returncode != 0
    for name in names:
        assert name in out.stderr + out.stdout
    assert not (tmp_path / "work" / "results").exists()

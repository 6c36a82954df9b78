"""The `e2nas` console script: its subcommands wrap the pipeline, the config check, the UI and the tables."""

import subprocess
import sys

import pytest

from conftest import REPO


def e2nas(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "e2nas.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd or REPO)


def test_help_lists_the_common_jobs():
    out = e2nas("--help")
    assert out.returncode == 0
    assert all(word in out.stdout for word in ("run", "check", "ui", "table convert", "table build", "table summary"))


def test_check_accepts_every_profile_and_names_a_bad_key_or_an_empty_file(tmp_path):
    for profile in ("default", "smoke", "study-nb201", "smoke-darts"):
        out = e2nas("check", "--profile", profile)
        assert out.returncode == 0 and "configuration OK" in out.stdout, (profile, out.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  epoch: 3\n")
    out = e2nas("check", "--configfile", bad)
    assert out.returncode == 1 and "unknown key 'epoch' in section `search` (did you mean 'epochs'?)" in out.stderr
    assert "Traceback" not in out.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    out = e2nas("check", "--configfile", empty)
    assert out.returncode == 1 and f"config file {empty} is empty" in out.stderr


def test_an_unknown_profile_lists_the_profiles():
    out = e2nas("run", "--profile", "nope")
    assert out.returncode == 1 and "no profile 'nope'" in out.stderr and "smoke" in out.stderr


@pytest.mark.slow  # a Snakemake dry run
def test_run_passes_its_arguments_to_snakemake():
    out = e2nas("run", "--profile", "smoke", "--cores", "1", "-n", "--quiet", "rules")
    assert out.returncode == 0, out.stderr
    assert "retrain_cell" in out.stdout + out.stderr

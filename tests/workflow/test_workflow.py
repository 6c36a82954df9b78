"""The Snakemake workflow: config validation before any job starts (dry runs, fast)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def dry_run(tmp_path, config: dict, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), "--configfile", str(cfg), "--cores", "1", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def smoke() -> dict:
    return yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def planned(out: subprocess.CompletedProcess) -> list[dict]:
    """Every job of a dry run (`-n -p`): rule, wildcards, input and output files, shell command, and the
    text of the parameters file the command hands papermill (relative to the run's -d folder)."""
    workdir = Path(out.args[out.args.index("-d") + 1])
    blocks = re.split(r"^(?:local)?(?:rule|checkpoint) (\w+):$", out.stdout + out.stderr, flags=re.M)[1:]
    jobs = []
    for rule, body in zip(blocks[::2], blocks[1::2]):
        field = lambda name, body=body: (re.search(rf"^\s+{name}: (.*)$", body, flags=re.M) or [None, ""])[1]
        shell = body.split("Shell command:", 1)[-1]
        parameters = re.search(r"(\.snakemake/e2nas-parameters/\S+\.yaml)", shell)
        jobs.append({
            "rule": rule,
            "wildcards": dict(kv.split("=", 1) for kv in field("wildcards").split(", ") if kv),
            "input": field("input").split(", "),
            "output": field("output").split(", "),
            "shell": shell,
            "parameters": (workdir / parameters[1]).read_text() if parameters else "",
        })
    return jobs


def test_smoke_config_plans_a_run(tmp_path):
    out = dry_run(tmp_path, smoke())
    assert out.returncode == 0, out.stderr
    assert "build_graphs" in out.stdout


@pytest.mark.parametrize(
    "change, names",
    [
        ({"seedz": [0]}, ["seedz", "did you mean 'seeds'"]),
        ({"seeds": "0"}, ["seeds", "array"]),
        ({"datasets": ["mnist"]}, ["mnist", "datasets", "fashion-mnist"]),
        ({"methods": ["e2nas", "enas"]}, ["enas"]),
        ({"space": "nb301"}, ["nb301"]),
        ({"run": "my run; rm -rf /"}, ["run", "allowed form"]),
        ({"seeds": [1.0]}, ["seeds: 1.0 is not an integer"]),
        ({"run": "mlflow.db"}, ["mlflow.db", "results/"]),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, change, names):
    out = dry_run(tmp_path, {**smoke(), **change})
    assert out.returncode != 0
    for name in names:
        assert name in out.stderr + out.stdout
    assert not (tmp_path / "work" / "results").exists()


def package_files(space: str) -> tuple[str, ...]:
    """The files of one space's package, as src/e2nas/... suffixes."""
    return tuple(f"spaces/{space}/{p.name}" for p in (REPO / "src" / "e2nas" / "spaces" / space).glob("*.py"))


DARTS_ONLY_MODULES = package_files("darts")


@pytest.mark.parametrize("name", ["smoke-darts.yaml", "paper-darts-cifar10.yaml"])
def test_darts_profile_plans_every_stage_on_darts_paths(tmp_path, name):
    cfg = profile(name)
    out = dry_run(tmp_path, cfg, "-p")
    assert out.returncode == 0, out.stderr
    jobs = planned(out)
    count = lambda rule: sum(j["rule"] == rule for j in jobs)  # noqa: E731
    runs = len(cfg["datasets"]) * len(cfg["seeds"])
    assert (count("build_graphs"), count("pretrain_vgae"), count("report"), count("all")) == (1, 1, 1, 1)
    assert count("warmup_supernet") == runs
    assert count("search_architecture") == runs * len(cfg["methods"])
    merged = {**profile("config.yaml")["references"], **(cfg.get("references") or {})}  # --configfile merges
    # + the random cell per seed, each reference cell once per dataset (the first seed)
    assert count("retrain_cell") == runs * (len(cfg["methods"]) + 1) + len(cfg["datasets"]) * len(merged["darts"])
    for job in jobs:
        if job["wildcards"]:
            assert job["wildcards"]["space"] == "darts", job
        if job["rule"] not in ("all", "report"):
            assert all("/darts" in path for path in job["output"]), job
    report = next(j for j in jobs if j["rule"] == "report")
    stage_files = [p for p in report["input"] if p.startswith("results/")]
    assert len(stage_files) == count("search_architecture") + count("retrain_cell")  # no ranking: DARTS has no table
    assert count("rank_supernet") == 0
    assert all("/darts/" in p for p in stage_files), stage_files
    # Each DARTS job runs the package's core and the parts its stage builds; no job runs NB201's files.
    def darts_files(job):
        return {m.rsplit("/", 1)[1] for m in DARTS_ONLY_MODULES if any(p.endswith(m) for p in job["input"])}

    core = {"__init__.py", "cells.py", "config.py", "space.py"}
    by_rule = {}
    for job in jobs:
        if job["rule"] != "all":
            by_rule.setdefault(job["rule"], []).append(darts_files(job))
            assert not [p for p in job["input"] if p.endswith(package_files("nb201"))], job["rule"]
    assert by_rule["build_graphs"] == by_rule["pretrain_vgae"] == [core | {"graphs.py"}]
    assert all(files == core | {"ops.py", "supernet.py"} for files in by_rule["warmup_supernet"])
    assert all(files >= core | {"ops.py", "supernet.py"} and "network.py" not in files for files in by_rule["search_architecture"])
    assert all(files == core | {"ops.py", "network.py"} for files in by_rule["retrain_cell"])
    # Stage 1 gets the profile's `graphs` section (how many genotypes, which seed).
    stage1 = next(j for j in jobs if j["rule"] == "build_graphs")["parameters"]
    assert f"num_archs: {cfg['graphs']['num_archs']}" in stage1 and "space: darts" in stage1


def test_nb201_plan_takes_no_darts_module_and_no_graphs_section(tmp_path):
    """Editing a DARTS-only module, or the `graphs` section, reruns no NB201 job."""
    out = dry_run(tmp_path, {**smoke(), "graphs": {"num_archs": 7, "seed": 3}}, "-p")
    assert out.returncode == 0, out.stderr
    jobs = planned(out)
    assert {j["rule"] for j in jobs} >= {"build_graphs", "warmup_supernet", "search_architecture", "retrain_cell", "report"}
    for job in jobs:
        assert not [p for p in job["input"] if p.endswith(DARTS_ONLY_MODULES)], job["rule"]
    stage1 = next(j for j in jobs if j["rule"] == "build_graphs")["parameters"]
    assert "space: nb201" in stage1 and "num_archs" not in stage1


def test_unknown_space_is_refused_naming_the_key_and_the_spaces(tmp_path):
    out = dry_run(tmp_path, {**profile("smoke-darts.yaml"), "space": "foo"})
    assert out.returncode != 0
    text = out.stderr + out.stdout
    assert "space = 'foo' is not allowed; choose one of: darts, nb201" in text
    assert not (tmp_path / "work" / "results").exists()


def test_study_profile_ranks_every_seeds_supernets_and_retrains_under_the_table_protocol(tmp_path):
    cfg = profile("study-nb201.yaml")
    out = dry_run(tmp_path, cfg, "-p")
    assert out.returncode == 0, out.stderr
    jobs = planned(out)
    count = lambda rule: sum(j["rule"] == rule for j in jobs)  # noqa: E731
    supernet_methods = {"e2nas", "e2nas-paper", "e2nas-noexplore", "e2nas-nocomplement", "gdas", "darts", "rsps"}
    assert set(cfg["methods"]) == supernet_methods | {"random-search", "params", "synflow"}
    assert cfg["seeds"] == [0, 1, 2, 3, 4] and cfg["retrain"]["judge_seeds"] == [100, 101, 102]
    assert count("rank_supernet") == len(cfg["seeds"])
    assert count("retrain_cell") == len(cfg["seeds"]) * (len(cfg["methods"]) + 1)
    rank = next(j for j in jobs if j["rule"] == "rank_supernet")
    seed = rank["wildcards"]["seed"]
    assert {p for p in rank["input"] if p.endswith("supernet.pt")} == {  # the stand-alone methods have no supernet
        f"results/study-nb201/search/fashion-mnist/nb201/{m}/seed{seed}/supernet.pt" for m in supernet_methods}
    assert any(p.endswith("tables/fashion_mnist_nb201.csv") for p in rank["input"])  # the truth it ranks against
    assert any(p.endswith("tables/nb201_test_accuracy.csv") for p in rank["input"])  # and the transfer proxy
    for job in (j for j in jobs if j["rule"] == "retrain_cell"):
        # Only the protocol reaches the job (the default profile's retrain keys do not), with the table's settings.
        assert "protocol: ground-truth" in job["parameters"] and "train_subset: 8000" in job["parameters"]
        assert not any(p.endswith("fashion_mnist_nb201.csv") for p in job["input"])  # new rows rerun no retrain


def test_a_sweep_of_over_a_thousand_searches_plans_with_short_commands(tmp_path):
    """Parameters travel in a file: the report of 1,000 searches lists every result there, while each
    command stays far below the 128 KiB a single shell argument may hold."""
    cfg = {**smoke(), "seeds": list(range(250))}
    out = dry_run(tmp_path, cfg, "-p", "--rerun-triggers", "mtime")
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = planned(out)
    searches = [j for j in jobs if j["rule"] == "search_architecture"]
    assert len(searches) == 250 * len(cfg["methods"]) >= 1000
    assert max(len(j["shell"]) for j in jobs) < 4096
    report = yaml.safe_load(next(j for j in jobs if j["rule"] == "report")["parameters"])
    assert sorted(report["inputs"]["results"]) == sorted(j["output"][0] for j in searches)


@pytest.mark.parametrize("name", ["config.yaml", "darts.yaml"])
def test_every_planned_path_round_trips_through_the_layout(tmp_path, name):
    """Every output, log and checkpoint of the default and DARTS profiles' DAGs is a path of e2nas.layout,
    and `layout.parse` gives back the wildcards that rebuild it."""
    from e2nas import layout

    out = dry_run(tmp_path, profile(name), "-p")
    assert out.returncode == 0, out.stderr
    jobs = [j for j in planned(out) if j["rule"] != "all"]
    paths = []
    for job in jobs:
        params = yaml.safe_load(job["parameters"])
        paths += [*job["output"], *params["outputs"].values(), params["tracking"]["run_file"].removesuffix(".mlflow_run")]
        paths += [params["checkpoint"]] if params.get("checkpoint") else []
        for kind in ("search_result", "retrain_metrics", "ranking", "warmup", "graphs", "vgae_model", "searched_supernet"):
            paths += [p for p in job["input"] if p.startswith("results/") and layout.parse(p)["kind"] == kind]
    assert len(paths) > 3 * len(jobs)
    for path in paths:
        found = layout.parse(path)
        kind, run = found.pop("kind"), found.pop("run")
        if kind in ("checkpoint", "notebook_log"):
            rule = found.pop("rule")
            found.pop("job")
            rebuilt = (layout.checkpoint if kind == "checkpoint" else layout.notebook_log)(rule, run=run, **found)
        else:
            rebuilt = layout.path(kind, run=run, **found)
        assert rebuilt == path, (kind, found)


@pytest.mark.parametrize("name", ["config.yaml", "study-nb201.yaml", "darts.yaml"])
def test_every_injected_parameter_is_declared_in_its_notebook(tmp_path, name):
    """papermill warns "Passed unknown parameter" for a name the notebook's parameters cell lacks: every job's
    parameters are its notebook's (the study profile covers the table's protocol, the stand-alone methods, the judge)."""
    import papermill

    out = dry_run(tmp_path, profile(name), "-p")
    assert out.returncode == 0, out.stderr
    declared, unknown = {}, set()
    for job in (j for j in planned(out) if j["parameters"]):
        notebook = re.search(r"(notebooks/\S+\.ipynb)", job["shell"])[1]
        if notebook not in declared:
            declared[notebook] = set(papermill.inspect_notebook(str(REPO / notebook)))
        unknown |= {(job["rule"], key) for key in set(yaml.safe_load(job["parameters"])) - declared[notebook]}
    assert not unknown and len(declared) >= 5, sorted(unknown)

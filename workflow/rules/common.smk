# Paths, parameters and input helpers shared by the stage rules.
import functools
import hashlib
import json
import os
import re
import shlex
import sys
import uuid
from pathlib import Path

import yaml

ROOT = Path(workflow.basedir)
sys.path.insert(0, str(ROOT / "src"))
from e2nas import layout  # noqa: E402 (torch-free: no library numerics at parse time)
from e2nas.code_inputs import stage_code  # noqa: E402
from e2nas.names import (  # noqa: E402
    E2NAS_METHODS, RANDOM_METHOD, REFERENCE_PREFIX, STANDALONE_METHODS, SUPERNET_METHODS, is_reference,
)


def here(path):
    """`path` as the rules name it: relative to the working directory, so that a checkout moved or
    re-cloned together with its results/ keeps every command and input Snakemake recorded (a job
    reruns when those change), and plans nothing."""
    return os.path.relpath(path)


RUN = config["run"]
RESULTS = f"{layout.RESULTS}/{RUN}"
FINISH_SCRIPT = shlex.quote(here(ROOT / "workflow" / "scripts" / "finish_stage_run.py"))
RUN_SCRIPT = shlex.quote(here(ROOT / "workflow" / "scripts" / "run_notebook.py"))
NOTEBOOK_CODE_DIR = Path(".snakemake", "e2nas-notebook-code")
CONDA_ENV = str(ROOT / "envs" / "e2nas.yaml")

# Jobs call `python` from PATH: Snakemake's own interpreter (e.g. .venv/bin) comes first,
# unless --use-conda activates the rule's env in front of it.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# One id per `snakemake` call, inherited by every job: MLflow groups a pipeline's runs by it.
os.environ.setdefault("E2NAS_INVOCATION", uuid.uuid4().hex[:12])

# Every stage rule runs its notebook the same way. Parameters travel as one YAML file (one shell
# argument holds at most 128 KiB; a sweep's report lists thousands of inputs); the step after
# papermill logs the executed notebook (also on failure) and ends the stage's MLflow run; the job
# then exits with papermill's status.
NOTEBOOK_SHELL = (
    "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
    f"PYTHONPATH=\"$PWD\"/{shlex.quote(here(ROOT / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; rc=0; "
    f"python {RUN_SCRIPT} {{params.notebook:q}} {{log.notebook:q}} {{params.parameters:q}} || rc=$?; "
    f"python {FINISH_SCRIPT} {{log.notebook:q}} {{params.parameters:q}} $rc; exit $rc"
)


def init_tracking_store():
    """Create the MLflow store once, before parallel jobs would race to create it; a store that cannot
    be opened (read-only results/, a corrupt mlflow.db) stops the run with what to do, no traceback."""
    from e2nas.tracking import TrackingError, init_store

    try:
        init_store()
    except TrackingError as error:
        sys.exit(str(error))


def notebook(name):
    """The notebook a stage runs (a param of its rule: the shell runs it)."""
    return here(ROOT / "notebooks" / f"{name}.ipynb")


def notebook_code(name):
    """The input that stands for a stage's notebook: its code cells alone, in a file under .snakemake/ (rewritten
    only when they change), so that editing its markdown or its outputs reruns nothing and a code cell reruns
    the stage and what follows."""
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    text = json.dumps(["".join(c["source"]) for c in cells if c["cell_type"] == "code"], indent=0) + "\n"
    path = NOTEBOOK_CODE_DIR / f"{name}.json"
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        part.write_text(text)
        os.replace(part, path)
    return str(path)


def space_is_enumerated(space):
    """Whether stage 1 encodes every cell of `space` (NB201) rather than a configured sample (DARTS)."""
    from e2nas import spaces

    return spaces.get(space).enumerable


def space_options(space):
    """The options the config sets for `space` (DARTS: graphs.distinct_inputs; NB201 has none)."""
    from e2nas import spaces

    return spaces.get(space).options_of(config)


def code(notebook_name, space, method=None):
    """The src/ files a stage of `space` (and search `method`) runs: its notebook's imports, closed over
    the library's own imports, plus the space's package and the method's module (e2nas.code_inputs).
    Inputs, so that editing one reruns exactly the stages that run it."""
    return [here(path) for path in stage_code(ROOT / "notebooks" / f"{notebook_name}.ipynb", space, method)]


def path(kind, **wildcards):
    """A results file of this run (e2nas.layout); wildcards given as "{name}" make a rule's pattern."""
    return layout.path(kind, run=RUN, **wildcards)


# Each rule's outputs and log as patterns over its wildcards, from the layout.
PATTERN = {name: f"{{{name}}}" for name in ("dataset", "space", "method", "seed", "cell")}


def outputs(rule_name):
    return layout.stage_outputs(rule_name, run=RUN, **PATTERN)


def log_notebook(rule_name):
    return layout.notebook_log(rule_name, run=RUN, **PATTERN)


def checkpoint_path(rule_name, wc):
    """Where a long stage keeps its resumable state: outside its outputs, so a kill keeps it."""
    return layout.checkpoint(rule_name, run=RUN, **dict(wc.items()))


# What each stage asks of a machine: memory (MB) and runtime (minutes, growing with each retry), for
# Slurm; a cluster profile's set-resources overrides them (threads: --set-threads; Slurm's
# cpus_per_task follows the threads).
STAGE_RESOURCES = {
    "build_graphs": (2000, 15), "pretrain_vgae": (4000, 60), "warmup_supernet": (4000, 120),
    "search_architecture": (4000, 240), "search_standalone": (4000, 240), "retrain_cell": (4000, 240), "judge_cell": (4000, 60), "rank_supernet": (4000, 60), "report": (4000, 60),
}


def resources(rule_name):
    mem_mb, minutes = STAGE_RESOURCES[rule_name]
    return {"mem_mb": mem_mb, "runtime": lambda wc, attempt: minutes * attempt}


def settings(parameters):
    """A stage's parameters (config sections, wildcards) as a params entry of their own.

    Snakemake reruns a job whose params changed since its last run, but compares only entries
    that do not depend on input or output files; `parameters` lists the files, so it is not compared,
    and this entry is what reruns the stages that take a changed config section.
    """
    return yaml.safe_dump(parameters, sort_keys=True)


def stage_parameters(rule_name, wildcards, inputs, outputs, tags=None, **parameters):
    """The file of the one YAML document papermill injects into a stage notebook.

    Named by its content under .snakemake/ (written when Snakemake builds the job, dry runs
    included; the same parameters are the same file, so parallel jobs never race on one name).

    `inputs` / `outputs`: the rule's named files (code and the tables read from where the library finds
    them are left out); the MLflow tags naming this invocation are its wildcards (space, dataset,
    method, seed) and `tags`; `parameters`: config sections.
    """
    wc = dict(wildcards.items())
    notebook_log = layout.notebook_log(rule_name, run=RUN, **wc)
    tags = {**wc, **(tags or {})}
    doc = {
        **parameters,
        "run": RUN,
        # Only the stages that compute on it get the device (papermill warns of a name a notebook does not declare).
        **({} if rule_name in ("build_graphs", "report") else {"device": config.get("device", "auto")}),
        "inputs": {k: v if isinstance(v, str) else list(v) for k, v in inputs.items() if k not in ("notebook", "code", "tables")},
        "outputs": {k: str(v) for k, v in outputs.items()},
        "tracking": {
            "experiment": config["run"],
            "stage": rule_name,
            "tags": {"run": config["run"], "notes": config.get("notes", ""), **tags},
            "run_file": notebook_log + ".mlflow_run",
        },
    }
    text = yaml.safe_dump(doc, sort_keys=True)
    path = Path(layout.parameters_file(rule_name, hashlib.sha256(text.encode()).hexdigest()[:20]))
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}")
        part.write_text(text)
        os.replace(part, path)
    return str(path)




def section(name):
    return dict(config.get(name) or {})


def space_has_table(space):
    """Whether cells of `space` have table accuracies to rank supernets against (NB201; not DARTS)."""
    from e2nas import spaces

    return spaces.get(space).has_benchmark_table


def ground_truth_files(dataset):
    """The ground-truth table a stage on `dataset` reads (none where it has none): inputs, so that
    rebuilding it reruns what depends on it."""
    from e2nas.tables.fashion_mnist import DATASET, PROTOCOL_JSON, TABLE_CSV

    return [here(TABLE_CSV), here(PROTOCOL_JSON)] if dataset == DATASET else []


def ground_truth_protocol():
    """The ground-truth table's protocol (its JSON's `protocol`; None without the file, which the job then
    names): a parameter of the retrains under it, so that another protocol reruns them and rows added
    to the table do not."""
    from e2nas.tables.fashion_mnist import PROTOCOL_JSON

    return json.loads(PROTOCOL_JSON.read_text())["protocol"] if PROTOCOL_JSON.is_file() else None


def nb201_table_files(space):
    """The NB201 table a stage of `space` looks cells up in (the shipped one, $E2NAS_NB201_TABLE, or none):
    an input, so that pointing at another table reruns what shows its accuracies."""
    from e2nas.tables.nb201 import table_path

    path = table_path()
    return [here(path)] if path is not None and space_has_table(space) else []


def get_rank_inputs(wc):
    return {
        "notebook": notebook_code("06_rank_supernet"),
        "code": code("06_rank_supernet", wc.space),
        "warmup": path("warmup", **dict(wc.items())),
        "supernets": [path("searched_supernet", **{**dict(wc.items()), "method": m}) for m in supernet_methods()],
        "results": [path("search_result", **{**dict(wc.items()), "method": m}) for m in supernet_methods()],
        "ground_truth": ground_truth_files(wc.dataset),
        "tables": nb201_table_files(wc.space),
    }


@functools.cache
def reference_cells():
    """{method: canonical cell text} of the config's `references` for its space (registry names or literal
    cells), retrained beside the found cells as methods `ref-{name}`; a bad entry stops the run here."""
    from e2nas import spaces

    space = spaces.get(config["space"])
    try:
        resolved = [space.resolve_reference(entry) for entry in (config.get("references") or {}).get(config["space"]) or []]
    except ValueError as error:
        sys.exit(f"invalid configuration:\n  - {error}")
    return {f"{REFERENCE_PREFIX}{slug}": text for slug, text in resolved}


def referenced():
    """(dataset, method, seed) of the reference retrains: each reference cell once per dataset, with the
    config's first seed (a fixed cell: more seeds would only measure training noise, which the found
    cells' seeds show already), so that references cost little beside the search."""
    return [(d, m, config["seeds"][0]) for d in config["datasets"] for m in reference_cells()]


def configured(methods):
    """Every (dataset, method, seed) of the config, in a stable order."""
    return [(d, m, s) for d in config["datasets"] for m in methods for s in config["seeds"]]


def get_search_inputs(wc):
    """E2NAS variants read the VGAE; baselines do not, so editing stage 2 reruns none of them."""
    inputs = {
        "notebook": notebook_code("04_search"),
        "warmup": path("warmup", **dict(wc.items())),
        "code": code("04_search", wc.space, wc.method),
        "tables": nb201_table_files(wc.space),
    }
    if wc.method in E2NAS_METHODS:
        inputs["vgae"] = path("vgae_model", space=wc.space)
        inputs["graphs"] = path("graphs", space=wc.space)
    return inputs


def supernet_methods():
    """The configured methods that search on the supernet (stage 6 ranks their searched supernets)."""
    return [m for m in config["methods"] if m in SUPERNET_METHODS]


def judge_seeds():
    """retrain.judge_seeds: each found cell trained once per seed under the table's protocol ([]: one retrain)."""
    return list(section("retrain").get("judge_seeds") or [])


def found_cell(dataset, space, method, seed):
    """The canonical text of the cell a (dataset, method, seed) retrains: a reference's, the seeded random cell,
    or what its search found (read from its result once the search checkpoint has run)."""
    from e2nas.retrain import found_arch

    if is_reference(method):
        return reference_cells()[method]
    if method == RANDOM_METHOD:
        return found_arch(None, int(seed), space)
    search = checkpoints.search_standalone if method in STANDALONE_METHODS else checkpoints.search_architecture
    result = search.get(dataset=dataset, space=space, method=method, seed=seed).output.result
    return found_arch(result, int(seed), space)


def judged_files(wc):
    """The trainings that judge this job's cell (one per judge seed), keyed by the cell: a cell several
    methods found is trained once per seed."""
    key = layout.cell_key(found_cell(wc.dataset, wc.space, wc.method, wc.seed))
    return [path("judge_metrics", dataset=wc.dataset, space=wc.space, cell=key, seed=s) for s in judge_seeds()]


def judged_cell_text(wc):
    """The cell text of a judge job's key: among every cell the config retrains whose search has finished."""
    from e2nas.retrain import found_arch

    for dataset, method, seed in configured(config["methods"]) + configured([RANDOM_METHOD]) + referenced():
        if dataset != wc.dataset:
            continue
        if method in config["methods"]:
            result = path("search_result", dataset=dataset, space=wc.space, method=method, seed=seed)
            if not os.path.exists(result):
                continue
            text = found_arch(result, int(seed), wc.space)
        else:
            text = found_cell(dataset, wc.space, method, seed)
        if layout.cell_key(text) == wc.cell:
            return text
    raise ValueError(f"no found, random or reference cell has key {wc.cell}")


def get_retrain_inputs(wc):
    inputs = {
        "notebook": notebook_code("05_retrain"),
        "code": code("05_retrain", wc.space),
    }
    if wc.method != RANDOM_METHOD and not is_reference(wc.method):
        inputs["result"] = path("search_result", **dict(wc.items()))
    if judge_seeds():
        inputs["judged"] = judged_files(wc)
    return inputs


def get_report_inputs(wc):
    space = config["space"]
    searched = configured(config["methods"])
    ranked = space_has_table(space)
    return {
        "notebook": notebook_code("07_report"),
        "code": code("07_report", space),
        "results": [path("search_result", dataset=d, space=space, method=m, seed=s) for d, m, s in searched],
        "retrained": [path("retrain_metrics", dataset=d, space=space, method=m, seed=s)
                      for d, m, s in searched + configured([RANDOM_METHOD]) + referenced()],
        "rankings": [path("ranking", dataset=d, space=space, seed=s) for d in config["datasets"] for s in config["seeds"]]
                    if ranked else [],
        "ground_truth": [f for d in config["datasets"] for f in ground_truth_files(d)],
        "tables": nb201_table_files(space),
    }


def get_final_outputs():
    return [path("report_summary")]


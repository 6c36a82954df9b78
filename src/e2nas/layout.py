"""Where every file of a run lives under `results/{run}/`: the one place that spells the layout.

The workflow (`workflow/rules/common.smk`), the report, the notebooks' defaults and the benchmark
scripts all ask this module for paths, and the report and the study read the wildcards back out
of a path through `parse` (its inverse), so a change of the layout is one edit here.

A path is named by its `kind` and the wildcards it varies by (run, dataset, space, method,
seed, ...); every wildcard that varies is in the path, so runs never overwrite each other.
Snakemake patterns are the same call with the wildcards given as `"{dataset}"` and so on.

Torch-free and import-light: the Snakefile loads it before any job runs.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

RESULTS = "results"
PARAMETERS_DIR = ".snakemake/e2nas-parameters"  # a stage's parameters file, named by its content

# Every file a stage writes or keeps, by kind: a template over the wildcards in braces.
TEMPLATES = {
    "graphs": "{run}/graphs/{space}.pt",
    "graphs_summary": "{run}/graphs/{space}.json",
    "vgae_model": "{run}/vgae/{space}/model.pt",
    "vgae_metrics": "{run}/vgae/{space}/metrics.json",
    "warmup": "{run}/supernet/{dataset}/{space}/seed{seed}/warmup.pt",
    "search_result": "{run}/search/{dataset}/{space}/{method}/seed{seed}/result.json",
    "searched_supernet": "{run}/search/{dataset}/{space}/{method}/seed{seed}/supernet.pt",
    "retrain_metrics": "{run}/retrain/{dataset}/{space}/{method}/seed{seed}/metrics.json",
    "judge_metrics": "{run}/judge/{dataset}/{space}/{cell}/seed{seed}/metrics.json",
    "ranking": "{run}/ranking/{dataset}/{space}/seed{seed}.json",
    "report_summary": "{run}/report/summary.csv",
    "report_html": "{run}/report/report.html",
    "report_notebook": "{run}/report/report.ipynb",
    "checkpoint": "{run}/checkpoints/{rule}/{job}.pt",
    "notebook_log": "{run}/notebooks/{rule}/{job}.ipynb",
}

# Each stage rule: the wildcards that name one of its jobs, and its outputs {name: kind}.
STAGES = {
    "build_graphs": ("{space}", {"graphs": "graphs", "summary": "graphs_summary"}),
    "pretrain_vgae": ("{space}", {"model": "vgae_model", "metrics": "vgae_metrics"}),
    "warmup_supernet": ("{dataset}/{space}/seed{seed}", {"warmup": "warmup"}),
    "search_architecture": ("{dataset}/{space}/{method}/seed{seed}", {"result": "search_result", "supernet": "searched_supernet"}),
    "search_standalone": ("{dataset}/{space}/{method}/seed{seed}", {"result": "search_result"}),
    "retrain_cell": ("{dataset}/{space}/{method}/seed{seed}", {"metrics": "retrain_metrics"}),
    "judge_cell": ("{dataset}/{space}/{cell}/seed{seed}", {"metrics": "judge_metrics"}),
    "rank_supernet": ("{dataset}/{space}/seed{seed}", {"ranking": "ranking"}),
    "report": ("", {"summary": "report_summary", "html": "report_html"}),
}
# The stages that train in epochs and keep a resumable checkpoint.
EPOCH_STAGES = ("warmup_supernet", "search_architecture", "search_standalone", "retrain_cell", "judge_cell")
# Wildcards whose values are whole numbers; the others are one path segment each.
INTEGER_WILDCARDS = ("seed",)
_FIELD = re.compile(r"\{(\w+)\}")


def path(kind: str, *, run: str, root: str = RESULTS, **wildcards) -> str:
    """The file of `kind` for these wildcards, as `root/...` (a Snakemake pattern when values are "{name}")."""
    if kind not in TEMPLATES:
        raise KeyError(f"unknown kind of results file {kind!r}; known: {', '.join(TEMPLATES)}")
    values = {"run": run, **wildcards}
    missing = sorted(set(_FIELD.findall(TEMPLATES[kind])) - set(values))
    if missing:
        raise KeyError(f"results file {kind!r} needs wildcard(s) {', '.join(missing)}")
    return f"{root}/{TEMPLATES[kind].format(**values)}"


def job_name(rule: str, **wildcards) -> str:
    """The part of a job's checkpoint and notebook-log paths that names it (e.g. `fashion-mnist/nb201/seed0`)."""
    return STAGES[rule][0].format(**wildcards)


def checkpoint(rule: str, *, run: str, root: str = RESULTS, **wildcards) -> str:
    """Where a long stage keeps its resumable state: outside its outputs, so a kill keeps it."""
    return path("checkpoint", run=run, root=root, rule=rule, job=job_name(rule, **wildcards))


def notebook_log(rule: str, *, run: str, root: str = RESULTS, **wildcards) -> str:
    """The executed notebook of a job (the rule's log: it survives a failure); the report's sits beside its outputs."""
    if rule == "report":
        return path("report_notebook", run=run, root=root)
    return path("notebook_log", run=run, root=root, rule=rule, job=job_name(rule, **wildcards))


def stage_outputs(rule: str, *, run: str, root: str = RESULTS, **wildcards) -> dict[str, str]:
    """The named outputs of one job of `rule` ({output name: path}), as the rule declares them."""
    return {name: path(kind, run=run, root=root, **wildcards) for name, kind in STAGES[rule][1].items()}


def stage_inputs(rule: str, *, run: str, root: str = RESULTS, methods=(), **wildcards) -> dict:
    """The files one job of `rule` reads from earlier stages, as the workflow passes them (run by hand,
    a stage notebook reads these); the report reads every search, retrain and ranking file of the run."""
    def at(kind, **extra):
        return path(kind, run=run, root=root, **{**wildcards, **extra})

    if rule == "pretrain_vgae":
        return {"graphs": at("graphs")}
    if rule == "search_architecture":
        return {"warmup": at("warmup"), "vgae": at("vgae_model"), "graphs": at("graphs")}
    if rule == "retrain_cell":
        return {"result": at("search_result")}
    if rule == "rank_supernet":
        return {"warmup": at("warmup"), "supernets": [at("searched_supernet", method=m) for m in methods],
                "results": [at("search_result", method=m) for m in methods]}
    if rule == "report":
        folder = Path(root) / run
        return {"results": run_files(folder, "search_result"), "retrained": run_files(folder, "retrain_metrics"),
                "rankings": run_files(folder, "ranking")}
    return {}


def stage_files(rule: str, run: str, inputs=None, outputs=None, checkpoint_file=None, *, methods=(), **wildcards):
    """(inputs, outputs, checkpoint) of a stage notebook: the ones the workflow passed, else the layout's
    for run `run` and these wildcards (a notebook run by hand)."""
    return (inputs if inputs is not None else stage_inputs(rule, run=run, methods=methods, **wildcards),
            outputs if outputs is not None else stage_outputs(rule, run=run, **wildcards),
            checkpoint_file if checkpoint_file is not None or rule not in EPOCH_STAGES else checkpoint(rule, run=run, **wildcards))


def cell_key(text: str) -> str:
    """A cell's canonical text as one path segment: `cell-` and the first 10 hex digits of its sha1."""
    import hashlib

    return f"cell-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def parameters_file(rule: str, digest: str) -> str:
    return f"{PARAMETERS_DIR}/{rule}-{digest}.yaml"


def _regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{\w+\})", template)
    out = []
    for part in parts:
        name = part[1:-1] if _FIELD.fullmatch(part) else None
        if name is None:
            out.append(re.escape(part))
        elif name in INTEGER_WILDCARDS:
            out.append(rf"(?P<{name}>\d+)")
        elif name == "job":
            out.append(rf"(?P<{name}>.+)")
        else:
            out.append(rf"(?P<{name}>[^/]+)")
    return re.compile("".join(out))


_PATTERNS = {kind: _regex(template) for kind, template in TEMPLATES.items()}


def parse(file: str | Path) -> dict:
    """The inverse of `path`: {"kind", "run", and the wildcards} of a results file (seed as an int).

    `file` may lie under any root (`results/`, a test's folder, an absolute path): the layout is
    matched on its last segments. A path of no known kind raises ValueError naming it.
    """
    parts = PurePosixPath(Path(file).as_posix()).parts
    for kind, pattern in _PATTERNS.items():
        for start in range(len(parts)):
            match = pattern.fullmatch("/".join(parts[start:]))
            if match:
                found = {"kind": kind, **match.groupdict()}
                rule = found.get("rule")
                if rule in STAGES:  # a checkpoint or notebook log: the job's own wildcards too
                    job = _regex(STAGES[rule][0]).fullmatch(found["job"])
                    found.update(job.groupdict() if job else {})
                for name in INTEGER_WILDCARDS:
                    if name in found:
                        found[name] = int(found[name])
                return found
    raise ValueError(f"{file} is not a file of the results layout ({', '.join(TEMPLATES.values())} under results/)")


def run_files(run_dir: str | Path, kind: str) -> list[str]:
    """Every file of `kind` under one run's folder `results/{run}`, sorted."""
    run_dir = Path(run_dir)
    # a job name spans folders (`fashion-mnist/nb201/e2nas/seed0`): `**/*` there, `*` for one-segment wildcards
    pattern = _FIELD.sub("*", TEMPLATES[kind].split("/", 1)[1].replace("{job}", "**/*"))
    return sorted(str(p) for p in run_dir.glob(pattern) if parse(p)["kind"] == kind)

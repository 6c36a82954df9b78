# Paths, parameters and input helpers shared by the stage rules.
import os
import shlex
import sys
import uuid
from pathlib import Path

import yaml

ROOT = Path(workflow.basedir)
RESULTS = f"results/{config['run']}"
FINISH_SCRIPT = shlex.quote(str(ROOT / "workflow" / "scripts" / "finish_stage_run.py"))
CONDA_ENV = str(ROOT / "envs" / "e2nas.yaml")

# Jobs call `python` from PATH: Snakemake's own interpreter (e.g. .venv/bin) comes first,
# unless --use-conda activates the rule's env in front of it.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

# One id per `snakemake` call, inherited by every job: MLflow groups a pipeline's runs by it.
os.environ.setdefault("E2NAS_INVOCATION", uuid.uuid4().hex[:12])

# Every stage rule runs its notebook the same way. Parameters travel as one shell-quoted
# YAML document; the step after papermill logs the executed notebook (also on failure) and
# ends the stage's MLflow run; the job then exits with papermill's status.
NOTEBOOK_SHELL = (
    "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} "
    f"PYTHONPATH={shlex.quote(str(ROOT / 'src'))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; rc=0; "
    "python -m papermill {input.notebook:q} {log.notebook:q} --kernel python3 "
    "--parameters_yaml {params.yaml:q} --log-output --no-progress-bar || rc=$?; "
    f"python {FINISH_SCRIPT} {{log.notebook:q}} {{params.yaml:q}} $rc; exit $rc"
)


def init_tracking_store():
    """Create the MLflow store once, before parallel jobs would race to create it."""
    sys.path.insert(0, str(ROOT / "src"))
    from e2nas.tracking import init_store

    init_store()


def notebook(name):
    return str(ROOT / "notebooks" / f"{name}.ipynb")


def sources(*modules):
    """The src/ modules a stage imports: inputs, so that editing one reruns the stage."""
    return [str(ROOT / "src" / "e2nas" / m) for m in modules]


def log_notebook(rule_name, pattern):
    return f"{RESULTS}/notebooks/{rule_name}/{pattern}.ipynb"


def stage_yaml(rule_name, log_pattern, wildcards, outputs, tags, **parameters):
    """The one YAML document papermill injects into a stage notebook."""
    wc = dict(wildcards.items())
    notebook_log = log_notebook(rule_name, log_pattern).format(**wc)
    doc = {
        **parameters,
        "outputs": {k: str(v) for k, v in outputs.items()},
        "tracking": {
            "experiment": config["run"],
            "stage": rule_name,
            "tags": {"run": config["run"], "notes": config.get("notes", ""), **tags},
            "run_file": notebook_log + ".mlflow_run",
        },
    }
    return yaml.safe_dump(doc, sort_keys=True)


def section(name):
    return dict(config.get(name) or {})


def get_final_outputs():
    return [f"{RESULTS}/graphs/{config['space']}.pt"]

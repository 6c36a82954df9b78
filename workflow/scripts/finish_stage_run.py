"""After papermill: log the executed notebook to the stage's MLflow run, end the run, and only then
drop the stage's finished checkpoint.

A training stage keeps its checkpoint until its notebook has run through (keep_checkpoint=True),
so that a failure after training (logging, plots) makes the rerun resume at the end, not at epoch 0.

Usage: finish_stage_run.py NOTEBOOK PARAMETERS_FILE EXIT_CODE
"""

import sys
from pathlib import Path

import yaml

from e2nas.tracking import finish_stage_run, notebook_html

notebook, parameters_file, exit_code = sys.argv[1], sys.argv[2], int(sys.argv[3])
params = yaml.safe_load(Path(parameters_file).read_text())
if exit_code == 0 and params.get("outputs", {}).get("html"):  # the report as a page to read: no code cells
    notebook_html(notebook, params["outputs"]["html"], code=False)  # if it cannot, Snakemake misses the output
tracking = params["tracking"]
finish_stage_run(
    notebook,
    tracking["run_file"],
    succeeded=exit_code == 0,
    experiment=tracking["experiment"],
    stage=tracking["stage"],
    tags=tracking["tags"],
)
# Last, once nothing else can fail: until here a rerun resumes from the finished checkpoint.
if exit_code == 0 and params.get("checkpoint"):
    Path(params["checkpoint"]).unlink(missing_ok=True)

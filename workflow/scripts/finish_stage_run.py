"""After papermill: log the executed notebook to the stage's MLflow run and end the run.

Usage: finish_stage_run.py NOTEBOOK PARAMS_YAML EXIT_CODE
"""

import sys

import yaml

from e2nas.tracking import finish_stage_run

notebook, params_yaml, exit_code = sys.argv[1], sys.argv[2], int(sys.argv[3])
tracking = yaml.safe_load(params_yaml)["tracking"]
finish_stage_run(
    notebook,
    tracking["run_file"],
    succeeded=exit_code == 0,
    experiment=tracking["experiment"],
    stage=tracking["stage"],
    tags=tracking["tags"],
)

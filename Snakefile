# E2NAS pipeline: graph dataset → VGAE → supernet warm-up → search → retrain → report.
# Run `snakemake --cores 8`; see README.md for profiles, single-stage reruns and MLflow.
import os
import sys

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: workflow.source_path("config/config.yaml")


sys.path.insert(0, f"{workflow.basedir}/src")
from e2nas import run_control  # noqa: E402 (torch-free)
from e2nas.config_check import ConfigError, check, write_composed_schema  # noqa: E402 (torch-free)

# First the short message naming the key, the value and the fix (no traceback: the config is
# what is wrong, not the code); then Snakemake's own validation. Both on the schema with every
# space's keys (each space package describes its own, e2nas.config_check.composed_schema).
SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
try:
    check(config, SCHEMA, workflow.configfiles)
    validate(config, write_composed_schema(SCHEMA, ".snakemake/e2nas-config.schema.yaml"))
except ConfigError as error:
    sys.exit(str(error))


include: "workflow/rules/common.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/vgae.smk"
include: "workflow/rules/supernet.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/rank.smk"
include: "workflow/rules/report.smk"


def run_started():
    """One pipeline per run: a lock of our own under results/{run} that `--unlock` does not clear (it ends
    with this process); then the temporary files of killed writers go, and SIGTERM/SIGINT are recorded
    (e2nas.run_control)."""
    try:
        run_control.start_run("results", config["run"])
    except run_control.RunLocked as error:
        sys.exit(str(error))
    run_control.StopSignals.install()


def run_ended(failed):
    """A failed run ends with what it means: stopped on request, or damaged result files and the command
    that reruns their stages."""
    run_control.end_run()
    notes = [run_control.StopSignals.note(), run_control.damaged_note(f"results/{config['run']}")] if failed else []
    for note in filter(None, notes):
        print(note, file=sys.stderr)
    if failed and run_control.StopSignals.received:  # not "At least one job did not complete successfully"
        raise SystemExit(128 + run_control.StopSignals.received)
    page = f"results/{config['run']}/report/report.html"
    if not failed and os.path.exists(page):  # the last line of a run: where to look
        print(f"The report: {os.path.abspath(page)}", file=sys.stderr)


onstart:
    run_started()
    init_tracking_store()


onsuccess:
    run_ended(False)


onerror:
    run_ended(True)


rule all:
    input:
        get_final_outputs(),
    default_target: True

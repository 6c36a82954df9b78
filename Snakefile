# E2NAS pipeline: graph dataset → VGAE → supernet warm-up → search → retrain → report.
# Run `snakemake --cores 8`; see README.md for profiles, single-stage reruns and MLflow.
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: workflow.source_path("config/config.yaml")


validate(config, workflow.source_path("workflow/schemas/config.schema.yaml"))


include: "workflow/rules/common.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/vgae.smk"
include: "workflow/rules/supernet.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/rank.smk"
include: "workflow/rules/report.smk"


onstart:
    init_tracking_store()


rule all:
    input:
        get_final_outputs(),
    default_target: True

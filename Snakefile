# E2NAS pipeline: graph dataset → VGAE → supernet warm-up → search → retrain → report.
# Run `snakemake --cores 8`; see README.md for profiles, single-stage reruns and MLflow.
import sys

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: workflow.source_path("config/config.yaml")


sys.path.insert(0, f"{workflow.basedir}/src")
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


onstart:
    init_tracking_store()


rule all:
    input:
        get_final_outputs(),
    default_target: True

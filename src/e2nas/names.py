"""The method names every layer shares (library, workflow, schema, report).

Kept free of torch so the Snakefile can read them without importing the library's numerics.
(The spaces' names are their packages' names: `e2nas.spaces.NAMES`.)
"""

E2NAS_METHODS = ("e2nas", "e2nas-paper", "e2nas-noexplore", "e2nas-nocomplement")
BASELINE_METHODS = ("darts", "gdas", "rsps")
SUPERNET_METHODS = E2NAS_METHODS + BASELINE_METHODS  # search on the warmed-up supernet (stage 6 ranks theirs)
# What a user would do instead, with no supernet, warm-up or VGAE: a few short stand-alone trainings, or the
# best of many cells by a zero-cost score.
RANDOM_SEARCH = "random-search"
ZERO_COST_METHODS = ("params", "synflow")
STANDALONE_METHODS = (RANDOM_SEARCH, *ZERO_COST_METHODS)
METHODS = SUPERNET_METHODS + STANDALONE_METHODS
# Not a search: a uniformly drawn cell of the space, retrained as the report's reference.
RANDOM_METHOD = "random"
# Not a search either: a published or given cell (config `references`), retrained beside the found
# ones under the same protocol; its rows' method is this prefix and the reference's slug.
REFERENCE_PREFIX = "ref-"


def is_reference(method: str) -> bool:
    return method.startswith(REFERENCE_PREFIX)
# The module of e2nas.search that implements each method (its METHOD_CLASSES maps the name to a
# class). The search loop imports it by name, so a job's code is its own method's and no other.
METHOD_MODULES = {
    "e2nas": "e2nas",
    "e2nas-paper": "e2nas",
    "e2nas-noexplore": "e2nas",
    "e2nas-nocomplement": "e2nas",
    "darts": "baselines",
    "gdas": "baselines",
    "rsps": "baselines",
    "random-search": "standalone",
    "params": "standalone",
    "synflow": "standalone",
}

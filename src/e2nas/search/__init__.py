"""Stage 4: architecture search on the warmed-up supernet — E2NAS, its ablations, GDAS, DARTS, RSPS.

`run_search(method, ...)` runs one method under one seed and writes its result.json; the
methods share one harness (e2nas.search.common) and differ only in how a step picks its path
and updates its architecture parameters.
"""

from e2nas.search.common import (
    BASELINE_METHODS,
    E2NAS_METHODS,
    METHODS,
    Harness,
    SearchConfig,
    SearchMethod,
    run_search,
)

__all__ = ["BASELINE_METHODS", "E2NAS_METHODS", "METHODS", "Harness", "SearchConfig", "SearchMethod", "run_search"]

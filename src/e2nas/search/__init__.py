"""Stage 4: architecture search on the warmed-up supernet — E2NAS, its ablations, GDAS, DARTS, RSPS — and
what a user would do instead, with no supernet: random search and the zero-cost picks (`standalone`).

`run_search(method, ...)` runs one method under one seed and writes its result.json. The
methods share one harness (`harness.Harness`: supernet, weight optimiser, seeded streams) and
implement one interface (`method.SearchMethod`); they differ only in how a step picks its path
and updates its architecture parameters. docs/extending.md shows how a new method plugs in.
"""

from e2nas.names import BASELINE_METHODS, E2NAS_METHODS, METHODS
from e2nas.search.config import SearchConfig
from e2nas.search.harness import Harness
from e2nas.search.loop import method_class, method_figures, run_search
from e2nas.search.method import SearchMethod

__all__ = [
    "BASELINE_METHODS", "E2NAS_METHODS", "METHODS", "Harness", "SearchConfig", "SearchMethod", "method_class", "method_figures",
    "run_search",
]

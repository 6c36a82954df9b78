"""What the search loop needs from a method; E2NAS (e2nas.py) and the baselines (baselines.py) implement it."""

from __future__ import annotations

from torch import Tensor

from e2nas.search.harness import Harness
from e2nas.spaces import Cell


class SearchMethod:
    """What the loop needs from a method. Subclasses live in e2nas.py and baselines.py; each module
    lists its methods in METHOD_CLASSES, and e2nas.names.METHOD_MODULES says which module holds which."""

    name: str = ""
    has_paths = True  # trains single paths (so forgetting is defined); False for DARTS

    def __init__(self, harness: Harness):
        self.harness = harness
        self.cfg = harness.cfg

    @classmethod
    def build(cls, method: str, harness: Harness, inputs: dict) -> SearchMethod:
        """The method `method` on `harness`; `inputs` holds the stage's input files by name (E2NAS: vgae, graphs)."""
        return cls(harness)

    @staticmethod
    def figures(result: dict, inputs: dict) -> dict:
        """Method-specific figures of a finished search {file name: Figure} (the stage notebook shows them)."""
        return {}

    def start_epoch(self, epoch: int, epochs: int) -> dict:
        """Set the epoch's schedules; returns the values to record (eta, tau)."""
        return {"eta": None, "tau": None}

    def step(self, xw: Tensor, yw: Tensor, xa: Tensor, ya: Tensor, cell: Cell | None = None, probe: bool = False) -> None:
        """One search step: weight half on (xw, yw), architecture half on (xa, ya).

        `cell` forces the step's cell (the step benchmark uses it to time every method on the
        same cells); `probe` records the forgetting measure in this step.
        """
        raise NotImplementedError

    def epoch_arch(self) -> tuple[Cell, float | None]:
        """The cell the method would return now and, when it was scored for choosing it, its accuracy."""
        raise NotImplementedError

    def epoch_extras(self) -> dict:
        """Method-specific fields of the epoch's record (e.g. μ, σ)."""
        return {}

    def result_extras(self) -> dict:
        """Method-specific fields of result.json (e.g. the start cell)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

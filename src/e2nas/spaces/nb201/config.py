"""NB201's keys in the shared config sections (`e2nas.sections`); `config.schema.yaml` beside this file
describes them for the config schema."""

from __future__ import annotations

from dataclasses import dataclass

from e2nas.sections import RetrainConfig, SupernetConfig


@dataclass
class Nb201SupernetConfig(SupernetConfig):
    """Config section `supernet` of the NB201 space."""

    cells_per_stage: int = 1  # N, search cells per stage (paper: 5)
    # Few-shot NAS: one sub-supernet per op of this edge (0-5, the benchmark's edge order); None: one-shot.
    split_edge: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.cells_per_stage < 1:
            raise ValueError(f"supernet: cells_per_stage must be >= 1, got {self.cells_per_stage}")
        if self.split_edge is not None and not 0 <= self.split_edge < 6:
            raise ValueError(f"supernet.split_edge must be an edge index 0-5 (or null), got {self.split_edge}")


@dataclass
class Nb201RetrainConfig(RetrainConfig):
    """Config section `retrain` of the NB201 space."""

    cells_per_stage: int = 1  # N, may differ from the supernet's (NB201: 5)

    def __post_init__(self):
        super().__post_init__()
        if self.cells_per_stage < 1:
            raise ValueError(f"retrain.cells_per_stage must be >= 1, got {self.cells_per_stage}; fix it in the config")


CONFIG_CLASSES = {"supernet": Nb201SupernetConfig, "retrain": Nb201RetrainConfig}

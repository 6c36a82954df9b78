"""The DARTS space's keys in the shared config sections (`e2nas.sections`); `config.schema.yaml` beside
this file describes them for the config schema."""

from __future__ import annotations

from dataclasses import dataclass

from e2nas.sections import GraphsConfig, RetrainConfig, SupernetConfig


@dataclass
class DartsGraphsConfig(GraphsConfig):
    """Config section `graphs` of the DARTS space: the genotypes stage 1 samples."""

    distinct_inputs: bool = True  # a node reads two distinct inputs (as DARTS samples); False: one input may repeat


@dataclass
class DartsSupernetConfig(SupernetConfig):
    """Config section `supernet` of the DARTS space."""

    layers: int = 8  # search cells, reductions at 1/3 and 2/3 (DARTS: 8)

    def __post_init__(self):
        super().__post_init__()
        if self.layers < 1:
            raise ValueError(f"supernet: layers must be >= 1, got {self.layers}")


@dataclass
class DartsRetrainConfig(RetrainConfig):
    """Config section `retrain` of the DARTS space: DARTS's evaluation network and its regularisers."""

    layers: int = 8  # cells of the evaluation network (DARTS: 20)
    auxiliary_weight: float = 0.0  # loss weight of the auxiliary head, 0 = no head; 32x32 images (DARTS: 0.4)
    drop_path_prob: float = 0.0  # drop-path probability, ramped linearly from 0 over the epochs (DARTS: 0.2)

    def __post_init__(self):
        super().__post_init__()
        if self.layers < 1:
            raise ValueError(f"retrain.layers must be >= 1, got {self.layers}; fix it in the config")
        if not self.auxiliary_weight >= 0:
            raise ValueError(f"retrain.auxiliary_weight must be >= 0 (0 = no auxiliary head), got {self.auxiliary_weight}")
        if not 0 <= self.drop_path_prob < 1:
            raise ValueError(f"retrain.drop_path_prob must be in [0, 1) (0 = off), got {self.drop_path_prob}")


CONFIG_CLASSES = {"graphs": DartsGraphsConfig, "supernet": DartsSupernetConfig, "retrain": DartsRetrainConfig}

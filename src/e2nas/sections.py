"""The config sections every space shares, as typed objects: `graphs`, `supernet`, `retrain`.

A space adds its own keys to a section by subclassing one of these in its package's `config.py`
(NB201: the skeleton's cells per stage; DARTS: its layers, auxiliary head, drop-path, a node's
distinct inputs) and describing them in the package's `config.schema.yaml`; `Space.config(section,
values)` builds the space's class from a section of the YAML, whose keys users write stay flat
(`supernet: {channels: 8, cells_per_stage: 1}`).

Torch-free: the space packages' cores import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LR_SCHEDULES = ("epoch", "step")
GROUND_TRUTH = "ground-truth"


@dataclass
class GraphsConfig:
    """Config section `graphs`: the cells stage 1 samples from a space it does not enumerate (DARTS);
    an enumerable space (NB201) encodes every cell and ignores it."""

    num_archs: int = 20000  # cells drawn uniformly (benchmarks/vgae.py: 20,000 DARTS cells reach exact held-out reconstruction)
    seed: int = 0  # seeds the draw: the same seed gives the same graph set

    def __post_init__(self):
        if self.num_archs < 1:
            raise ValueError(f"graphs.num_archs must be >= 1, got {self.num_archs}")
        if self.seed < 0:
            raise ValueError(f"graphs.seed must be >= 0, got {self.seed}")


@dataclass
class SupernetConfig:
    """Config section `supernet`: the size of the weight-sharing network (its depth is the space's key)."""

    channels: int = 8  # C, channels of the first stage (paper: 16, both spaces)

    def __post_init__(self):
        if self.channels < 1:
            raise ValueError(f"supernet: channels must be >= 1, got {self}")


@dataclass
class RetrainConfig:
    """Config section `retrain`. Defaults: a quick CPU profile; NAS-Bench-201's own training and,
    for the DARTS space, DARTS's CIFAR-10 evaluation (Liu et al. 2019) in comments."""

    epochs: int = 3  # (NB201: 200; DARTS: 600)
    batch_size: int = 64  # (NB201: 256; DARTS: 96)
    lr: float = 0.1  # initial learning rate (NB201: 0.1; DARTS: 0.025) ...
    lr_min: float = 0.0  # ... cosine-annealed per epoch to this (NB201: 0; DARTS: 0)
    momentum: float = 0.9  # (NB201: 0.9; DARTS: 0.9)
    nesterov: bool = True  # (NB201: Nesterov; DARTS: false)
    weight_decay: float = 5e-4  # (NB201: 5e-4; DARTS: 3e-4)
    grad_clip: float | None = 5.0  # max global gradient norm; null for none (NB201: none; DARTS: 5)
    channels: int = 8  # C of the network, may differ from the supernet's (NB201: 16; DARTS: 36)
    cutout: int = 0  # side in pixels of the Cutout square, 0 = off; any space (DARTS: 16)
    train_subset: int | None = None  # train on the first n images of the split's two halves; null = all
    test_subset: int | None = None  # score a seeded subset of n test images; null = the whole test set
    eval_batch_size: int = 256  # batch of the test evaluation (no effect on the result)
    # "epoch": cosine stepped once per epoch (as NB201 and DARTS train); "step": cosine stepped
    # every batch down to lr_min, after a linear warm-up of warmup_epochs (short trainings).
    lr_schedule: str = "epoch"
    warmup_epochs: float = 0.0  # linear learning-rate warm-up, with lr_schedule "step" only
    augment: bool = True  # random crop + horizontal flip of the training batches
    # "ground-truth": every setting (and the data split) comes from the ground-truth table's
    # protocol (e2nas.tables.fashion_mnist), so a found cell's test accuracy has a percentile there.
    protocol: str | None = None
    # With the protocol: each found cell trained once per seed here (a cell found twice trains once per seed);
    # its percentile is the mean of the trainings' percentiles. Empty: one retraining with the run's seed.
    judge_seeds: list[int] = field(default_factory=list)

    def __post_init__(self):
        if self.judge_seeds and self.protocol is None:
            raise ValueError("retrain.judge_seeds needs retrain.protocol ground-truth: the trainings that judge a cell "
                             "are trainings of the ground-truth table's protocol")
        for name in ("epochs", "batch_size", "channels", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"retrain.{name} must be >= 1, got {getattr(self, name)}; fix it in the config")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"retrain: need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.cutout < 0:
            raise ValueError(f"retrain.cutout must be >= 0 pixels (0 = off), got {self.cutout}")
        if self.protocol not in (None, GROUND_TRUTH):
            raise ValueError(f"retrain.protocol must be {GROUND_TRUTH!r} or null, got {self.protocol!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"retrain.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.warmup_epochs < 0 or (self.warmup_epochs > 0 and self.lr_schedule != "step"):
            raise ValueError(f"retrain.warmup_epochs must be >= 0 and needs lr_schedule 'step', got {self.warmup_epochs}")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"retrain: {name} must be >= 1 or null, got {getattr(self, name)}")


SECTIONS = {"graphs": GraphsConfig, "supernet": SupernetConfig, "retrain": RetrainConfig}

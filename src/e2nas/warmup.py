"""Stage 3: warm up the supernet's shared weights on uniformly sampled single paths.

Each step samples one cell of the space uniformly (NB201: 6 ops, one per edge; DARTS: a
32-choice path of both cell types) and trains that path on a batch of
the split's WEIGHTS half with SGD (Nesterov, cosine schedule, gradient clipping; the paper's
values are the defaults). Only the ops on the path get a gradient and an update.

The run checkpoints after every epoch outside its output (model, optimiser, schedule, every
RNG, history) and resumes from there when rerun after a kill; on success it writes the output
and deletes the checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, EpochStage, safe_load
from e2nas.runtime import memory_format
from e2nas.sections import SupernetConfig
from e2nas.spaces import Space
from e2nas.training import (
    evaluate,
    fit_epochs,
    make_sgd,
    seeded_init,
    split_digest,
    stage_generators,
)

log = logging.getLogger(__name__)

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.build_supernet: the weight-sharing network.
SPACE_PARTS = ('supernet',)


@dataclass
class WarmupConfig:
    """Config section `warmup`: SGD on sampled single paths. Defaults: the paper's optimiser, few epochs."""

    epochs: int = 3  # passes over the weights half (quick profile; set it in the config)
    batch_size: int = 64  # images per step (paper: 64)
    lr: float = 0.025  # initial learning rate (paper: 0.025) ...
    lr_min: float = 0.001  # ... cosine-annealed per epoch to this (paper: 0.001)
    momentum: float = 0.9  # (paper: 0.9)
    nesterov: bool = True  # (paper: Nesterov)
    weight_decay: float = 5e-4  # (paper: 5e-4)
    grad_clip: float = 5.0  # max global gradient norm (paper: 5)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"warmup: epochs and batch_size must be >= 1, got {self}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"warmup: need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")


GENERATORS = ("init", "data", "path")


def build_supernet(net_cfg: SupernetConfig, num_classes: int, in_channels: int, seed: int, space: Space | str) -> nn.Module:
    """The supernet of `space` with the initial weights of `seed` (the same ones run_warmup starts from), on the CPU."""
    sp = spaces.resolve(space)  # an unknown space fails here, naming the config key
    gens = stage_generators(seed, GENERATORS)
    return seeded_init(lambda: sp.build_supernet(net_cfg, num_classes, in_channels), gens["init"])


def sample_path(generator: torch.Generator, space: Space | str) -> tuple[int, ...]:
    """A cell of `space` drawn uniformly, as python ints (drawn on the CPU: no device sync)."""
    return spaces.resolve(space).sample(1, generator)[0]


def evaluate_path(net: nn.Module, x: Tensor, y: Tensor, arch: Sequence[int], batch_size: int = 256) -> float:
    """Supernet accuracy (%) of the single path `arch` on (x, y)."""
    arch = tuple(int(a) for a in arch)
    return evaluate(net, x, y, batch_size, forward=lambda xb: net(xb, arch))


def _weights_half(data, split: dict) -> tuple[Tensor, Tensor]:
    idx = torch.as_tensor(split["weights"]).long()
    return data.train_x[idx], data.train_y[idx]


def run_warmup(
    data,
    split: dict,
    net_cfg: SupernetConfig,
    cfg: WarmupConfig,
    seed: int,
    out_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    *,
    space: Space | str,
    keep_checkpoint: bool = False,
) -> dict[str, list]:
    """Warm up a supernet of `space` (`net_cfg`: its `supernet` section, `space.config("supernet", ...)`) on
    `data`'s weights half; write `out_path` (warmup.pt) and return the history.

    history: per-epoch columns {"epoch", "loss", "accuracy" (%, of the sampled paths on their
    training batches), "lr", "seconds"}. on_epoch(record) runs after each epoch's checkpoint.
    A rerun after a kill resumes after the last finished epoch; a non-finite loss raises
    DivergedError naming the epoch and keeps the last good checkpoint. keep_checkpoint: see EpochStage.
    """
    from e2nas.data import BatchIterator

    space = spaces.resolve(space)
    device = torch.device(device)
    gens = stage_generators(seed, GENERATORS)
    layout = memory_format(device)  # channels_last on a CPU: faster convolutions (runtime.memory_format)
    net = build_supernet(net_cfg, data.num_classes, data.in_channels, seed, space).to(device, memory_format=layout)
    opt, sched = make_sgd(net.parameters(), cfg.epochs, cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    x, y = _weights_half(data, split)
    batches = BatchIterator(x, y, cfg.batch_size, device, gens["data"], data.augment, data.pad, memory_format=layout)

    identity = {"stage": "warmup", "space": space.name, "dataset": data.name, "seed": seed, "split": split_digest(split),
                "supernet": asdict(net_cfg), "warmup": asdict(cfg)}
    stage = EpochStage(checkpoint_path, identity, keep_checkpoint=keep_checkpoint, name="warm-up")
    history, elapsed = fit_epochs(
        net, batches, opt, sched, gens, stage, cfg.epochs, cfg.grad_clip,
        forward=lambda xb: net(xb, sample_path(gens["path"], space)), progress=progress, on_epoch=on_epoch,
    )
    stage.finish({out_path: {
        "model": net.state_dict(),
        "supernet": {**asdict(net_cfg), "num_classes": data.num_classes, "in_channels": data.in_channels},
        "space": space.name,
        "split": {"weights": torch.as_tensor(split["weights"]), "arch": torch.as_tensor(split["arch"])},
        "dataset": data.name,
        "seed": seed,
        "warmup": asdict(cfg),
        "history": history,
        "train_seconds": elapsed,
    }})
    return history


def load_warmup(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The warmed-up supernet (on `device` in its faster layout, train mode) and the file's other fields (space,
    split, dataset, seed, ...).

    A missing, corrupt or mismatched file raises CheckpointError naming it.
    """
    state = safe_load(path, "warm-up file")
    missing = {"model", "supernet", "split"} - set(state)
    if missing:
        raise CheckpointError(f"warm-up file {path} lacks {sorted(missing)}; delete it and rerun the warm-up stage")
    shape = state["supernet"]
    try:
        # Files written before the DARTS space carry no space: they are NB201's.
        space = spaces.get(state.setdefault("space", "nb201"))
        net_cfg = space.config("supernet", {k: v for k, v in shape.items() if k not in ("num_classes", "in_channels")})
        net = space.build_supernet(net_cfg, shape["num_classes"], shape["in_channels"])
        net.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"warm-up file {path} does not hold a supernet of the size it declares ({type(exc).__name__}: "
            f"{str(exc)[:300]}); delete it and rerun the warm-up stage"
        ) from None
    return net.to(device, memory_format=memory_format(device)), {k: v for k, v in state.items() if k != "model"}

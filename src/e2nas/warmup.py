"""Stage 3: warm up the supernet's shared weights on sampled single paths.

Each step samples one cell of the space uniformly (NB201: 6 ops, one per edge; DARTS: a
32-choice path of both cell types) and trains that path on a batch of
the split's WEIGHTS half with SGD (Nesterov, cosine schedule, gradient clipping; the paper's
values are the defaults). Only the ops on the path get a gradient and an update.
`warmup.sampling: fair` trains instead |ops| paths per step in which every edge takes every op
once (FairNAS's strict fairness: the gradients summed, one clip, one step). A few-shot supernet
(`supernet.split_edge`, NB201) trains the one-shot supernet first, then copies it into one
sub-supernet per op of the split edge and trains each on its own sub-space (`warmup.split_epochs`).
The file records the budget as `trained_paths` (one path through one batch = 1).

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
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, EpochStage, safe_load
from e2nas.runtime import memory_format
from e2nas.sections import SupernetConfig
from e2nas.spaces import Space
from e2nas.training import Phase, evaluate, fit_epochs, make_sgd, seeded_init, split_digest, stage_generators

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
    # "uniform": one uniformly drawn path per update; "fair" (FairNAS's strict fairness): |ops| paths per
    # update on the same batch, every edge taking every op once, their gradients summed, one clip, one step.
    sampling: str = "uniform"
    # A few-shot supernet (supernet.split_edge): after `epochs` of the one-shot supernet, this many
    # epochs of each sub-supernet on its own sub-space (fresh SGD, own cosine schedule).
    split_epochs: int = 1

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"warmup: epochs and batch_size must be >= 1, got {self}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"warmup: need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"warmup.sampling must be one of {', '.join(SAMPLING)}, got {self.sampling!r}")
        if self.split_epochs < 1:
            raise ValueError(f"warmup.split_epochs must be >= 1, got {self.split_epochs}")


SAMPLING = ("uniform", "fair")


GENERATORS = ("init", "data", "path")


def build_supernet(net_cfg: SupernetConfig, num_classes: int, in_channels: int, seed: int, space: Space | str) -> nn.Module:
    """The supernet of `space` with the initial weights of `seed` (the same ones run_warmup starts from), on the CPU."""
    sp = spaces.resolve(space)  # an unknown space fails here, naming the config key
    gens = stage_generators(seed, GENERATORS)
    return seeded_init(lambda: sp.build_supernet(net_cfg, num_classes, in_channels), gens["init"])


def sample_path(generator: torch.Generator, space: Space | str) -> tuple[int, ...]:
    """A cell of `space` drawn uniformly, as python ints (drawn on the CPU: no device sync)."""
    return spaces.resolve(space).sample(1, generator)[0]


def fair_paths(generator: torch.Generator, space: Space, fixed: dict[int, int] | None = None) -> list[tuple[int, ...]]:
    """FairNAS's strict fairness: |ops| paths in which every position takes every op exactly once (a random
    permutation per position, drawn on the CPU); positions in `fixed` ({position: op}) keep that op in all."""
    sizes = set(space.choice_sizes)
    if len(sizes) != 1:
        raise ValueError(f"warmup.sampling fair needs a space whose positions all choose among the same ops; the "
                         f"{space.name} space's do not: use warmup.sampling uniform")
    (n,) = sizes
    perms = [torch.randperm(n, generator=generator).tolist() for _ in space.choice_sizes]
    fixed = fixed or {}
    return [tuple(fixed.get(pos, perm[j]) for pos, perm in enumerate(perms)) for j in range(n)]


def warmup_phases(net: nn.Module, cfg: WarmupConfig, space: Space, generator: torch.Generator) -> list[Phase]:
    """The warm-up's phases: the supernet for `cfg.epochs`; for a few-shot supernet (it has `subnets` and
    `split_edge`) those epochs train the one-shot supernet (subnets[0]), which is then copied into every
    sub-supernet, each trained `cfg.split_epochs` on the cells with its op on the split edge."""
    paths = len(space.ops) if cfg.sampling == "fair" else 1

    def sgd(module, epochs):
        return lambda: make_sgd(module.parameters(), epochs, cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay)

    def trainer(module, fixed=None):
        if cfg.sampling == "fair":
            def fair(x, y):  # Σ of the |ops| paths' losses: their gradients summed, one step
                logits = [module(x, cell) for cell in fair_paths(generator, space, fixed)]
                return sum(F.cross_entropy(out, y) for out in logits), torch.cat(logits)
            return {"loss_fn": fair}

        def one_path(x):
            cell = sample_path(generator, space)
            for pos, op in (fixed or {}).items():
                cell = cell[:pos] + (op,) + cell[pos + 1 :]
            return module(x, cell)
        return {"forward": one_path}

    subnets = getattr(net, "subnets", None)
    if subnets is None:
        return [Phase("one-shot", cfg.epochs, sgd(net, cfg.epochs), paths=paths, **trainer(net))]
    edge = net.split_edge
    phases = [Phase("one-shot", cfg.epochs, sgd(subnets[0], cfg.epochs), paths=paths, **trainer(subnets[0]))]
    for op, sub in enumerate(subnets):
        phases.append(Phase(f"{space.ops[op]} on edge {edge}", cfg.split_epochs, sgd(sub, cfg.split_epochs), paths=paths,
                            start=net.spread_one_shot if op == 0 else None, **trainer(sub, {edge: op})))
    return phases


def trained_paths(phases: list[Phase], steps: int) -> int:
    """The warm-up's budget: single paths trained, one path through one batch counting 1."""
    return sum(p.epochs * steps * p.paths for p in phases)


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
    x, y = _weights_half(data, split)
    batches = BatchIterator(x, y, cfg.batch_size, device, gens["data"], data.augment, data.pad, memory_format=layout)
    phases = warmup_phases(net, cfg, space, gens["path"])

    identity = {"stage": "warmup", "space": space.name, "dataset": data.name, "seed": seed, "split": split_digest(split),
                "supernet": asdict(net_cfg), "warmup": asdict(cfg)}
    stage = EpochStage(checkpoint_path, identity, keep_checkpoint=keep_checkpoint, name="warm-up")
    history, elapsed = fit_epochs(net, batches, phases, gens, stage, cfg.grad_clip, progress=progress, on_epoch=on_epoch)
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
        "trained_paths": trained_paths(phases, len(batches)),
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

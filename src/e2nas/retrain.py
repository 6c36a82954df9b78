"""Stage 5: train the found cell from scratch as a discrete network and test it.

The cell becomes a FixedNet (NB201 skeleton, affine BatchNorm with running statistics, `none`
edges dropped), trained on the whole training part of the split (both halves) and scored once
on the test set at the end. Resumable like the warm-up: a checkpoint after every epoch outside
the output, resumed after a kill, deleted on success.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from e2nas.checkpoint import CheckpointError, EpochCheckpoint, atomic_save
from e2nas.spaces import nb201
from e2nas.spaces.nb201 import format_arch, parse_arch
from e2nas.supernet.nb201 import FixedNet, count_flops, count_params
from e2nas.training import evaluate, fit_epochs, make_sgd, seeded_init, split_digest, stage_generators, write_json

log = logging.getLogger(__name__)


@dataclass
class RetrainConfig:
    """Config section `retrain`. Defaults: a quick CPU profile; NAS-Bench-201's own training in comments."""

    epochs: int = 3  # (NB201: 200)
    batch_size: int = 64  # (NB201: 256)
    lr: float = 0.1  # initial learning rate (NB201: 0.1) ...
    lr_min: float = 0.0  # ... cosine-annealed per epoch to this (NB201: 0)
    momentum: float = 0.9  # (NB201: 0.9)
    nesterov: bool = True  # (NB201: Nesterov)
    weight_decay: float = 5e-4  # (NB201: 5e-4)
    grad_clip: float | None = 5.0  # max global gradient norm; null for none (NB201: none)
    channels: int = 8  # C of the network, may differ from the supernet's (NB201: 16)
    cells_per_stage: int = 1  # N, may differ from the supernet's (NB201: 5)
    train_subset: int | None = None  # train on the first n images of the split's two halves; null = all
    test_subset: int | None = None  # score a seeded subset of n test images; null = the whole test set
    eval_batch_size: int = 256  # batch of the test evaluation (no effect on the result)

    def __post_init__(self):
        if min(self.epochs, self.batch_size, self.channels, self.cells_per_stage, self.eval_batch_size) < 1:
            raise ValueError(f"retrain: epochs, batch_size, channels, cells_per_stage, eval_batch_size must be >= 1; {self}")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"retrain: need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"retrain: {name} must be >= 1 or null, got {getattr(self, name)}")


GENERATORS = ("init", "data")


def _train_images(data, split: dict, subset: int | None) -> tuple[Tensor, Tensor]:
    """Both halves of the split (each already a seeded random subset, so a prefix is one too)."""
    idx = torch.cat([torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()])
    idx = idx if subset is None else idx[:subset]
    return data.train_x[idx], data.train_y[idx]


def _test_images(data, subset: int | None) -> tuple[Tensor, Tensor]:
    from e2nas.data import subset_test

    return subset_test(data, subset)  # a fixed subset: every method and seed is tested on the same images


def build_fixed_net(cell: Sequence[int], cfg: RetrainConfig, num_classes: int, in_channels: int, seed: int) -> FixedNet:
    """The network with the initial weights of `seed` (the ones run_retrain starts from), on the CPU."""
    gens = stage_generators(seed, GENERATORS)
    return seeded_init(lambda: FixedNet(cell, cfg.channels, cfg.cells_per_stage, num_classes, in_channels), gens["init"])


def run_retrain(
    data,
    split: dict,
    arch: str | Sequence[int],
    cfg: RetrainConfig,
    seed: int,
    metrics_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    device: torch.device | str = "cpu",
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    model_path: str | os.PathLike | None = None,
) -> tuple[dict, dict[str, list]]:
    """Train `arch` (NB201 string or 6 op indices) from scratch; write metrics.json; return (metrics, history).

    metrics: {"arch", "test_accuracy" (%), "params", "flops" (batch-1 forward, FlopCounterMode:
    2 per multiply-accumulate), "train_seconds", "dataset", "seed", "epochs", "history"}.
    history: per-epoch columns {"epoch", "loss", "accuracy" (% on the training batches), "lr", "seconds"}.
    model_path, when given, receives the trained state_dict.
    """
    from e2nas.data import BatchIterator

    cell = parse_arch(arch) if isinstance(arch, str) else tuple(int(a) for a in arch)
    device = torch.device(device)
    gens = stage_generators(seed, GENERATORS)
    net = build_fixed_net(cell, cfg, data.num_classes, data.in_channels, seed).to(device)
    opt, sched = make_sgd(net.parameters(), cfg.epochs, cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    x, y = _train_images(data, split, cfg.train_subset)
    batches = BatchIterator(x, y, cfg.batch_size, device, gens["data"], data.augment, data.pad)

    ckpt = EpochCheckpoint(
        checkpoint_path,
        {"stage": "retrain", "arch": format_arch(cell), "dataset": data.name, "seed": seed,
         "split": split_digest(split), "retrain": asdict(cfg)},
    )
    history, elapsed = fit_epochs(
        net, batches, opt, sched, gens, ckpt, cfg.epochs, cfg.grad_clip,
        progress=progress, name="retrain", on_epoch=on_epoch,
    )

    test_x, test_y = _test_images(data, cfg.test_subset)
    metrics = {
        "arch": format_arch(cell),
        "test_accuracy": evaluate(net, test_x, test_y, cfg.eval_batch_size),
        "params": count_params(net),
        "flops": count_flops(net, (data.in_channels, data.image_size, data.image_size)),
        "train_seconds": elapsed,
        "dataset": data.name,
        "seed": seed,
        "epochs": cfg.epochs,
        "test_images": len(test_y),
        "history": history,
    }
    if model_path is not None:
        atomic_save({"model": net.state_dict(), "arch": format_arch(cell), "retrain": asdict(cfg)}, model_path)
    write_json(metrics, metrics_path)
    Path(checkpoint_path).unlink(missing_ok=True)
    return metrics, history


def found_arch(result_path: str | os.PathLike | None, seed: int) -> str:
    """The cell stage 4 found (its result.json), or, without one, a uniformly drawn cell (the
    report's random-cell reference), drawn with `seed`."""
    if result_path is None:
        cell = nb201.sample_archs(1, torch.Generator().manual_seed(seed))[0].tolist()
        return nb201.format_arch(cell)
    import json

    try:
        return json.loads(Path(result_path).read_text())["arch"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"search result {result_path} is unreadable ({exc}); rerun the search stage") from None

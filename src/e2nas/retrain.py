"""Stage 5: train the found cell from scratch as a discrete network and test it.

NB201: the cell becomes a FixedNet (NB201 skeleton, affine BatchNorm with running statistics,
`none` edges dropped). DARTS: the genotype becomes DARTS's evaluation network (NetworkCIFAR,
`layers` cells of C channels) with DARTS's regularisers as configured: the auxiliary head's
loss, drop-path ramped linearly over the epochs, Cutout. Either is trained on the whole
training part of the split (both halves) and scored once on the test set at the end.
Resumable like the warm-up: a checkpoint after every epoch outside the output, resumed after
a kill, deleted on success.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, EpochCheckpoint, atomic_save, write_json
from e2nas.layers import count_flops
from e2nas.runtime import memory_format
from e2nas.training import evaluate, fit_epochs, make_sgd, seeded_init, split_digest, stage_generators, step_schedule

log = logging.getLogger(__name__)

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.build_network: a cell's evaluation network.
SPACE_PARTS = ('network',)


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
    cells_per_stage: int = 1  # N, may differ from the supernet's (NB201: 5); NB201 only
    layers: int = 8  # cells of the DARTS evaluation network (DARTS: 20); DARTS only
    auxiliary_weight: float = 0.0  # loss weight of the auxiliary head, 0 = no head; 32x32 images (DARTS: 0.4); DARTS only
    drop_path_prob: float = 0.0  # drop-path probability, ramped linearly from 0 over the epochs (DARTS: 0.2); DARTS only
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

    def __post_init__(self):
        for name in ("epochs", "batch_size", "channels", "cells_per_stage", "layers", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"retrain.{name} must be >= 1, got {getattr(self, name)}; fix it in the config")
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"retrain: need 0 <= lr_min <= lr, got lr={self.lr}, lr_min={self.lr_min}")
        if not self.auxiliary_weight >= 0:
            raise ValueError(f"retrain.auxiliary_weight must be >= 0 (0 = no auxiliary head), got {self.auxiliary_weight}")
        if not 0 <= self.drop_path_prob < 1:
            raise ValueError(f"retrain.drop_path_prob must be in [0, 1) (0 = off), got {self.drop_path_prob}")
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


LR_SCHEDULES = ("epoch", "step")
GROUND_TRUTH = "ground-truth"


def stage_settings(retrain: dict, data: dict, dataset: str):
    """(RetrainConfig, DataConfig) a stage-5 job trains under: the config's sections, or with
    `retrain: {protocol: ground-truth}` the ground-truth table's protocol and split, so that a found
    cell's test accuracy is one more training of the table and has a percentile in it."""
    from e2nas.data import DataConfig

    if retrain.get("protocol") is None:
        return RetrainConfig(**retrain), DataConfig(**data)
    from e2nas.tables.fashion_mnist import PROTOCOL_JSON, GroundTruthTable

    others = sorted(set(retrain) - {"protocol"})
    if others:  # a profile given with --configfile inherits config/config.yaml's retrain keys
        log.info("retrain.protocol %s: the table's protocol (%s) sets every retrain setting; ignoring retrain.%s",
                 GROUND_TRUTH, PROTOCOL_JSON, ", retrain.".join(others))
    table = GroundTruthTable.load()
    if table.provenance["dataset"] != dataset:
        raise ValueError(f"the ground-truth table is of {table.provenance['dataset']!r}, but this run trains on {dataset!r}: "
                         f"remove retrain.protocol from the config")
    protocol = table.protocol
    return RetrainConfig(**protocol.retrain, protocol=GROUND_TRUTH), DataConfig(split_seed=protocol.split_seed, subset_per_half=None)


def _train_images(data, split: dict, subset: int | None) -> tuple[Tensor, Tensor]:
    """Both halves of the split (each already a seeded random subset, so a prefix is one too)."""
    idx = torch.cat([torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()])
    idx = idx if subset is None else idx[:subset]
    return data.train_x[idx], data.train_y[idx]


def _test_images(data, subset: int | None) -> tuple[Tensor, Tensor]:
    from e2nas.data import subset_test

    return subset_test(data, subset)  # a fixed subset: every method and seed is tested on the same images


def build_network(space: str, arch, cfg: RetrainConfig, num_classes: int, in_channels: int, seed: int) -> nn.Module:
    """The evaluation network of `arch` with the initial weights of `seed` (the ones run_retrain starts from), on the CPU."""
    sp = spaces.get(space)
    gens = stage_generators(seed, sp.retrain_generators)
    return seeded_init(lambda: sp.build_network(arch, cfg, num_classes, in_channels), gens["init"])


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
    *,
    space: str,
    keep_checkpoint: bool = False,
) -> tuple[dict, dict[str, list]]:
    """Train `arch` from scratch; write metrics.json; return (metrics, history).

    `arch`: NB201 string or 6 op indices (space "nb201"); DARTS Genotype text or 32-choice
    encoding (space "darts").
    metrics: {"arch" (canonical text), "space", "test_accuracy" (%), "params" (DARTS: as DARTS
    counts them, auxiliary head excluded), "flops" (batch-1 forward without the auxiliary head,
    FlopCounterMode: 2 per multiply-accumulate), "train_seconds", "dataset", "seed", "epochs", "history"}.
    history: per-epoch columns {"epoch", "loss" (DARTS: with the auxiliary term), "accuracy"
    (% on the training batches), "lr", "seconds"}, and for DARTS "drop_path_prob".
    model_path, when given, receives the trained state_dict.
    keep_checkpoint: leave the finished checkpoint for the caller to delete once all that follows
    has succeeded (the pipeline does, after the stage's notebook): a failure after training then
    reruns nothing, the next call resumes at the end.
    """
    from e2nas.data import BatchIterator

    sp = spaces.get(space)
    device = torch.device(device)
    text = sp.canonical_text(arch)
    gens = stage_generators(seed, sp.retrain_generators)
    layout = memory_format(device)
    net = build_network(space, text, cfg, data.num_classes, data.in_channels, seed).to(device, memory_format=layout)
    params = sp.count_params(net)
    hooks = sp.training_hooks(net, cfg, device, gens)

    opt, sched = make_sgd(net.parameters(), cfg.epochs, cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    x, y = _train_images(data, split, cfg.train_subset)
    batches = BatchIterator(x, y, cfg.batch_size, device, gens["data"], data.augment and cfg.augment, data.pad,
                            cutout=cfg.cutout, memory_format=layout)
    per_step = cfg.lr_schedule == "step"
    if per_step:
        sched = step_schedule(opt, cfg.epochs, len(batches), cfg.lr_min, cfg.warmup_epochs)

    identity = {"stage": "retrain", "space": space, "arch": text, "dataset": data.name, "seed": seed,
                "split": split_digest(split), "retrain": asdict(cfg), **hooks.identity}
    ckpt = EpochCheckpoint(checkpoint_path, identity)
    history, elapsed = fit_epochs(
        net, batches, opt, sched, gens, ckpt, cfg.epochs, cfg.grad_clip,
        progress=progress, name="retrain", on_epoch=on_epoch, loss_fn=hooks.loss_fn, before_epoch=hooks.before_epoch,
        per_step=per_step,
    )

    test_x, test_y = _test_images(data, cfg.test_subset)
    metrics = {
        "arch": text,
        "space": space,
        "test_accuracy": evaluate(net, test_x.contiguous(memory_format=layout), test_y, cfg.eval_batch_size),
        "params": params,
        "flops": count_flops(net, (data.in_channels, data.image_size, data.image_size)),
        "train_seconds": elapsed,
        "dataset": data.name,
        "seed": seed,
        "epochs": cfg.epochs,
        "protocol": cfg.protocol,
        "test_images": len(test_y),
        "history": history,
    }
    if model_path is not None:
        atomic_save({"model": net.state_dict(), "arch": text, "space": space, "retrain": asdict(cfg)}, model_path)
    write_json(metrics, metrics_path)
    if not keep_checkpoint:
        Path(checkpoint_path).unlink(missing_ok=True)
    return metrics, history


def found_arch(result_path: str | os.PathLike | None, seed: int, space: str) -> str:
    """The cell stage 4 found (its result.json), or, without one, a uniformly drawn cell of
    `space` (the report's random-cell reference), drawn with `seed`, as text: among the cells a
    search may return (DARTS: genotypes without `none`, as RSPS's candidates)."""
    sp = spaces.get(space)
    if result_path is None:
        return sp.format(sp.sample(1, torch.Generator().manual_seed(seed), valid=True)[0])
    import json

    try:
        result = json.loads(Path(result_path).read_text())
        arch = result["arch"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"search result {result_path} is unreadable ({exc}); rerun the search stage") from None
    if result.get("space", space) != space:
        raise CheckpointError(
            f"search result {result_path} is of space {result['space']!r}, not {space!r}; rerun the search stage"
        )
    return arch

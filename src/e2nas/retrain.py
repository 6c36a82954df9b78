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
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, EpochStage
from e2nas.layers import count_flops
from e2nas.runtime import memory_format
from e2nas.sections import GROUND_TRUTH, LR_SCHEDULES, RetrainConfig  # noqa: F401 (the stage's config, re-exported)
from e2nas.spaces import Space
from e2nas.training import Phase, evaluate, fit_epochs, make_sgd, seeded_init, split_digest, stage_generators, step_schedule

log = logging.getLogger(__name__)

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.build_network: a cell's evaluation network.
SPACE_PARTS = ('network',)


def stage_settings(retrain: dict, data: dict, dataset: str, space: Space | str):
    """(RetrainConfig of `space`, DataConfig) a stage-5 job trains under: the config's sections, or with
    `retrain: {protocol: ground-truth}` the ground-truth table's protocol and split, so that a found
    cell's test accuracy is one more training of the table and has a percentile in it."""
    from e2nas.data import DataConfig

    space = spaces.resolve(space)
    if retrain.get("protocol") is None:
        return space.config("retrain", retrain), DataConfig(**data)
    from e2nas.tables.fashion_mnist import PROTOCOL_JSON, GroundTruthTable

    others = sorted(set(retrain) - {"protocol", "judge_seeds"})
    if others:  # a profile given with --configfile inherits config/config.yaml's retrain keys
        log.info("retrain.protocol %s: the table's protocol (%s) sets every retrain setting; ignoring retrain.%s",
                 GROUND_TRUTH, PROTOCOL_JSON, ", retrain.".join(others))
    table = GroundTruthTable.load()
    if table.provenance["dataset"] != dataset:
        raise ValueError(f"the ground-truth table is of {table.provenance['dataset']!r}, but this run trains on {dataset!r}: "
                         f"remove retrain.protocol from the config")
    if space.name != table.space:
        raise ValueError(f"the ground-truth table holds {table.space} cells, but this run searches the {space.name} space: "
                         f"remove retrain.protocol from the config")
    protocol = table.protocol
    judges = {"judge_seeds": list(retrain["judge_seeds"])} if retrain.get("judge_seeds") else {}
    return (space.config("retrain", {**protocol.retrain, "protocol": GROUND_TRUTH, **judges}),
            DataConfig(split_seed=protocol.split_seed, subset_per_half=None))


def _train_images(data, split: dict, subset: int | None) -> tuple[Tensor, Tensor]:
    """Both halves of the split (each already a seeded random subset, so a prefix is one too)."""
    idx = torch.cat([torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()])
    idx = idx if subset is None else idx[:subset]
    return data.train_x[idx], data.train_y[idx]


def _test_images(data, subset: int | None) -> tuple[Tensor, Tensor]:
    from e2nas.data import subset_test

    return subset_test(data, subset)  # a fixed subset: every method and seed is tested on the same images


def build_network(space: Space | str, arch, cfg: RetrainConfig, num_classes: int, in_channels: int, seed: int) -> nn.Module:
    """The evaluation network of `arch` with the initial weights of `seed` (the ones run_retrain starts from), on the CPU."""
    sp = spaces.resolve(space)
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
    space: Space | str,
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
    model_path, when given, receives the trained state_dict. keep_checkpoint: see EpochStage.
    `cfg`: the space's `retrain` section (`space.config("retrain", ...)`).
    """
    from e2nas.data import BatchIterator

    sp = spaces.resolve(space)
    device = torch.device(device)
    text = sp.canonical_text(arch)
    gens = stage_generators(seed, sp.retrain_generators)
    layout = memory_format(device)
    net = build_network(sp, text, cfg, data.num_classes, data.in_channels, seed).to(device, memory_format=layout)
    params = sp.count_params(net)
    hooks = sp.training_hooks(net, cfg, device, gens)

    opt, sched = make_sgd(net.parameters(), cfg.epochs, cfg.lr, cfg.lr_min, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    x, y = _train_images(data, split, cfg.train_subset)
    batches = BatchIterator(x, y, cfg.batch_size, device, gens["data"], data.augment and cfg.augment, data.pad,
                            cutout=cfg.cutout, memory_format=layout)
    per_step = cfg.lr_schedule == "step"
    if per_step:
        sched = step_schedule(opt, cfg.epochs, len(batches), cfg.lr_min, cfg.warmup_epochs)

    identity = {"stage": "retrain", "space": sp.name, "arch": text, "dataset": data.name, "seed": seed,
                "split": split_digest(split), "retrain": asdict(cfg), **hooks.identity}
    stage = EpochStage(checkpoint_path, identity, keep_checkpoint=keep_checkpoint, name="retrain")
    phase = Phase("retrain", cfg.epochs, lambda: (opt, sched), loss_fn=hooks.loss_fn)
    history, elapsed = fit_epochs(net, batches, [phase], gens, stage, cfg.grad_clip, progress=progress, on_epoch=on_epoch,
                                  before_epoch=hooks.before_epoch, per_step=per_step)

    test_x, test_y = _test_images(data, cfg.test_subset)
    metrics = {
        "arch": text,
        "space": sp.name,
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
    model = {} if model_path is None else {model_path: {"model": net.state_dict(), "arch": text, "space": sp.name,
                                                        "retrain": asdict(cfg)}}
    stage.finish({**model, metrics_path: metrics})
    return metrics, history


def run_job(dataset: str, arch: str, cfg: RetrainConfig, data_cfg, seed: int, inputs: dict, outputs: dict,
            checkpoint_path, *, space: Space | str, device="cpu", on_epoch=None, keep_checkpoint: bool = False):
    """One stage-5 job: (metrics, history) of `arch` trained from scratch (`run_retrain` on `dataset`), or, with
    `inputs["judged"]` (retrain.judge_seeds), the summary of the cell's judge trainings (no history)."""
    if inputs.get("judged"):
        return judge_summary(arch, inputs["judged"], outputs["metrics"], space), None
    from e2nas.data import load_dataset, split_for

    data = load_dataset(dataset)
    return run_retrain(data, split_for(data, data_cfg), arch, cfg, seed, outputs["metrics"], checkpoint_path, device=device,
                       on_epoch=on_epoch, space=space, keep_checkpoint=keep_checkpoint)


def judge_summary(arch: str, judged: list[str | os.PathLike], metrics_path: str | os.PathLike, space: Space | str) -> dict:
    """metrics.json of a found cell judged by several trainings (rule judge_cell, retrain.judge_seeds): the mean
    test accuracy, every training (`judge_trainings`: seed, test accuracy, seconds), the network's size;
    written atomically. Each training must be of `arch`."""
    import json

    from e2nas.checkpoint import write_json

    text = spaces.resolve(space).canonical_text(arch)
    trainings = []
    for path in judged:
        try:
            m = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"judge training {path} is unreadable ({exc}); rerun rule judge_cell for it") from None
        if m["arch"] != text:
            raise CheckpointError(f"judge training {path} trained {m['arch']}, not {text}; delete it and rerun")
        trainings.append({"seed": m["seed"], "test_accuracy": m["test_accuracy"], "train_seconds": m["train_seconds"]})
    first = json.loads(Path(judged[0]).read_text())
    metrics = {
        "arch": text, "space": first["space"], "test_accuracy": sum(t["test_accuracy"] for t in trainings) / len(trainings),
        "params": first["params"], "flops": first["flops"], "train_seconds": sum(t["train_seconds"] for t in trainings),
        "dataset": first["dataset"], "seed": None, "epochs": first["epochs"], "protocol": first["protocol"],
        "test_images": first["test_images"], "judge_trainings": trainings, "history": first["history"],
    }
    write_json(metrics, metrics_path)
    return metrics


def found_arch(result_path: str | os.PathLike | None, seed: int, space: Space | str) -> str:
    """The cell stage 4 found (its result.json), or, without one, a uniformly drawn cell of
    `space` (the report's random-cell reference), drawn with `seed`, as text: among the cells a
    search may return (DARTS: genotypes without `none`, as RSPS's candidates)."""
    sp = spaces.resolve(space)
    space = sp.name
    if result_path is None:
        return sp.format(sp.sample(1, torch.Generator().manual_seed(seed), valid=True)[0])
    import json

    try:
        result = json.loads(Path(result_path).read_text())
        arch = result["arch"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"search result {result_path} is unreadable ({exc}); rerun its search: the same snakemake "
                              f"command with --forcerun {result_path}") from None
    if result.get("space", space) != space:
        raise CheckpointError(
            f"search result {result_path} is of space {result['space']!r}, not {space!r}; rerun the search stage"
        )
    return arch

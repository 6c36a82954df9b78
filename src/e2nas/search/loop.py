"""Stage 4's loop: build the method, run the epochs with a checkpoint after each, write result.json."""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import Tensor

from e2nas import spaces
from e2nas.checkpoint import EpochStage, check_finite
from e2nas.names import METHOD_MODULES, METHODS, STANDALONE_METHODS, SUPERNET_METHODS
from e2nas.progress import progress as progress_bar
from e2nas.search.config import SearchConfig
from e2nas.search.harness import EpochStats, Harness
from e2nas.search.method import SearchMethod

log = logging.getLogger(__name__)


def _record(epoch, method, schedule, stats, cell, acc, table, seconds) -> dict:
    before, after = stats.get("forget_before"), stats.get("forget_after")
    arch = method.harness.space.format(cell)
    looked = table.lookup(arch) if table is not None else None
    return {
        "epoch": epoch,
        "arch": arch,
        "eta": schedule.get("eta"),
        "tau": schedule.get("tau"),
        "loss_train": stats.get("loss_train"),
        "loss_val": stats.get("loss_val"),
        "acc_val": acc,
        "novelty": stats.get("novelty"),
        # E2NAS's latent diagnostics (its extras fill them); GDAS's and DARTS's alpha_entropy.
        "sigma": None,
        "mu_nearest_distance": None,
        "decoder_confidence": None,
        "decoder_jacobian": None,
        "distinct_cells": None,
        "sampled_decoded_fraction": stats.get("sampled_decoded"),
        "alpha_entropy": None,
        "complement_same_fraction": stats.get("complement_same"),
        "forgetting": None if before is None else before - after,
        "forgetting_before": before,
        "forgetting_after": after,
        "nb201_cifar10": None if looked is None else looked.get("cifar10"),
        "seconds": seconds,
        "mu": None,  # E2NAS's μ (its extras replace it)
        "sampled_parameter_free_share": None,  # of the cells the architecture half ran (E2NAS, GDAS)
        **method.harness.path_diagnostics(),
        **method.epoch_extras(),
    }


def run_epoch(method: SearchMethod, batches_w, batches_a, epoch: int, epochs: int, progress: bool = True, label: str = "") -> dict:
    """Train one epoch; returns the schedule values and the epoch's statistics (floats)."""
    schedule = method.start_epoch(epoch, epochs)
    steps = min(len(batches_w), len(batches_a))
    bar = progress_bar(total=steps, desc=f"{label} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
    for i, ((xw, yw), (xa, ya)) in enumerate(zip(batches_w, batches_a)):
        method.step(xw, yw, xa, ya, probe=method.has_paths and i == steps - 1)
        bar.update()
    bar.close()
    method.harness.end_epoch()
    return schedule


def method_class(method: str) -> type[SearchMethod]:
    """The class that implements `method`, from the module e2nas.names.METHOD_MODULES names (imported on use)."""
    if method not in SUPERNET_METHODS:
        raise ValueError(f"unknown search method {method!r} (config key `methods`); known: {', '.join(METHODS)}"
                         + (" (it needs no supernet: run it with run_job)" if method in STANDALONE_METHODS else ""))
    return importlib.import_module(f"e2nas.search.{METHOD_MODULES[method]}").METHOD_CLASSES[method]


def method_figures(method: str, result: dict, inputs: dict) -> dict:
    """The method's own figures of a finished search (E2NAS: its latent state and path); none without a supernet."""
    return {} if method in STANDALONE_METHODS else method_class(method).figures(result, inputs)


def _split_images(data, split, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w, a = torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()
    return data.train_x[w], data.train_y[w], data.train_x[a], data.train_y[a]


def run_search(
    method: str,
    data,
    warmup_path: str | os.PathLike,
    vgae_path: str | os.PathLike | None,
    cfg: SearchConfig,
    seed: int,
    result_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    device: torch.device | str = "cpu",
    table=None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    graphs_path: str | os.PathLike | None = None,
    supernet_path: str | os.PathLike | None = None,
    *,
    space_options: dict | None = None,
    keep_checkpoint: bool = False,
) -> dict:
    """Search with `method` on the warmed-up supernet; write and return result.json's dict.

    data: an ImageData (the one the supernet was warmed up on); the warm-up file's split picks
    the weights half (weight steps) and the arch half (architecture steps, scoring).
    table: any object with lookup(arch_string) -> {"cifar10", ...} | None, or None (NB201 only;
    ignored in the DARTS space).
    The space is the warm-up file's, configured with `space_options` (DARTS: distinct_inputs), resolved
    once here. graphs_path: stage 1's graphs (E2NAS methods: their encodings make the manifold term and
    σ_max's default). supernet_path: where the searched supernet goes, in the warm-up file's format
    (stage 6 ranks with it). Checkpoints every epoch at checkpoint_path and resumes from it
    (keep_checkpoint: see EpochStage); on_epoch(record) runs after each epoch's checkpoint.
    """
    cls = method_class(method)
    from e2nas.warmup import load_warmup

    device = torch.device(device)
    net, meta = load_warmup(warmup_path, device)
    if meta.get("dataset") not in (None, data.name):
        raise ValueError(f"warm-up {warmup_path} was trained on {meta['dataset']!r}, but the search data is {data.name!r}")
    space = spaces.configured(meta["space"], space_options)
    table = table if space.has_benchmark_table else None
    xw, yw, xa, ya = _split_images(data, meta["split"], device)
    harness = Harness(net, cfg, device, seed, space=space)
    harness.set_eval(xa[: cfg.rsps_eval_images], ya[: cfg.rsps_eval_images], pool=(xa, ya))
    searcher = cls.build(method, harness, {"vgae": vgae_path, "graphs": graphs_path})
    from e2nas.data import BatchIterator

    layout = harness.layout
    batches_w = BatchIterator(xw, yw, cfg.batch_size, device, harness.gens["data_w"], data.augment, data.pad, memory_format=layout)
    batches_a = BatchIterator(xa, ya, cfg.batch_size, device, harness.gens["data_a"], data.augment, data.pad, memory_format=layout)

    stage = EpochStage(
        checkpoint_path, {"method": method, "seed": seed, "dataset": data.name, "space": space.name, "search": asdict(cfg)},
        inputs={"warmup": warmup_path, "vgae": vgae_path, "graphs": graphs_path}, keep_checkpoint=keep_checkpoint,
        name=f"{method} seed {seed}",
    )

    def restore(state: dict) -> None:
        harness.load_state_dict(state["harness"])
        searcher.load_state_dict(state["method"])

    cpu_start = time.process_time()
    for epoch in range(stage.resume(restore), cfg.epochs):
        t0 = time.perf_counter()
        harness.stats = EpochStats()
        schedule = run_epoch(searcher, batches_w, batches_a, epoch, cfg.epochs, progress, method)
        stats = harness.stats.read()  # the epoch's one read of the step statistics
        for key in ("loss_train", "loss_val"):
            if key in stats:
                check_finite(stats[key], epoch, stage.kept())
        cell, acc = searcher.epoch_arch()
        acc = harness.evaluate(cell) if acc is None else acc
        seconds = time.perf_counter() - t0
        stage.log.append(_record(epoch, searcher, schedule, stats, cell, acc, table, seconds))
        stage.end_epoch(epoch, seconds, harness=harness.state_dict(), method=searcher.state_dict())
        if on_epoch is not None:
            on_epoch(stage.log[-1])

    trajectory = stage.log  # one record per epoch
    final = trajectory[-1]["arch"]
    forgetting = [r["forgetting"] for r in trajectory if r["forgetting"] is not None]
    result = {
        "arch": final,
        "method": method,
        "seed": seed,
        "dataset": data.name,
        "space": space.name,
        "epochs": cfg.epochs,
        "search_seconds": stage.elapsed,
        "cpu_seconds": time.process_time() - cpu_start,  # of this call (after a resume: the epochs it ran)
        "nb201": table.lookup(final) if table is not None else None,
        "forgetting_mean": sum(forgetting) / len(forgetting) if forgetting else None,
        "config": asdict(cfg),
        **searcher.result_extras(),
        "trajectory": trajectory,
    }
    supernet = {} if supernet_path is None else {
        supernet_path: {**meta, "model": harness.net.state_dict(), "method": method, "search_seed": seed}}
    stage.finish({**supernet, result_path: result})
    return result

"""What a user would do instead of a one-shot search: methods that need no supernet, warm-up or VGAE.

* `random-search`: k cells drawn uniformly with the run's seed, each trained stand-alone under the
  ground-truth table's protocol on the weights half of the split only, and scored on the first
  `ranking.images` images of the arch half (never the test set); the best by that score is the found
  cell. One training per "epoch" of the stage: checkpointed, so a kill loses at most the training in
  progress (which resumes from its own checkpoint).
* `params`, `synflow`: the highest-scoring of `search.zero_cost_cells` cells drawn with the run's seed
  (ties to the first drawn), scored by the stand-alone network at the table's protocol: its parameter
  count, or synflow at its seeded initialisation (`e2nas.search.zero_cost`).

Each writes result.json like a supernet search (arch, method, seed, search_seconds, cpu_seconds, the
candidates and their scores), with no trajectory and no searched supernet (stage 6 skips them).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from e2nas import spaces
from e2nas.checkpoint import EpochStage
from e2nas.names import RANDOM_SEARCH, ZERO_COST_METHODS
from e2nas.spaces import Space

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.build_network: the stand-alone networks it trains or scores.
SPACE_PARTS = ('network',)


def protocol_config(space: Space):
    """The ground-truth table's retrain settings, as `space`'s retrain section: what every training here uses."""
    from e2nas.sections import GROUND_TRUTH
    from e2nas.tables.fashion_mnist import GroundTruthTable

    table = GroundTruthTable.load()
    if space.name != table.space:
        raise ValueError(f"random search and the zero-cost picks train and score cells under the ground-truth table's "
                         f"protocol, which holds {table.space} cells; the {space.name} space has none: remove them from `methods`")
    return space.config("retrain", {**table.protocol.retrain, "protocol": GROUND_TRUTH}), table


def zero_cost_score(method: str, space: Space, cell, cfg, data, seed: int) -> float:
    """`params`: the stand-alone network's parameter count; `synflow`: its synflow at the seeded init of `seed`."""
    from e2nas.retrain import build_network
    from e2nas.search.zero_cost import synflow

    net = build_network(space, cell, cfg, data.num_classes, data.in_channels, seed)
    if method == "params":
        return float(space.count_params(net))
    return synflow(net, (data.in_channels, data.image_size, data.image_size))


def halves(split: dict, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights half, the first `images` of the arch half): disjoint, or the search would score on its training images."""
    weights, arch = torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()[:images]
    if set(weights.tolist()) & set(arch.tolist()):
        raise ValueError("the split's weights and arch halves overlap: a cell would be scored on images it trained on")
    return weights, arch


def run_standalone(
    method: str, data, split: dict, search_cfg, images: int, seed: int, result_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike, *, space: Space | str, device="cpu", table=None, progress: bool = True,
    on_candidate: Callable[[dict], None] | None = None, keep_checkpoint: bool = False,
) -> dict:
    """Run `method` (random-search, params, synflow); write and return result.json's dict.

    split: the run's data split (the search's halves); images: arch-half images that score a training
    (config `ranking.images`). on_candidate(record) runs after each training of a random search. table: the NB201 table (a look-up of the found cell) or None.
    """
    space = spaces.resolve(space)
    cfg, _ = protocol_config(space)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if method == RANDOM_SEARCH:
        candidates = random_search(data, split, cfg, search_cfg.random_search_trainings, images, seed, checkpoint_path,
                                   space, device, progress, on_candidate, keep_checkpoint)
    elif method in ZERO_COST_METHODS:
        cells = space.sample(search_cfg.zero_cost_cells, torch.Generator().manual_seed(seed), valid=True)
        candidates = [{"arch": space.format(c), "score": zero_cost_score(method, space, c, cfg, data, seed)} for c in cells]
    else:
        raise ValueError(f"{method!r} is not a method without a supernet ({RANDOM_SEARCH}, {', '.join(ZERO_COST_METHODS)})")
    best = max(range(len(candidates)), key=lambda i: (candidates[i]["score"], -i))  # ties to the first drawn
    arch = candidates[best]["arch"]
    trained = sum(c.get("train_seconds", 0.0) for c in candidates)
    result = {
        "arch": arch, "method": method, "seed": seed, "dataset": data.name, "space": space.name,
        "epochs": len(candidates) if method == RANDOM_SEARCH else 0,
        # Random search's own trainings (its resumed ones included); a zero-cost pick's scoring time.
        "search_seconds": trained if method == RANDOM_SEARCH else time.perf_counter() - start_wall,
        "cpu_seconds": time.process_time() - start_cpu,
        "nb201": table.lookup(arch) if table is not None and space.has_benchmark_table else None,
        "config": dataclasses.asdict(search_cfg),
        "scored_on": f"the first {images} arch-half images" if method == RANDOM_SEARCH else "the network at its seeded initialisation",
        "candidates": candidates if method == RANDOM_SEARCH else sorted(candidates, key=lambda c: -c["score"])[:20],
        "cells_scored": len(candidates),
        "trajectory": [],
    }
    # The output by an atomic rename; random search's checkpoint dropped after it (unless kept for the caller).
    EpochStage(checkpoint_path, {}, keep_checkpoint=keep_checkpoint).finish({result_path: result})
    return result


def random_search(data, split, cfg, k: int, images: int, seed: int, checkpoint_path, space: Space, device, progress: bool,
                  on_candidate, keep_checkpoint: bool) -> list[dict]:
    """k seeded cells, each trained on the weights half and scored on `images` arch-half images; one checkpointed
    "epoch" per training."""
    from e2nas.retrain import run_retrain

    weights, arch = halves(split, images)
    cells = [space.format(c) for c in space.sample(k, torch.Generator().manual_seed(seed), valid=True)]
    # The arch-half images stand in for the test set: the network is scored on them, never on the test set.
    scored = dataclasses.replace(data, test_x=data.train_x[arch], test_y=data.train_y[arch])
    train_split = {"weights": weights, "arch": weights[:0]}
    identity = {"stage": "random-search", "space": space.name, "dataset": data.name, "seed": seed, "cells": cells,
                "images": images, "retrain": dataclasses.asdict(cfg)}
    stage = EpochStage(checkpoint_path, identity, keep_checkpoint=keep_checkpoint, name=f"random search seed {seed}")
    for i in range(stage.resume(lambda state: None), k):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            run_ckpt = Path(f"{checkpoint_path}.training{i}")  # beside the stage's: a kill mid-training resumes it
            metrics, _ = run_retrain(scored, train_split, cells[i], dataclasses.replace(cfg, test_subset=None), seed,
                                     f"{tmp}/metrics.json", run_ckpt, device=device, progress=progress, space=space)
        record = {"arch": cells[i], "score": metrics["test_accuracy"], "train_seconds": metrics["train_seconds"],
                  "params": metrics["params"]}
        stage.log.append(record)
        stage.end_epoch(i, time.perf_counter() - t0)
        if on_candidate is not None:
            on_candidate({**record, "training": i})
    return list(stage.log)

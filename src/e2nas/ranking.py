"""Stage 6: how well each supernet ranks cells, against the ground truth and the NB201 transfer proxy.

Beside each supernet, the simplest judge a user has: the cells' parameter counts, on the same cells.

A one-shot search can only find good cells if its supernet scores them in about the right
order. For one seed, the warmed-up supernet and every method's searched supernet score the
same seeded sample of cells (on the same arch-half images); their accuracies are compared by
Kendall τ and Spearman ρ with the stand-alone Fashion-MNIST accuracy of the ground-truth table
(mean of its two seeds; its own noise ceiling bounds any τ) when the search ran on its data,
and with NAS-Bench-201's CIFAR-10 accuracy (a transfer proxy) when that table is available.
Without a ground truth the cells are a uniform draw of the space.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

from e2nas.checkpoint import write_json
from e2nas.runtime import memory_format


@dataclass
class RankingConfig:
    """Config section `ranking`."""

    cells: int = 100  # cells every supernet scores (drawn from the ground-truth table where there is one)
    images: int = 512  # arch-half images each cell is scored on (the same for every cell and supernet)
    seed: int = 0  # seeds the draw of the cells
    # "tuning" / "held-out": every table cell of that half (e2nas.tables.fashion_mnist.is_held_out),
    # `cells` ignored; "all": the seeded draw of `cells`.
    subset: str = "all"

    def __post_init__(self):
        if self.cells < 2 or self.images < 1:
            raise ValueError(f"ranking: cells must be >= 2 and images >= 1, got {self}; fix the config section `ranking`")
        if self.subset not in ("all", "tuning", "held-out"):
            raise ValueError(f"ranking.subset must be all, tuning or held-out, got {self.subset!r}")

    TOP = 10  # the favourites whose parameter-free share is reported


def correlation(x, y) -> dict:
    """Kendall τ and Spearman ρ of the pairs where both are known (NaN with fewer than two)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return {"kendall_tau": math.nan, "spearman_rho": math.nan}
    return {"kendall_tau": float(kendalltau(x[keep], y[keep]).statistic), "spearman_rho": float(spearmanr(x[keep], y[keep]).statistic)}


def ranking_cells(cfg: RankingConfig, space, ground_truth=None) -> list[str]:
    """The cells to score: a seeded draw from the ground-truth table's cells (or every cell of its tuning or
    held-out half), else from the space."""
    gen = torch.Generator().manual_seed(cfg.seed)
    if cfg.subset != "all":
        if ground_truth is None:
            raise ValueError(f"ranking.subset {cfg.subset} picks cells of the ground-truth table, which this dataset "
                             f"has none of: set ranking.subset all")
        return ground_truth.subset(cfg.subset)
    if ground_truth is not None:
        cells = list(ground_truth.frame["arch"])
        return [cells[i] for i in torch.randperm(len(cells), generator=gen)[: cfg.cells].tolist()]
    return [space.format(c) for c in space.sample(cfg.cells, gen, valid=True)]


def score(supernet_path: str | os.PathLike, cells: list[str], data, cfg: RankingConfig, device) -> list[float]:
    """Supernet validation accuracy (%) of each cell, on the first `cfg.images` arch-half images."""
    from e2nas import spaces
    from e2nas.warmup import evaluate_path, load_warmup

    net, meta = load_warmup(supernet_path, device)
    space = spaces.get(meta["space"])
    idx = torch.as_tensor(meta["split"]["arch"])[: cfg.images]
    x, y = data.train_x[idx].to(device).contiguous(memory_format=memory_format(device)), data.train_y[idx].to(device)
    return [evaluate_path(net, x, y, space.parse(cell)) for cell in cells]


def found_cells(methods, result_files) -> dict[str, str]:
    """{method: the cell its search found} from stage 4's result.json files (given in `methods`' order)."""
    import json
    from pathlib import Path

    return {m: json.loads(Path(f).read_text())["arch"] for m, f in zip(methods, result_files)}


def top(scores, k: int) -> list[int]:
    """Indices of the k highest scores (ties to the earlier cell)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def percentile_among(value: float, values) -> float:
    """Percentage of `values` at most `value`: where a cell's score sits among the ranked cells' scores."""
    return float(100.0 * np.mean(np.asarray(values, dtype=float) <= value))


def cell_parameters(space, cells: list[str], retrain_cfg, num_classes: int, in_channels: int) -> list[int]:
    """Each cell's stand-alone network's parameter count (as the space counts them) under `retrain_cfg`."""
    return [space.count_params(space.build_network(c, retrain_cfg, num_classes, in_channels)) for c in cells]


def judge_quality(scores: list[float], truth: list[float], cells: list[str], space, ground_truth) -> dict:
    """How a judge's scores (a supernet's, or the parameter count) of the ranked cells compare with the ground
    truth: the parameter-free share of its top 10, top-10% precision (of the truly best k = ⌈n/10⌉ cells,
    how many are among its best k) and its favourite's percentile among the table's trainings."""
    k = math.ceil(len(cells) / 10)
    favourite = top(scores, 1)[0]
    return {
        "parameter_free_top10": space.parameter_free_share([cells[i] for i in top(scores, RankingConfig.TOP)]),
        "top10_precision": len(set(top(scores, k)) & set(top(truth, k))) / k,
        "favourite": cells[favourite],
        "favourite_percentile": ground_truth.percentile(truth[favourite]),
    }


def rank_supernets(
    supernets: dict[str, str | os.PathLike], data, cfg: RankingConfig, space, out_path, ground_truth=None, nb201_table=None,
    device="cpu", found: dict[str, str] | None = None,
) -> dict:
    """Score the same cells with every supernet ({label: file}); write and return ranking.json's dict.

    ground_truth: the Fashion-MNIST table (when the search ran on its dataset) or None; nb201_table:
    NAS-Bench-201's table or None. Beside each supernet's τ and ρ: the parameter count's on the same
    cells, and with a ground truth each judge's `judge_quality`. found ({method: found cell}): each
    method's found cell scored by the warm-up supernet (label "warm-up") and by its own searched supernet
    (label = method), as percentiles among that supernet's scores of the ranked cells — did the search find
    what its judge prefers, and what the judge before the search preferred?
    """
    cells = ranking_cells(cfg, space, ground_truth)
    truth = ground_truth.mean().loc[cells].tolist() if ground_truth is not None else None
    proxy = [nb201_table.lookup(c)["cifar10"] for c in cells] if nb201_table is not None else None
    # The parameter count of the cells as the ground truth trains them (the space's default network without one).
    protocol = ground_truth.protocol.retrain if ground_truth is not None else {}
    params = cell_parameters(space, cells, space.config("retrain", protocol), data.num_classes, data.in_channels)
    result = {"config": asdict(cfg), "dataset": data.name, "space": space.name, "cells": cells,
              "ground_truth": truth, "nb201_cifar10": proxy, "supernets": {},
              "parameters": {"count": params, "ground_truth": correlation(params, truth) if truth is not None else None,
                             "nb201_cifar10": correlation(params, proxy) if proxy is not None else None}}
    if truth is not None:
        result["parameters"].update(judge_quality(params, truth, cells, space, ground_truth))
        result["ground_truth_parameter_free_top10"] = space.parameter_free_share([cells[i] for i in top(truth, RankingConfig.TOP)])
    scores_of = {}
    for label, path in supernets.items():
        accuracy = score(path, cells, data, cfg, device)
        scores_of[label] = accuracy
        result["supernets"][label] = {
            "accuracy": accuracy,
            "ground_truth": correlation(accuracy, truth) if truth is not None else None,
            "nb201_cifar10": correlation(accuracy, proxy) if proxy is not None else None,
            **(judge_quality(accuracy, truth, cells, space, ground_truth) if truth is not None else {}),
        }
    result["found"] = {}
    for method, cell in (found or {}).items():
        entry = {"arch": cell}
        for label, key in (("warm-up", "warmup"), (method, "own_supernet")):
            if label in supernets:
                value = score(supernets[label], [cell], data, cfg, device)[0]
                entry[f"{key}_score"] = value
                entry[f"found_in_{key}_percentile"] = percentile_among(value, scores_of[label])
        result["found"][method] = entry
    if truth is not None and proxy is not None:
        result["ground_truth_vs_nb201"] = correlation(truth, proxy)  # how far the transfer proxy can be trusted here
    if ground_truth is not None:
        result["noise_ceiling"] = ground_truth.noise_ceiling()
    write_json(result, out_path)
    return result


QUALITY = ("parameter_free_top10", "top10_precision", "favourite_percentile")


def metrics(result: dict) -> dict[str, float]:
    """Flat MLflow metrics: {judge}_{kendall_tau|spearman_rho}_{ground_truth|nb201_cifar10} for every supernet and
    the parameter count, their judge qualities, and {method}_found_in_{warmup|own_supernet}_percentile."""
    out = {}
    judges = {**result["supernets"], "parameters": result.get("parameters") or {}}
    for name, entry in judges.items():
        for ref in ("ground_truth", "nb201_cifar10"):
            for stat, value in (entry.get(ref) or {}).items():
                out[f"{name}_{stat}_{ref}"] = value
        out.update({f"{name}_{k}": entry[k] for k in QUALITY if k in entry})
    for method, entry in (result.get("found") or {}).items():
        out.update({f"{method}_{k}": v for k, v in entry.items() if k.startswith("found_in_")})
    return out


def summary(result: dict):
    """One row per judge (every supernet, then the parameter count): its τ and ρ against each reference and,
    with a ground truth, its judge qualities (a DataFrame)."""
    import pandas as pd

    judges = {**result["supernets"], **({"parameter count": result["parameters"]} if result.get("parameters") else {})}
    rows = [{"supernet": name, **{f"{stat}_{ref}": (entry.get(ref) or {}).get(stat, math.nan)
                                  for ref in ("ground_truth", "nb201_cifar10") for stat in ("kendall_tau", "spearman_rho")},
             **{k: entry.get(k, math.nan) for k in QUALITY}}
            for name, entry in judges.items()]
    return pd.DataFrame(rows)


def plot_ranking(result: dict):
    """Each supernet's validation accuracy against the reference (ground truth, else the NB201 proxy)."""
    from matplotlib.figure import Figure

    reference, label = (result["ground_truth"], "stand-alone Fashion-MNIST accuracy (ground truth, %)")
    if reference is None:
        reference, label = result["nb201_cifar10"], "NB201 CIFAR-10 test accuracy (transfer proxy, %)"
    if reference is None:
        return None
    names = list(result["supernets"])
    fig = Figure(figsize=(4.2 * len(names), 3.8), layout="constrained")
    key = "ground_truth" if result["ground_truth"] is not None else "nb201_cifar10"
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
        entry = result["supernets"][name]
        ax.scatter(reference, entry["accuracy"], s=10)
        tau = (entry[key] or {}).get("kendall_tau", math.nan)
        ax.set(xlabel=label, ylabel="supernet validation accuracy (%)", title=f"{name}: Kendall τ = {tau:.2f}")
    return fig

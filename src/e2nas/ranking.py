"""Stage 6: how well each supernet ranks cells, against the ground truth and the NB201 transfer proxy.

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

    def __post_init__(self):
        if self.cells < 2 or self.images < 1:
            raise ValueError(f"ranking: cells must be >= 2 and images >= 1, got {self}; fix the config section `ranking`")


def correlation(x, y) -> dict:
    """Kendall τ and Spearman ρ of the pairs where both are known (NaN with fewer than two)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return {"kendall_tau": math.nan, "spearman_rho": math.nan}
    return {"kendall_tau": float(kendalltau(x[keep], y[keep]).statistic), "spearman_rho": float(spearmanr(x[keep], y[keep]).statistic)}


def ranking_cells(cfg: RankingConfig, space, ground_truth=None) -> list[str]:
    """The cells to score: a seeded draw from the ground-truth table's cells, else from the space."""
    gen = torch.Generator().manual_seed(cfg.seed)
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


def rank_supernets(
    supernets: dict[str, str | os.PathLike], data, cfg: RankingConfig, space, out_path, ground_truth=None, nb201_table=None,
    device="cpu",
) -> dict:
    """Score the same cells with every supernet ({label: file}); write and return ranking.json's dict.

    ground_truth: the Fashion-MNIST table (when the search ran on its dataset) or None; nb201_table:
    NAS-Bench-201's table or None.
    """
    cells = ranking_cells(cfg, space, ground_truth)
    truth = ground_truth.mean().loc[cells].tolist() if ground_truth is not None else None
    proxy = [nb201_table.lookup(c)["cifar10"] for c in cells] if nb201_table is not None else None
    result = {"config": asdict(cfg), "dataset": data.name, "space": space.name, "cells": cells,
              "ground_truth": truth, "nb201_cifar10": proxy, "supernets": {}}
    for label, path in supernets.items():
        accuracy = score(path, cells, data, cfg, device)
        result["supernets"][label] = {
            "accuracy": accuracy,
            "ground_truth": correlation(accuracy, truth) if truth is not None else None,
            "nb201_cifar10": correlation(accuracy, proxy) if proxy is not None else None,
        }
    if truth is not None and proxy is not None:
        result["ground_truth_vs_nb201"] = correlation(truth, proxy)  # how far the transfer proxy can be trusted here
    if ground_truth is not None:
        result["noise_ceiling"] = ground_truth.noise_ceiling()
    write_json(result, out_path)
    return result


def metrics(result: dict) -> dict[str, float]:
    """The correlations as flat MLflow metrics: {supernet}_{kendall_tau|spearman_rho}_{ground_truth|nb201_cifar10}."""
    out = {}
    for name, entry in result["supernets"].items():
        for ref in ("ground_truth", "nb201_cifar10"):
            for stat, value in (entry.get(ref) or {}).items():
                out[f"{name}_{stat}_{ref}"] = value
    return out


def summary(result: dict):
    """One row per supernet: its τ and ρ against each reference (a DataFrame)."""
    import pandas as pd

    rows = [{"supernet": name, **{f"{stat}_{ref}": (entry.get(ref) or {}).get(stat, math.nan)
                                  for ref in ("ground_truth", "nb201_cifar10") for stat in ("kendall_tau", "spearman_rho")}}
            for name, entry in result["supernets"].items()]
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

"""The statistics a comparison of methods over seeds needs: intervals, paired differences, Holm, power.

Per method, the mean over seeds with a percentile-bootstrap 95% interval (seeds resampled with
replacement). Against a reference method, the paired-by-seed difference (the same seed shares the
split, warm-up and start of every method): its bootstrap interval and a one-sided bootstrap p-value
for "the reference is ahead", Holm-corrected over the comparisons at level α. And what the run could
tell apart: the smallest difference detectable at its seed count and spread, and the seeds a given
difference would need (n ≈ 2((z_{1−α/2} + z_{power}) s / Δ)², two-sided α 5%, power 80%).

Torch-free and seeded: the same inputs give the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_DRAWS = 10_000
Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5%, 80% power


def bootstrap_means(values, rng: np.random.Generator, draws: int = BOOTSTRAP_DRAWS) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return rng.choice(values, size=(draws, len(values)), replace=True).mean(axis=1)


def mean_interval(values, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the percentile-bootstrap interval of the mean over `values` (NaN with no values)."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    means = bootstrap_means(values, rng)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(values.mean()), float(low), float(high)


def paired_comparisons(by_method: dict[str, dict[int, float]], reference: str, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """`reference` against every other method, paired by seed ({method: {seed: value}}), Holm-corrected.

    Each row: other, seeds (the shared ones), difference (mean of reference − other), p (one-sided
    bootstrap: the share of resampled mean differences <= 0), holm_alpha (the level its p is compared
    with: α/(m − rank) in Holm's step-down order), low/high (the two-sided interval at that level),
    ahead (Holm rejects "not ahead": the reference is ahead of this method).
    """
    rng = np.random.default_rng(seed)
    ref = by_method[reference]
    rows = []
    for other, values in by_method.items():
        if other == reference:
            continue
        seeds = sorted(set(ref) & set(values))
        d = np.array([ref[s] - values[s] for s in seeds], dtype=float)
        if len(d) == 0 or np.isnan(d).any():
            rows.append({"other": other, "seeds": len(seeds), "difference": math.nan, "p": math.nan})
            continue
        boot = bootstrap_means(d, rng)
        rows.append({"other": other, "seeds": len(seeds), "difference": float(d.mean()), "p": float(np.mean(boot <= 0)),
                     "_boot": boot})
    tested = sorted((r for r in rows if r["p"] == r["p"]), key=lambda r: r["p"])
    rejecting = True
    for rank, row in enumerate(tested):
        row["holm_alpha"] = alpha / (len(tested) - rank)
        rejecting = rejecting and row["p"] <= row["holm_alpha"]
        row["ahead"] = bool(rejecting)
        low, high = np.quantile(row.pop("_boot"), [row["holm_alpha"] / 2, 1 - row["holm_alpha"] / 2])
        row["low"], row["high"] = float(low), float(high)
    for row in rows:
        row.setdefault("ahead", False)
        row.setdefault("holm_alpha", math.nan)
        row.setdefault("low", math.nan)
        row.setdefault("high", math.nan)
    return rows


def detectable_difference(spread: float, seeds: int) -> float:
    """The smallest difference of means a comparison at `seeds` seeds per method and seed-to-seed sd `spread`
    detects with 80% power at two-sided 5%: (z + z_power) · spread · sqrt(2 / seeds)."""
    return (Z_ALPHA + Z_POWER) * spread * math.sqrt(2 / seeds) if seeds > 0 else math.nan


def seeds_needed(spread: float, difference: float) -> int:
    """Seeds per method to detect `difference` at spread `spread`: n ≈ 2((z + z_power) s / Δ)²."""
    if not difference or difference != difference or spread != spread:
        return 0
    return max(2, math.ceil(2 * ((Z_ALPHA + Z_POWER) * spread / abs(difference)) ** 2))

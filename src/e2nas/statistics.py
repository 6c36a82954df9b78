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
MIN_PAIRED_SEEDS = 3  # below it a bootstrap of the paired differences claims what it cannot know


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


def paired_difference(a: dict[int, float], b: dict[int, float], rng: np.random.Generator) -> dict:
    """a − b paired by seed ({seed: value} each): seeds, difference (mean), p (one-sided bootstrap: the share of
    resampled mean differences <= 0, i.e. "a is not ahead of b"), and the bootstrap means (`boot`).

    With fewer than MIN_PAIRED_SEEDS seeds there is no test (p NaN): one difference resamples to itself, so
    any positive one would get p = 0."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    if len(d) == 0 or np.isnan(d).any():
        return {"seeds": len(seeds), "difference": math.nan, "p": math.nan, "boot": None}
    if len(d) < MIN_PAIRED_SEEDS:
        return {"seeds": len(seeds), "difference": float(d.mean()), "p": math.nan, "boot": None}
    boot = bootstrap_means(d, rng)
    return {"seeds": len(seeds), "difference": float(d.mean()), "p": float(np.mean(boot <= 0)), "boot": boot}


def holm(ps: list[float], alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """Holm's step-down over one-sided p-values: (rejected, the level each p was compared with, α/(m − rank))."""
    order = sorted((i for i in range(len(ps)) if ps[i] == ps[i]), key=lambda i: ps[i])
    rejected, levels, rejecting = [False] * len(ps), [math.nan] * len(ps), True
    for rank, i in enumerate(order):
        levels[i] = alpha / (len(order) - rank)
        rejecting = rejecting and ps[i] <= levels[i]
        rejected[i] = rejecting
    return rejected, levels


def paired_comparisons(by_method: dict[str, dict[int, float]], reference: str, alpha: float = 0.05, seed: int = 0) -> list[dict]:
    """`reference` against every other method, paired by seed ({method: {seed: value}}), Holm-corrected.

    Each row: other, seeds (the shared ones), difference (mean of reference − other), p (one-sided
    bootstrap for "the reference is not ahead"), holm_alpha (the level its p is compared with in Holm's
    step-down order), low/high (the two-sided bootstrap interval at that level), ahead (Holm rejects:
    the reference is ahead of this method).
    """
    rng = np.random.default_rng(seed)
    rows = [{"other": other, **paired_difference(by_method[reference], values, rng)}
            for other, values in by_method.items() if other != reference]
    rejected, levels = holm([r["p"] for r in rows], alpha)
    for row, ahead, level in zip(rows, rejected, levels):
        boot = row.pop("boot")
        row["ahead"], row["holm_alpha"] = ahead, level
        row["low"], row["high"] = ((math.nan, math.nan) if boot is None else
                                   tuple(float(q) for q in np.quantile(boot, [level / 2, 1 - level / 2])))
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

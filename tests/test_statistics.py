"""The study's statistics on made-up results with known answers."""

import math

import numpy as np
import pytest

from e2nas import statistics as st


def test_a_clear_lead_is_ahead_after_holm_and_a_tie_is_not():
    seeds = range(6)
    by = {"e2nas": {s: 90 + s % 2 for s in seeds}, "random": {s: 50 + s for s in seeds}, "twin": {s: 90 + (s + 1) % 2 for s in seeds}}
    rows = {r["other"]: r for r in st.paired_comparisons(by, "e2nas")}
    assert rows["random"]["ahead"] and rows["random"]["low"] > 0 and rows["random"]["difference"] == pytest.approx(90.5 - 52.5)
    assert not rows["twin"]["ahead"] and rows["twin"]["low"] <= 0 <= rows["twin"]["high"]
    # Holm: the smallest p is tested at α/2, the next at α/1.
    assert sorted(r["holm_alpha"] for r in rows.values()) == [0.025, 0.05]


def test_holm_stops_at_the_first_comparison_it_cannot_reject():
    rng = np.random.default_rng(0)
    a = {s: 10 + rng.normal() for s in range(5)}
    by = {"a": a, "b": {s: -5 + rng.normal() for s in range(5)}, "c": {s: a[s] + (-1) ** s for s in range(5)},
          "d": {s: -4 + rng.normal() for s in range(5)}}
    rows = sorted(st.paired_comparisons(by, "a"), key=lambda r: r["p"])
    ahead = [r["ahead"] for r in rows]
    assert ahead == sorted(ahead, reverse=True) and ahead.count(True) == 2  # b and d, not c


def test_mean_interval_and_power():
    mean, low, high = st.mean_interval([40, 50, 60], np.random.default_rng(0))
    assert mean == 50 and 40 <= low < 50 < high <= 60
    assert math.isnan(st.mean_interval([], np.random.default_rng(0))[0])
    d = st.detectable_difference(10.0, 5)
    assert d == pytest.approx(2.8016 * 10 * math.sqrt(2 / 5), rel=1e-3)
    assert st.seeds_needed(10.0, d) in (5, 6)  # the same relation, the other way round
    assert st.seeds_needed(10.0, 5.0) == math.ceil(2 * (2.8016 * 10 / 5) ** 2)

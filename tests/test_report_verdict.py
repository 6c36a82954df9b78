"""The report's verdict on made-up results whose answer is known, both ways, and the report's honest charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from e2nas import report


def made_up(means: dict[str, float], sd: float, seeds: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"dataset": "fashion-mnist", "space": "nb201", "method": m, "seed": s,
             "ground_truth_percentile": float(np.clip(mean + rng.normal(0, sd), 0, 100)), "test_accuracy": 80.0}
            for m, mean in means.items() for s in range(seeds)]
    return pd.DataFrame(rows)


def test_a_clear_winner_is_named_ahead_of_the_random_cell_and_of_random_search():
    frame = made_up({"e2nas": 95, "gdas": 45, "random-search": 70, "random": 45}, sd=2)
    text = report.verdict(frame)
    assert text.startswith("**Verdict over 5 seeds** (0, 1, 2, 3, 4), by the ground-truth percentile")
    assert "e2nas is ahead of the random cell" in text and "e2nas is ahead of random search" in text
    assert "gdas" not in text  # level with the random cell, behind random search
    assert "Holm at 5% over 4 comparisons" in text


def test_methods_that_cannot_be_told_apart_say_so_and_how_many_seeds_it_would_take():
    frame = made_up({"e2nas": 52, "gdas": 48, "random": 50}, sd=15, seeds=3)
    text = report.verdict(frame)
    assert "no method is ahead of the random cell" in text
    assert "no method can be told apart from it at 3 seeds" in text
    need = int(text.split("would need about ")[1].split()[0])
    assert need > 3


def test_without_a_ground_truth_the_verdict_compares_accuracies():
    frame = made_up({"e2nas": 50, "random": 50}, sd=1)
    frame["ground_truth_percentile"] = np.nan
    frame.loc[frame["method"] == "e2nas", "test_accuracy"] = 90 + np.arange(5) * 0.1
    assert "by the retrain test accuracy (%)" in report.verdict(frame) and "e2nas is ahead of the random cell" in report.verdict(frame)
    table = report.verdict_table(frame)
    assert list(table.columns) == ["method", "seeds", "retrain test accuracy (%)", "95% interval over seeds"]


def test_percentile_bars_span_0_to_100_and_accuracy_bars_state_their_baseline():
    frame = made_up({"e2nas": 60, "gdas": 40, "random": 50}, sd=5)
    frame["test_accuracy"] = 76 + np.random.default_rng(1).normal(0, 0.5, len(frame))
    figures = report.method_figures(frame, None)
    pct = figures["ground_truth_percentile_by_method.png"].axes[0]
    assert pct.get_ylim() == (0, 100) and pct.get_title()
    acc = figures["retrain_accuracy_by_method.png"].axes[0]
    assert "axis from" in acc.get_ylabel() and acc.get_title()
    labels = [t.get_text() for t in acc.texts]
    assert labels and all(len(label.split("(")[-1].rstrip(")").split(".")[-1]) == 2 for label in labels)  # 2 decimals


def test_reference_rows_come_after_the_methods_and_summary_csv_is_rounded(tmp_path):
    frame = made_up({"random": 50, "ref-nb201-best": 90, "e2nas": 60, "gdas": 40}, sd=5, seeds=2)
    frame["params"], frame["search_seconds"] = 18594.0, 109.68789780300006
    order = frame.sort_values("method", key=lambda s: s.map(report.method_rank))["method"].drop_duplicates().tolist()
    assert order == ["e2nas", "gdas", "random", "ref-nb201-best"]
    report.write_summary(frame, tmp_path / "summary.csv")
    text = (tmp_path / "summary.csv").read_text()
    assert "18594," in text and "18594.0" not in text and "109.69" in text and "109.6878" not in text


@pytest.mark.parametrize("seeds", [1, 2])
def test_too_few_seeds_claim_nothing_however_large_the_difference(seeds):
    """One seed's difference resamples to itself (bootstrap p = 0): below three paired seeds no method is called ahead."""
    frame = made_up({"e2nas": 90, "gdas": 80, "random": 10}, sd=0.5, seeds=seeds)
    text = report.verdict(frame)
    assert "ahead of the random cell" in text and "no method is ahead of the random cell" in text
    assert f"no method can be told apart from it at {seeds} seed" in text

"""Where the ground-truth table judges cells: retrains under its protocol, their percentile in the
report, and the supernet-ranking stage's correlations."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import kendalltau

from e2nas import ranking, report, spaces
from e2nas.retrain import GROUND_TRUTH, stage_settings
from e2nas.spaces import nb201
from e2nas.tables import fashion_mnist as gt

NB201 = spaces.get("nb201")


def small_table(n=12, seed=0) -> gt.GroundTruthTable:
    cells = [NB201.format(c) for c in NB201.sample(n, torch.Generator().manual_seed(seed), valid=True)]
    cells = list(dict.fromkeys(cells))
    acc = np.linspace(70.0, 90.0, len(cells))
    frame = pd.DataFrame({"arch": cells, "fashion_mnist_seed0": acc, "fashion_mnist_seed1": acc + 0.5})
    return gt.GroundTruthTable(frame, {"protocol": json.loads(json.dumps(gt.Protocol().__dict__, default=list))})


# ---------------------------------------------------------------- retrain under the table's protocol


def test_the_ground_truth_protocol_replaces_every_retrain_setting_and_the_split():
    table = gt.GroundTruthTable.load()
    inherited = {"protocol": GROUND_TRUTH, "epochs": 50, "channels": 64, "test_subset": 100}  # e.g. from config.yaml
    cfg, data_cfg = stage_settings(inherited, {"split_seed": 7, "subset_per_half": 100}, "fashion-mnist", "nb201")
    assert cfg == nb201.SPACE.config("retrain", {**table.protocol.retrain, "protocol": GROUND_TRUTH})
    assert (data_cfg.split_seed, data_cfg.subset_per_half) == (table.protocol.split_seed, None)
    own, _ = stage_settings({"epochs": 2}, {"split_seed": 7}, "fashion-mnist", "nb201")
    assert own.epochs == 2 and own.protocol is None


def test_the_ground_truth_protocol_on_another_dataset_is_refused_naming_it():
    with pytest.raises(ValueError, match="'cifar10'.*remove retrain.protocol"):
        stage_settings({"protocol": GROUND_TRUTH}, {}, "cifar10", "nb201")


# ---------------------------------------------------------------- the report's percentile


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_only_cells_retrained_under_the_protocol_get_a_percentile(tmp_path):
    table = small_table()
    run = tmp_path / "results" / "r"
    cell = table.frame["arch"][3]
    for method, protocol, acc in (("e2nas", GROUND_TRUTH, 80.0), ("gdas", None, 99.0)):
        write(run / "search/fashion-mnist/nb201" / method / "seed0/result.json",
              {"arch": cell, "method": method, "seed": 0, "epochs": 1, "search_seconds": 1.0, "nb201": None, "trajectory": []})
        write(run / "retrain/fashion-mnist/nb201" / method / "seed0/metrics.json",
              {"arch": cell, "test_accuracy": acc, "params": 1, "flops": 1, "train_seconds": 1.0, "protocol": protocol})
    df = report.collect_results(*report.find_run_files(run), ground_truth=table).set_index("method")
    pooled = np.sort(table.frame[["fashion_mnist_seed0", "fashion_mnist_seed1"]].to_numpy().ravel())
    assert df.loc["e2nas", "ground_truth_percentile"] == pytest.approx(100 * (pooled <= 80.0).mean())
    assert math.isnan(df.loc["gdas", "ground_truth_percentile"])  # other settings: not comparable, no percentile
    assert "Only some cells" in report.ground_truth_note(df.reset_index())
    assert "not the ground-truth table's protocol" in report.ground_truth_note(df.reset_index().assign(protocol="config"))


# ---------------------------------------------------------------- the ranking stage's numbers


def test_ranking_correlations_are_kendall_and_spearman_of_the_scores_with_the_truth(tmp_path, monkeypatch):
    table = small_table(n=20, seed=3)
    truth = table.mean()
    rng = np.random.default_rng(0)
    noisy = {c: float(truth[c] + rng.normal(0, 3)) for c in truth.index}
    # Scores a supernet would give: "good" tracks the truth with noise, "reversed" is its mirror image.
    fake = {"good": lambda c: noisy[c], "reversed": lambda c: -truth[c]}
    monkeypatch.setattr(ranking, "score", lambda path, cells, data, cfg, device: [fake[path](c) for c in cells])

    class Data:
        name, num_classes, in_channels = "fashion-mnist", 10, 1

    cfg = ranking.RankingConfig(cells=15, images=8, seed=1)
    result = ranking.rank_supernets({"warm-up": "good", "e2nas": "reversed"}, Data(), cfg, NB201, tmp_path / "r.json",
                                    ground_truth=table)
    cells = result["cells"]
    assert len(cells) == 15 == len(set(cells)) and set(cells) <= set(truth.index)
    assert cells == ranking.ranking_cells(cfg, NB201, table)  # a seeded draw, the same for every supernet
    expected = kendalltau([noisy[c] for c in cells], [truth[c] for c in cells]).statistic
    assert result["supernets"]["warm-up"]["ground_truth"]["kendall_tau"] == pytest.approx(expected)
    assert result["supernets"]["e2nas"]["ground_truth"]["kendall_tau"] == pytest.approx(-1.0)
    assert result["supernets"]["e2nas"]["ground_truth"]["spearman_rho"] == pytest.approx(-1.0)
    assert result["noise_ceiling"]["cells"] == len(table) and json.loads((tmp_path / "r.json").read_text()) == result
    flat = ranking.metrics(result)
    assert flat["e2nas_kendall_tau_ground_truth"] == pytest.approx(-1.0) and "warm-up_spearman_rho_ground_truth" in flat

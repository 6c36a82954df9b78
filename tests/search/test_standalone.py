"""What a user would do instead of a one-shot search: random search with stand-alone trainings, the zero-cost
picks (parameter count, synflow), and the trainings that judge a found cell."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from e2nas import spaces
from e2nas.data import ImageData, make_split
from e2nas.retrain import judge_summary
from e2nas.search import SearchConfig
from e2nas.search import standalone as sa
from e2nas.search.zero_cost import synflow, without_batchnorm

torch.set_num_threads(1)
NB201 = spaces.get("nb201")


def test_synflow_of_a_two_layer_network_computed_by_hand():
    """Linear(2→3) → BatchNorm → ReLU → Linear(3→1), no biases. Without BN, with |W| and an all-ones input,
    R = Σ_j |w2_j| Σ_i |w1_ji|; ∂R/∂w2_j = Σ_i |w1_ji| and ∂R/∂w1_ji = |w2_j|, so Σ |θ ⊙ ∂R/∂θ| = 2R."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.5], [-3.0, 1.0]]))
        net[3].weight.copy_(torch.tensor([[2.0, -1.0, 0.25]]))
    rows = torch.tensor([3.0, 1.0, 4.0])  # Σ_i |w1_ji|
    expected = 2 * float((torch.tensor([2.0, 1.0, 0.25]) * rows).sum())  # 2 · (6 + 1 + 1) = 16
    assert synflow(net, (2,)) == pytest.approx(expected) == 16.0
    assert net[0].weight[0, 1] == -2.0 and isinstance(net[1], nn.BatchNorm1d)  # the caller's network is untouched
    assert not any(isinstance(m, nn.BatchNorm1d) for m in without_batchnorm(net).modules())


def tiny_data(n=160) -> ImageData:
    g = torch.Generator().manual_seed(1)
    templates = torch.randn(4, 1, 8, 8, generator=g)
    y = torch.randint(4, (n,), generator=g)
    x = templates[y] + 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    return ImageData("fashion-mnist", 4, 1, 8, x, y, x[:16] * 0 + 99, y[:16], augment=False, pad=1)


@pytest.fixture
def tiny_protocol(monkeypatch):
    """The table's protocol shrunk to a few steps (the real one trains 8,000 images for 3 epochs)."""
    real, _ = sa.protocol_config(NB201)
    cfg = NB201.config("retrain", {**{k: v for k, v in vars(real).items() if k != "judge_seeds"},
                                   "epochs": 1, "batch_size": 16, "channels": 4, "train_subset": 48, "warmup_epochs": 0.0})
    monkeypatch.setattr(sa, "protocol_config", lambda space: (cfg, None))
    return cfg


def test_random_search_trains_on_the_weights_half_scores_on_the_arch_half_and_resumes(tmp_path, tiny_protocol, monkeypatch):
    data, split = tiny_data(), make_split(160, 0)
    cfg = SearchConfig(random_search_trainings=3)
    seen = []
    from e2nas import retrain

    real = retrain.run_retrain

    def spy(d, s, arch, c, seed, *a, **k):
        seen.append({"train": set(torch.as_tensor(s["weights"]).tolist()) | set(torch.as_tensor(s["arch"]).tolist()),
                     "test": d.test_y.clone(), "test_x": d.test_x})
        return real(d, s, arch, c, seed, *a, **k)

    monkeypatch.setattr(retrain, "run_retrain", spy)
    records = []
    result = sa.run_standalone("random-search", data, split, cfg, 20, 0, tmp_path / "r.json", tmp_path / "c.pt", space=NB201,
                               progress=False, on_candidate=records.append)
    weights, arch = set(split["weights"].tolist()), split["arch"][:20]
    assert len(seen) == 3 and all(s["train"] == weights for s in seen)  # the weights half only
    assert all(torch.equal(s["test"], data.train_y[arch]) for s in seen)  # scored on the arch half, never the test set
    assert not any((s["test_x"] == 99).any() for s in seen)
    cells = [c["arch"] for c in result["candidates"]]
    assert cells == [NB201.format(c) for c in NB201.sample(3, torch.Generator().manual_seed(0), valid=True)]
    best = max(result["candidates"], key=lambda c: c["score"])
    assert result["arch"] == best["arch"] and [r["training"] for r in records] == [0, 1, 2]
    assert result["cpu_seconds"] > 0 and result["trajectory"] == [] and not (tmp_path / "c.pt").exists()

    class Killed(Exception):
        pass

    def kill_second(record):
        if record["training"] == 1:
            raise Killed

    seen.clear()
    with pytest.raises(Killed):
        sa.run_standalone("random-search", data, split, cfg, 20, 0, tmp_path / "k.json", tmp_path / "k.pt", space=NB201,
                          progress=False, on_candidate=kill_second)
    seen.clear()
    again = sa.run_standalone("random-search", data, split, cfg, 20, 0, tmp_path / "k.json", tmp_path / "k.pt", space=NB201,
                              progress=False)
    assert len(seen) == 1  # only the training not checkpointed
    assert [c["score"] for c in again["candidates"]] == [c["score"] for c in result["candidates"]]


def test_overlapping_halves_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        sa.halves({"weights": torch.arange(10), "arch": torch.arange(5, 15)}, 10)


@pytest.mark.parametrize("method", ["params", "synflow"])
def test_zero_cost_picks_the_best_of_the_seeded_draw_ties_to_the_first(tmp_path, tiny_protocol, method, monkeypatch):
    data = tiny_data()
    cfg = SearchConfig(zero_cost_cells=40)
    result = sa.run_standalone(method, data, make_split(160, 0), cfg, 20, 3, tmp_path / "r.json", tmp_path / "c.pt", space=NB201)
    drawn = [NB201.format(c) for c in NB201.sample(40, torch.Generator().manual_seed(3), valid=True)]
    scores = [sa.zero_cost_score(method, NB201, c, tiny_protocol, data, 3) for c in drawn]
    assert result["arch"] == drawn[scores.index(max(scores))] and result["cells_scored"] == 40
    assert json.loads((tmp_path / "r.json").read_text())["arch"] == result["arch"]
    # Ties go to the first drawn: every cell scoring the same picks the first one.
    monkeypatch.setattr(sa, "zero_cost_score", lambda *a: 1.0)
    tied = sa.run_standalone(method, data, make_split(160, 0), cfg, 20, 3, tmp_path / "t.json", tmp_path / "t.pt", space=NB201)
    assert tied["arch"] == drawn[0]


def test_params_prefers_convolutions_and_synflow_rewards_paths():
    data = tiny_data()
    cfg = NB201.config("retrain", {"channels": 4})
    convs = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    free = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|"
    for method in ("params", "synflow"):
        assert sa.zero_cost_score(method, NB201, convs, cfg, data, 0) > sa.zero_cost_score(method, NB201, free, cfg, data, 0)


def test_a_found_cell_judged_by_several_trainings(tmp_path):
    cell = NB201.format(NB201.sample(1, torch.Generator().manual_seed(0))[0])
    files = []
    for seed, acc in ((100, 80.0), (101, 82.0), (102, 84.5)):
        files.append(tmp_path / f"{seed}.json")
        files[-1].write_text(json.dumps({"arch": cell, "space": "nb201", "test_accuracy": acc, "params": 10, "flops": 20,
                                         "train_seconds": 30.0, "dataset": "fashion-mnist", "seed": seed, "epochs": 3,
                                         "protocol": "ground-truth", "test_images": 10000, "history": {}}))
    metrics = judge_summary(cell, files, tmp_path / "m.json", NB201)
    assert metrics["test_accuracy"] == pytest.approx(82.1666, abs=1e-3) and metrics["train_seconds"] == 90.0
    assert [t["seed"] for t in metrics["judge_trainings"]] == [100, 101, 102]
    other = NB201.format(NB201.sample(1, torch.Generator().manual_seed(5))[0])
    with pytest.raises(Exception, match="trained"):
        judge_summary(other, files, tmp_path / "x.json", NB201)

"""Final retraining of a DARTS genotype as DARTS's evaluation network: metrics, the auxiliary head,
the drop-path ramp, Cutout, exact resume, the random reference cell, config checks."""

from __future__ import annotations

import json

import pytest
import torch

from e2nas.checkpoint import CheckpointError, safe_load
from e2nas.data import ImageData, make_split
from e2nas.layers import count_flops
from e2nas.retrain import build_network, found_arch, run_retrain
from e2nas.spaces import darts
from e2nas.spaces.darts.network import count_params_darts

torch.set_num_threads(1)

V2 = darts.format_arch(darts.parse_arch(darts.DARTS_V2))  # canonical text of DARTS-V2
OTHER = darts.format_arch(darts.sample_archs(1, torch.Generator().manual_seed(1))[0].tolist())


def synthetic_data(n=96, classes=4, size=8, channels=1, seed=0) -> ImageData:
    """Class templates plus noise, as tests/test_retrain.py builds them."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, channels, size, size, generator=g)

    def draw(m):
        y = torch.randint(classes, (m,), generator=g)
        return templates[y] + 0.3 * torch.randn(m, channels, size, size, generator=g), y

    (train_x, train_y), (test_x, test_y) = draw(n), draw(n // 2)
    return ImageData("synthetic", classes, channels, size, train_x, train_y, test_x, test_y, augment=True, pad=1)


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.fixture(scope="module")
def split(data):
    return make_split(len(data.train_y), seed=0, subset_per_half=32)


def small_cfg(**kw):
    return darts.SPACE.config("retrain", {"epochs": 2, "batch_size": 16, "lr": 0.05, "channels": 4, "layers": 3, **kw})


def retrain(data, split, tmp_path, cfg, name="run", arch=V2, **kw):
    paths = {
        "metrics_path": tmp_path / name / "metrics.json",
        "checkpoint_path": tmp_path / "ckpt" / f"{name}.pt",
        "model_path": tmp_path / name / "model.pt",
    }
    metrics, history = run_retrain(data, split, arch, cfg, seed=3, progress=False, space="darts", **paths, **kw)
    return paths, metrics, history


def test_metrics_genotype_params_and_flops(data, split, tmp_path):
    cfg = small_cfg()
    paths, metrics, history = retrain(data, split, tmp_path, cfg, arch=darts.DARTS_V2)  # as the paper prints it
    assert json.loads(paths["metrics_path"].read_text()) == metrics
    assert metrics["arch"] == V2 and metrics["space"] == "darts" and metrics["test_images"] == 48
    net = build_network("darts", V2, cfg, 4, 1, seed=3)
    assert metrics["params"] == count_params_darts(net) and metrics["flops"] == count_flops(net, (1, 8, 8))
    assert history["epoch"] == [0, 1] and all(torch.isfinite(torch.tensor(history["loss"])))
    assert not paths["checkpoint_path"].exists()
    saved = safe_load(paths["model_path"])
    assert saved["arch"] == V2 and saved["space"] == "darts" and set(saved["model"]) == set(net.state_dict())
    # The 32-choice encoding names the same network.
    _, by_encoding, _ = retrain(data, split, tmp_path, cfg, name="enc", arch=darts.parse_arch(V2))
    assert by_encoding["arch"] == V2 and by_encoding["history"]["loss"] == metrics["history"]["loss"]


def test_params_exclude_the_auxiliary_head_and_flops_skip_it():
    plain = build_network("darts", V2, small_cfg(), 10, 3, seed=0)
    with_aux = build_network("darts", V2, small_cfg(auxiliary_weight=0.4), 10, 3, seed=0)
    head = sum(p.numel() for p in with_aux.auxiliary_head.parameters())
    assert head > 0 and sum(p.numel() for p in with_aux.parameters()) == count_params_darts(plain) + head
    assert count_params_darts(with_aux) == count_params_darts(plain)
    assert count_flops(with_aux, (3, 32, 32)) == count_flops(plain, (3, 32, 32))


def test_drop_path_ramps_per_epoch_and_acts(data, split, tmp_path):
    _, _, ramp = retrain(data, split, tmp_path, small_cfg(epochs=3, drop_path_prob=0.3), name="ramp")
    assert ramp["drop_path_prob"] == pytest.approx([0.0, 0.1, 0.2])
    _, _, off = retrain(data, split, tmp_path, small_cfg(epochs=3), name="off")
    assert off["drop_path_prob"] == [0.0, 0.0, 0.0]
    # Epoch 0 trains at probability 0 in both runs; from epoch 1 on the masks change the training.
    assert ramp["loss"][0] == off["loss"][0]
    assert ramp["loss"][1] != off["loss"][1]


def test_auxiliary_head_changes_the_training_loss_not_the_test_path(tmp_path):
    data = synthetic_data(n=48, size=32, channels=3)  # DARTS's head needs an 8x8 map: 32x32 images
    split = make_split(48, seed=0, subset_per_half=16)
    _, no_aux, _ = retrain(data, split, tmp_path, small_cfg(epochs=1, channels=2), name="no_aux")
    _, aux, _ = retrain(data, split, tmp_path, small_cfg(epochs=1, channels=2, auxiliary_weight=0.4), name="aux")
    assert aux["history"]["loss"][0] != no_aux["history"]["loss"][0]
    assert aux["params"] == no_aux["params"] and aux["flops"] == no_aux["flops"]
    # Same initial weights (both nets have the head), so only the weight of its loss term differs.
    _, heavier, _ = retrain(data, split, tmp_path, small_cfg(epochs=1, channels=2, auxiliary_weight=0.8), name="aux8")
    assert heavier["history"]["loss"][0] > aux["history"]["loss"][0]

    # Testing runs the main head only: wrecking the auxiliary head leaves the test logits as they are.
    net = build_network("darts", V2, small_cfg(channels=2, auxiliary_weight=0.4), 4, 3, seed=0).eval()
    x = data.test_x[:4]
    before = net(x)
    with torch.no_grad():
        for p in net.auxiliary_head.parameters():
            p.fill_(float("nan"))
    assert torch.equal(net(x), before) and net.forward_with_aux(x)[1] is None


def test_auxiliary_head_on_small_images_says_what_to_do(data, split, tmp_path):
    with pytest.raises(ValueError, match="retrain.auxiliary_weight: 0"):
        retrain(data, split, tmp_path, small_cfg(epochs=1, auxiliary_weight=0.4))


def test_cutout_changes_training(data, split, tmp_path):
    _, plain, _ = retrain(data, split, tmp_path, small_cfg(epochs=1), name="plain")
    _, cut, _ = retrain(data, split, tmp_path, small_cfg(epochs=1, cutout=4), name="cut")
    assert cut["history"]["loss"] != plain["history"]["loss"]


def test_resume_after_a_kill_matches_an_uninterrupted_run(data, split, tmp_path):
    cfg = small_cfg(epochs=3, drop_path_prob=0.4, cutout=3)
    full, full_metrics, _ = retrain(data, split, tmp_path, cfg, name="full")

    def die_after_epoch_1(record):  # epoch 0 drops nothing (probability 0): die after one that does
        if record["epoch"] == 1:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        retrain(data, split, tmp_path, cfg, name="killed", on_epoch=die_after_epoch_1)
    assert (tmp_path / "ckpt" / "killed.pt").exists()
    # Another genotype (or space) must not pick up this checkpoint.
    with pytest.raises(CheckpointError, match="arch"):
        retrain(data, split, tmp_path, cfg, name="killed", arch=OTHER)

    epochs_run = []
    paths, metrics, _ = retrain(data, split, tmp_path, cfg, name="killed", on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [2]
    assert metrics["history"]["drop_path_prob"] == full_metrics["history"]["drop_path_prob"]
    assert metrics["history"]["loss"] == pytest.approx(full_metrics["history"]["loss"], abs=1e-6)
    assert metrics["test_accuracy"] == full_metrics["test_accuracy"]
    resumed, uninterrupted = safe_load(paths["model_path"])["model"], safe_load(full["model_path"])["model"]
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_found_arch_draws_a_valid_seeded_genotype(tmp_path):
    a, b, c = (found_arch(None, s, space="darts") for s in (0, 0, 1))
    assert a == b != c and darts.is_valid(darts.parse_arch(a)) and darts.format_arch(darts.parse_arch(a)) == a
    assert "~" in found_arch(None, 0, space="nb201")

    # The reference is a genotype a DARTS search could return: never a `none` op.
    draws = [darts.parse_arch(found_arch(None, s, space="darts")) for s in range(50)]
    assert all(darts.NONE not in cell[1::2] for cell in draws)

    result = tmp_path / "result.json"
    result.write_text(json.dumps({"arch": V2, "space": "darts"}))
    assert found_arch(result, 0, space="darts") == V2
    with pytest.raises(CheckpointError, match="space"):
        found_arch(result, 0, space="nb201")
    with pytest.raises(ValueError, match="space"):
        found_arch(None, 0, space="nasbench101")


@pytest.mark.parametrize(
    "field, value",
    [("layers", 0), ("auxiliary_weight", -0.1), ("drop_path_prob", 1.0), ("drop_path_prob", -0.1), ("cutout", -1)],
)
def test_invalid_config_values_name_the_key(field, value):
    with pytest.raises(ValueError, match=f"retrain.{field}"):
        darts.SPACE.config("retrain", {field: value})


def test_unknown_space_is_refused(data, split, tmp_path):
    with pytest.raises(ValueError, match="space"):
        run_retrain(data, split, V2, small_cfg(), 0, tmp_path / "m.json", tmp_path / "c.pt", progress=False, space="dart")

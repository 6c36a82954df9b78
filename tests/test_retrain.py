"""Final retraining: metrics.json, learning, exact resume after a kill, divergence, subsets."""

from __future__ import annotations

import json

import pytest
import torch

from e2nas.checkpoint import DivergedError, safe_load
from e2nas.data import ImageData, make_split
from e2nas.layers import count_flops, count_params
from e2nas.retrain import RetrainConfig, build_network, run_retrain
from e2nas.spaces import nb201
from e2nas.spaces.nb201 import FixedNet

torch.set_num_threads(1)

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def synthetic_data(n=256, classes=4, size=8, seed=0) -> ImageData:
    """Class templates plus noise: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, 1, size, size, generator=g)

    def draw(m):
        y = torch.randint(classes, (m,), generator=g)
        return templates[y] + 0.3 * torch.randn(m, 1, size, size, generator=g), y

    (train_x, train_y), (test_x, test_y) = draw(n), draw(n // 2)
    return ImageData("synthetic", classes, 1, size, train_x, train_y, test_x, test_y, augment=True, pad=1)


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.fixture(scope="module")
def split(data):
    return make_split(len(data.train_y), seed=0, subset_per_half=100)


def small_cfg(**kw) -> RetrainConfig:
    return nb201.SPACE.config("retrain", {"epochs": 3, "batch_size": 25, "lr": 0.05, "channels": 4, "cells_per_stage": 1, **kw})


def retrain(data, split, tmp_path, cfg, name="run", arch=ARCH, **kw):
    paths = {
        "metrics_path": tmp_path / name / "metrics.json",
        "checkpoint_path": tmp_path / "ckpt" / f"{name}.pt",
        "model_path": tmp_path / name / "model.pt",
    }
    metrics, history = run_retrain(data, split, arch, cfg, seed=3, progress=False, space="nb201", **paths, **kw)
    return paths, metrics, history


def test_metrics_file_and_learning(data, split, tmp_path):
    cfg = small_cfg(epochs=4)
    paths, metrics, history = retrain(data, split, tmp_path, cfg)
    on_disk = json.loads(paths["metrics_path"].read_text())
    assert on_disk == metrics
    assert {"arch", "test_accuracy", "params", "flops", "train_seconds"} <= set(metrics)
    assert metrics["arch"] == ARCH and metrics["test_images"] == 128
    net = FixedNet(ARCH, 4, 1, 4, 1)
    assert metrics["params"] == count_params(net) and metrics["flops"] == count_flops(net, (1, 8, 8))
    assert metrics["train_seconds"] == pytest.approx(sum(history["seconds"]))
    # Both halves of the split: 200 images, 8 steps of 25 per epoch; the templates are easy to learn.
    assert history["epoch"] == [0, 1, 2, 3]
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert metrics["test_accuracy"] > 60.0
    assert not paths["checkpoint_path"].exists()
    assert set(safe_load(paths["model_path"])["model"]) == set(net.state_dict())


def test_resume_after_a_kill_does_not_redo_epochs_and_matches(data, split, tmp_path):
    cfg = small_cfg()
    full, full_metrics, _ = retrain(data, split, tmp_path, cfg, name="full")

    def die_after_epoch_0(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        retrain(data, split, tmp_path, cfg, name="killed", on_epoch=die_after_epoch_0)
    assert (tmp_path / "ckpt" / "killed.pt").exists() and not (tmp_path / "killed" / "metrics.json").exists()

    epochs_run = []
    paths, metrics, _ = retrain(data, split, tmp_path, cfg, name="killed", on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [1, 2]
    assert metrics["test_accuracy"] == full_metrics["test_accuracy"]
    assert metrics["history"]["loss"] == pytest.approx(full_metrics["history"]["loss"], abs=1e-6)
    resumed, uninterrupted = safe_load(paths["model_path"])["model"], safe_load(full["model_path"])["model"]
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_subsets_and_seeded_init(data, split, tmp_path):
    _, metrics, history = retrain(data, split, tmp_path, small_cfg(epochs=1, train_subset=50, test_subset=30))
    assert metrics["test_images"] == 30
    assert len(history["epoch"]) == 1
    a = build_network("nb201", (3,) * 6, small_cfg(), 4, 1, seed=3).state_dict()
    b = build_network("nb201", (3,) * 6, small_cfg(), 4, 1, seed=3).state_dict()
    c = build_network("nb201", (3,) * 6, small_cfg(), 4, 1, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.0.weight"], c["stem.0.weight"])


def test_nan_loss_stops_naming_the_epoch(split, tmp_path):
    bad = synthetic_data()
    bad.train_x[:] = float("nan")
    with pytest.raises(DivergedError, match="epoch 1 "):
        retrain(bad, split, tmp_path, small_cfg(epochs=1))
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_bad_inputs(data, split, tmp_path):
    with pytest.raises(ValueError, match="malformed"):
        retrain(data, split, tmp_path, small_cfg(), arch="|nor_conv_3x3~0|")
    with pytest.raises(ValueError):
        RetrainConfig(train_subset=0)
    with pytest.raises(TypeError):
        RetrainConfig(**{"epochs": 1, "learning_rate": 0.1})


def test_step_schedule_warms_up_then_anneals_to_lr_min():
    from e2nas.training import step_schedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = step_schedule(opt, epochs=2, steps_per_epoch=10, lr_min=0.001, warmup_epochs=0.5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.1 * k / 6 for k in range(1, 6)])  # linear warm-up over 5 steps
    assert lrs[5] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.001)  # cosine down to lr_min at the last step
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))


def test_per_step_schedule_resumes_exactly(data, split, tmp_path):
    """The per-step schedule is checkpointed with the epoch: a killed run resumes to the same model."""
    cfg = small_cfg(lr_schedule="step", warmup_epochs=0.5)
    _, full, _ = retrain(data, split, tmp_path, cfg, name="full")
    assert full["history"]["lr"][0] < cfg.lr  # the first epoch starts in the warm-up

    def die_after_epoch_0(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        retrain(data, split, tmp_path, cfg, name="killed", on_epoch=die_after_epoch_0)
    _, resumed, _ = retrain(data, split, tmp_path, cfg, name="killed")
    assert resumed["history"]["lr"] == pytest.approx(full["history"]["lr"])
    assert resumed["test_accuracy"] == full["test_accuracy"]


def test_warmup_epochs_need_the_step_schedule():
    with pytest.raises(ValueError, match="warmup_epochs"):
        RetrainConfig(warmup_epochs=1.0)
    with pytest.raises(ValueError, match="lr_schedule"):
        RetrainConfig(lr_schedule="linear")

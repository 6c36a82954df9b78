"""Supernet warm-up: learning on sampled paths, every op trained, exact resume, divergence, the output file."""

from __future__ import annotations

import pytest
import torch

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, DivergedError, atomic_save
from e2nas.data import ImageData, make_split
from e2nas.spaces.nb201 import NUM_EDGES, SuperNet
from e2nas.warmup import (
    SupernetConfig,
    WarmupConfig,
    build_supernet,
    evaluate_path,
    load_warmup,
    run_warmup,
)

torch.set_num_threads(1)

NET = spaces.get("nb201").config("supernet", {"channels": 4, "cells_per_stage": 1})


def synthetic_data(n=384, classes=4, size=8, seed=0, augment=True) -> ImageData:
    """Class templates plus noise: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(classes, 1, size, size, generator=g)

    def draw(m):
        y = torch.randint(classes, (m,), generator=g)
        return templates[y] + 0.3 * torch.randn(m, 1, size, size, generator=g), y

    (train_x, train_y), (test_x, test_y) = draw(n), draw(n // 4)
    return ImageData("synthetic", classes, 1, size, train_x, train_y, test_x, test_y, augment=augment, pad=1)


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.fixture(scope="module")
def split(data):
    return make_split(len(data.train_y), seed=0)


def warm(data, split, tmp_path, cfg, name="run", **kw):
    out = tmp_path / name / "warmup.pt"
    ckpt = tmp_path / "ckpt" / f"{name}.pt"
    history = run_warmup(data, split, NET, cfg, seed=7, out_path=out, checkpoint_path=ckpt, progress=False, **{"space": "nb201", **kw})
    return out, ckpt, history


def test_loss_falls_and_every_parametric_op_is_trained(data, split, tmp_path):
    cfg = WarmupConfig(epochs=5, batch_size=16)  # 192 images / 16 = 12 steps per epoch: 60 steps
    out, ckpt, history = warm(data, split, tmp_path, cfg)
    assert history["epoch"] == [0, 1, 2, 3, 4]
    # Each epoch averages other sampled paths (some cut the network with `none`), so compare
    # the last two epochs with the first.
    assert sum(history["loss"][-2:]) / 2 < 0.85 * history["loss"][0]
    assert min(history["accuracy"][-2:]) > history["accuracy"][0] + 10
    assert history["lr"][0] == pytest.approx(0.025) and history["lr"][-1] < history["lr"][0]
    assert out.exists() and not ckpt.exists()

    start = build_supernet(NET, data.num_classes, data.in_channels, seed=7, space="nb201")
    trained, meta = load_warmup(out, "cpu")
    # SGD touches an op's weights only in steps where it was on the path and received a gradient.
    for e in range(NUM_EDGES):
        for k in (2, 3):  # nor_conv_1x1, nor_conv_3x3: the parametric ops
            before, after = start.op_parameters(e, k), trained.op_parameters(e, k)
            assert before and all(not torch.equal(b, a) for b, a in zip(before, after)), (e, k)
    # A fixed path that was never trained as a whole still scores better than at the start.
    conv_path = (3,) * NUM_EDGES
    assert evaluate_path(trained, data.test_x, data.test_y, conv_path) > evaluate_path(start, data.test_x, data.test_y, conv_path) + 10


def test_resume_after_a_kill_does_not_redo_epochs_and_matches(data, split, tmp_path):
    cfg = WarmupConfig(epochs=3, batch_size=32)
    full_out, _, full_history = warm(data, split, tmp_path, cfg, name="full")

    def die_after_epoch_1(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt("killed")

    with pytest.raises(KeyboardInterrupt):
        warm(data, split, tmp_path, cfg, name="killed", on_epoch=die_after_epoch_1)
    assert (tmp_path / "ckpt" / "killed.pt").exists() and not (tmp_path / "killed" / "warmup.pt").exists()

    epochs_run = []
    out, ckpt, history = warm(data, split, tmp_path, cfg, name="killed", on_epoch=lambda r: epochs_run.append(r["epoch"]))
    assert epochs_run == [2]
    assert history["loss"] == pytest.approx(full_history["loss"], abs=1e-6)
    resumed, _ = load_warmup(out)
    full, _ = load_warmup(full_out)
    for (name, a), (_, b) in zip(resumed.state_dict().items(), full.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert not ckpt.exists()


def test_checkpoint_of_other_settings_is_refused(data, split, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        warm(data, split, tmp_path, WarmupConfig(epochs=2, batch_size=32), on_epoch=lambda r: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(CheckpointError, match="other settings"):
        warm(data, split, tmp_path, WarmupConfig(epochs=2, batch_size=32, lr=0.1))


def test_nan_loss_stops_naming_the_epoch(split, tmp_path):
    bad = synthetic_data()
    bad.train_x[:] = float("nan")
    with pytest.raises(DivergedError, match="epoch 1 "):
        warm(bad, split, tmp_path, WarmupConfig(epochs=2, batch_size=32))
    assert not (tmp_path / "run" / "warmup.pt").exists()


def test_output_file_and_load(data, split, tmp_path):
    out, _, history = warm(data, split, tmp_path, WarmupConfig(epochs=1, batch_size=32))
    net, meta = load_warmup(out, "cpu")
    assert isinstance(net, SuperNet) and (net.C, net.N) == (4, 1)
    assert meta["dataset"] == "synthetic" and meta["seed"] == 7 and meta["history"] == history
    assert meta["supernet"] == {"channels": 4, "cells_per_stage": 1, "split_edge": None, "num_classes": 4, "in_channels": 1}
    assert meta["space"] == "nb201"
    assert torch.equal(meta["split"]["weights"], split["weights"]) and torch.equal(meta["split"]["arch"], split["arch"])

    acc = evaluate_path(net, data.test_x, data.test_y, [3] * 6, batch_size=40)
    assert 0.0 <= acc <= 100.0 and net.training
    assert acc == evaluate_path(net, data.test_x, data.test_y, (3,) * 6, batch_size=40)


def test_load_refuses_corrupt_or_mismatched_files(tmp_path):
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_warmup(torn)
    net = SuperNet(4, 1, 4, 1)
    wrong = tmp_path / "wrong.pt"
    atomic_save(
        {"model": net.state_dict(), "split": {}, "supernet": {"channels": 8, "cells_per_stage": 1, "num_classes": 4, "in_channels": 1}},
        wrong,
    )
    with pytest.raises(CheckpointError, match="size it declares"):
        load_warmup(wrong)
    with pytest.raises(CheckpointError, match="lacks"):
        atomic_save({"model": net.state_dict()}, wrong)
        load_warmup(wrong)


def test_configs_reject_nonsense():
    with pytest.raises(ValueError):
        WarmupConfig(epochs=0)
    with pytest.raises(ValueError):
        WarmupConfig(epochs=1, lr=0.01, lr_min=0.1)
    with pytest.raises(ValueError):
        SupernetConfig(channels=0)

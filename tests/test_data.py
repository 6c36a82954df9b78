"""e2nas.data: each format read from small files written in that format, the split, augmentation."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from e2nas import data
from e2nas.checkpoint import CheckpointError
from e2nas.data import (
    BatchIterator,
    DatasetError,
    augment_batch,
    cutout_batch,
    load_dataset,
    load_split,
    make_split,
    save_split,
    subset_test,
)

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)


# ---------------------------------------------------------------- files in the real formats


def write_idx_gz(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Gzipped IDX files: magic 2051 (images) / 2049 (labels), big-endian sizes, then uint8 data."""
    n, h, w = images.shape
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def fake_fashion(folder: Path, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train)
    te_x, te_y = rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)
    write_idx_gz(folder, "train", tr_x, tr_y)
    write_idx_gz(folder, "t10k", te_x, te_y)
    return tr_x, tr_y, te_x, te_y


def dump(obj, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def fake_cifar10(root: Path, per_batch=3, n_test=4):
    """cifar-10-batches-py with 5 training batches, a test batch and batches.meta (the real keys)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = []
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        n = n_test if name == "test_batch" else per_batch
        x = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        dump({"batch_label": name, "labels": y, "data": x, "filenames": [f"{name}_{j}.png" for j in range(n)]},
             folder / name)
        batches.append((x, y))
    dump({"label_names": [f"class{k}" for k in range(10)], "num_cases_per_batch": per_batch, "num_vis": 3072},
         folder / "batches.meta")
    return batches


def fake_imagenet16(folder: Path, per_file=6):
    """NB201's ImageNet16: train_data_batch_1..10 and val_data, labels 1-based up to 1000."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    files = {}
    for name in data.IMAGENET16_FILES:
        x = rng.integers(0, 256, (per_file, 3 * 16 * 16), dtype=np.uint8)
        y = [1, 120, 121, 1000, 5, 60][:per_file]  # two of six outside ImageNet16-120
        dump({"data": x, "labels": y}, folder / name)
        files[name] = (x, np.array(y))
    return files


# ---------------------------------------------------------------- fashion-mnist


def test_fashion_mnist_from_gzipped_idx_decompressed_once(tmp_path):
    tr_x, tr_y, te_x, te_y = fake_fashion(tmp_path / "src")
    cache = tmp_path / "cache"
    d = load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 28)
    assert d.train_x.shape == (12, 1, 28, 28) and d.test_x.shape == (5, 1, 28, 28)
    assert d.train_x.dtype == torch.float32 and d.train_y.dtype == torch.long
    assert torch.equal(d.train_y, torch.as_tensor(tr_y)) and torch.equal(d.test_y, torch.as_tensor(te_y))
    # Normalised with the dataset's constants: decoding undoes exactly to the written pixels.
    pixels = d.train_x * 0.3530 + 0.2860
    assert torch.allclose(pixels * 255, torch.as_tensor(tr_x, dtype=torch.float32)[:, None], atol=1e-3)

    raw = cache / "FashionMNIST" / "raw"
    stamps = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    assert sorted(stamps) == sorted(data.FASHION_FILES)  # no temporary files left behind
    again = load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == stamps  # not decompressed again
    assert torch.equal(again.train_x, d.train_x)


def test_fashion_mnist_found_through_env_and_debian_layout(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "env" / "fashion-mnist")  # the Debian package's layout under $E2NAS_DATA_DIR
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    d = load_dataset("fashion-mnist", download=False)
    assert len(d.train_y) == 12
    # $E2NAS_DATA_DIR doubles as the cache when no cache_dir is given.
    assert (tmp_path / "env" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.mark.skipif(
    not Path(data.DEBIAN_FASHION_MNIST, "train-images-idx3-ubyte.gz").is_file(),
    reason="the Debian package dataset-fashion-mnist is not installed",
)
def test_real_debian_fashion_mnist(tmp_path):
    d = load_dataset("fashion-mnist", cache_dir=tmp_path, download=False)
    assert d.train_x.shape == (60000, 1, 28, 28) and d.test_x.shape == (10000, 1, 28, 28)
    assert d.train_y.unique().tolist() == list(range(10))
    assert abs(d.train_x.mean().item()) < 0.01 and abs(d.train_x.std().item() - 1) < 0.01  # constants fit


def test_missing_fashion_mnist_names_folder_and_fix(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", root=tmp_path / "nowhere", cache_dir=tmp_path / "cache", download=False)
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and str(tmp_path / "cache") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and data.ENV_VAR in msg


# ---------------------------------------------------------------- cifar / imagenet16


def test_cifar10_from_pickled_batches(tmp_path):
    batches = fake_cifar10(tmp_path)
    d = load_dataset("cifar10", root=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert (d.num_classes, d.in_channels, d.image_size, d.pad) == (10, 3, 32, 4)
    assert d.train_x.shape == (15, 3, 32, 32) and d.test_x.shape == (4, 3, 32, 32)
    x0, y0 = batches[0]
    assert d.train_y[:3].tolist() == y0
    # The flattened rows are channels-first: red plane, then green, then blue.
    mean = torch.tensor([125.3, 123.0, 113.9]).view(3, 1, 1)
    std = torch.tensor([63.0, 62.1, 66.7]).view(3, 1, 1)
    pixels = d.train_x[0] * std + mean
    assert torch.allclose(pixels, torch.as_tensor(x0[0].reshape(3, 32, 32), dtype=torch.float32), atol=1e-3)
    assert d.test_y.tolist() == batches[-1][1]


def test_missing_cifar_names_folder_and_fix(tmp_path):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar100", root=tmp_path, cache_dir=tmp_path / "cache", download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-100-python") in msg and data.ENV_VAR in msg and "network" in msg


def test_imagenet16_120_keeps_first_120_classes(tmp_path):
    files = fake_imagenet16(tmp_path / "ImageNet16")
    d = load_dataset("imagenet16-120", root=tmp_path, cache_dir=tmp_path / "cache")
    assert (d.num_classes, d.in_channels, d.image_size, d.pad) == (120, 3, 16, 2)
    assert d.train_x.shape == (10 * 4, 3, 16, 16) and d.test_x.shape == (4, 3, 16, 16)
    assert d.test_y.tolist() == [0, 119, 4, 59]
    assert d.train_y.min() >= 0 and d.train_y.max() <= 119
    x, _ = files["val_data"]
    mean = torch.tensor([122.68, 116.66, 104.00]).view(3, 1, 1)
    std = torch.tensor([63.22, 61.26, 65.09]).view(3, 1, 1)
    assert torch.allclose(d.test_x[1] * std + mean, torch.as_tensor(x[1].reshape(3, 16, 16), dtype=torch.float32),
                          atol=1e-3)


def test_missing_imagenet16_and_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="ImageNet16"):
        load_dataset("imagenet16-120", root=tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="datasets.*fashion-mnist"):
        load_dataset("mnist", root=tmp_path)


# ---------------------------------------------------------------- split


def test_split_disjoint_seeded_and_saved(tmp_path):
    s = make_split(101, seed=3)
    assert len(s["weights"]) == len(s["arch"]) == 50
    assert not set(s["weights"].tolist()) & set(s["arch"].tolist())
    assert torch.equal(make_split(101, seed=3)["weights"], s["weights"])
    assert not torch.equal(make_split(101, seed=4)["weights"], s["weights"])
    small = make_split(101, seed=3, subset_per_half=7)
    assert len(small["weights"]) == len(small["arch"]) == 7
    assert len(make_split(10, seed=0, subset_per_half=1000)["arch"]) == 5

    save_split(s, tmp_path / "split.pt")
    back = load_split(tmp_path / "split.pt")
    assert torch.equal(back["weights"], s["weights"]) and torch.equal(back["arch"], s["arch"])
    torch.save({"other": 1}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError):
        load_split(tmp_path / "bad.pt")


def test_subset_test():
    d = data.ImageData("x", 2, 1, 4, torch.zeros(3, 1, 4, 4), torch.zeros(3), torch.arange(10.0).view(10, 1, 1, 1)
                       .expand(10, 1, 4, 4), torch.arange(10), True, 1)
    x, y = subset_test(d, 4)
    assert len(y) == 4 and len(set(y.tolist())) == 4 and torch.equal(x[:, 0, 0, 0], y.float())
    assert len(subset_test(d, None)[1]) == 10


# ---------------------------------------------------------------- augmentation and batches


def test_augment_matches_hand_computed_crop_and_flip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5) + 1
    pad = 2
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = augment_batch(x, g, pad)
    assert out.shape == x.shape
    # Replay the draws in augment_batch's order: row offsets, column offsets, flips.
    g.set_state(state)
    dy = torch.randint(0, 2 * pad + 1, (2,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (2,), generator=g)
    flips = torch.rand(2, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(2):
        crop = padded[i, :, dy[i] : dy[i] + 4, dx[i] : dx[i] + 5]
        expect = crop.flip(-1) if flips[i] else crop
        assert torch.equal(out[i], expect)
    g.set_state(state)
    assert torch.equal(augment_batch(x, g, pad), out)  # same state, same batch


def test_augment_actually_moves_pixels():
    x = torch.randn(64, 1, 6, 6) + 5  # no zero pixels, so padding shows
    out = augment_batch(x, torch.Generator().manual_seed(1), pad=2)
    assert (out == 0).any(dim=(1, 2, 3)).sum() > 32  # most crops reach into the padding
    flipped = augment_batch(x, torch.Generator().manual_seed(1), pad=0)
    same = (flipped == x).all(dim=(1, 2, 3))
    assert torch.equal(flipped[~same], x[~same].flip(-1)) and 10 < same.sum() < 54


def test_batch_iterator_covers_each_sample_once_and_replays():
    x = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 3, 3).contiguous()
    y = torch.arange(10)
    it = BatchIterator(x, y, 4, "cpu", torch.Generator().manual_seed(0), drop_last=False)
    assert len(it) == 3
    seen = torch.cat([yb for _, yb in it])
    assert sorted(seen.tolist()) == list(range(10))
    assert len(BatchIterator(x, y, 4, "cpu", drop_last=True)) == 2

    g = torch.Generator().manual_seed(5)
    it = BatchIterator(x, y, 4, "cpu", g, augment=True, pad=1)
    list(it)  # one epoch, then save the state as a caller does at epoch end
    state = g.get_state()
    first = [(xb.clone(), yb.clone()) for xb, yb in it]
    g.set_state(state)
    second = list(it)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    assert all(xb.shape == (4, 1, 3, 3) for xb, _ in second)
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(x, y, 11, "cpu")


@pytest.mark.parametrize("size", [4, 3])
def test_cutout_zeros_one_clipped_square_per_image(size):
    h, w, b = 9, 7, 200
    x = torch.rand(b, 2, h, w) + 1  # no zero pixels before
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    out = cutout_batch(x, g, size)
    g.set_state(state)  # replay the centres: rows first, then columns
    cy, cx = torch.randint(0, h, (b,), generator=g), torch.randint(0, w, (b,), generator=g)
    for i in range(b):
        top, left = int(cy[i]) - size // 2, int(cx[i]) - size // 2
        expect = torch.ones(h, w, dtype=torch.bool)
        expect[max(top, 0) : max(top + size, 0), max(left, 0) : max(left + size, 0)] = False
        assert torch.equal(out[i] != 0, expect.expand(2, h, w)), i
        assert torch.equal(out[i][:, expect], x[i][:, expect])  # everything else untouched
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert zeros.max() == size * size and zeros.min() < size * size  # whole squares inside, clipped at borders
    g.set_state(state)
    assert torch.equal(cutout_batch(x, g, size), out)  # seeded: same state, same squares
    assert not torch.equal(cutout_batch(x, torch.Generator().manual_seed(1), size), out)


def test_cutout_off_keeps_the_augmentation_stream():
    x = torch.randn(16, 1, 6, 6)
    g0, g1 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(augment_batch(x, g0, 2, cutout=0), augment_batch(x, g1, 2))
    assert torch.equal(g0.get_state(), g1.get_state())
    assert cutout_batch(x, g0, 0) is x and torch.equal(g0.get_state(), g1.get_state())
    # With cutout, the crop and flip draws come first and are the same; the squares come after.
    state = g0.get_state()
    cut = augment_batch(x, g0, 2, cutout=3)
    g0.set_state(state)
    plain = augment_batch(x, g0, 2)
    assert torch.equal(cut, cutout_batch(plain, g0, 3))


def test_batch_iterator_applies_cutout_with_or_without_crop_and_flip():
    x, y = torch.rand(12, 1, 8, 8) + 1, torch.arange(12)
    for augment in (True, False):
        it = BatchIterator(x, y, 4, "cpu", torch.Generator().manual_seed(0), augment=augment, pad=0, cutout=2)
        for xb, _ in it:
            assert ((xb == 0).sum(dim=(1, 2, 3)) >= 1).all()  # every image lost a (maybe clipped) square
    with pytest.raises(ValueError, match="cutout"):
        BatchIterator(x, y, 4, "cpu", cutout=-1)

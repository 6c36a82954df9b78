"""The decoded dataset cache carries the digests of its files and sources, checked at every load (issue 29, item 3)."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest
import torch

from e2nas import data
from e2nas.data import DatasetError, load_dataset
from test_data import fake_fashion, write_idx_gz


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)


def test_a_tampered_cache_is_refused_naming_the_file_and_the_fix(tmp_path):
    _, tr_y, _, _ = fake_fashion(tmp_path / "src")
    cache = tmp_path / "cache"
    load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    digests = json.loads((cache / "FashionMNIST" / data.DIGESTS_FILE).read_text())["files"]
    assert sorted(digests) == sorted(data.FASHION_FILES)
    labels = cache / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8:] = bytes(len(raw) - 8)  # every label zeroed, the header intact: torchvision would read it happily
    stat = labels.stat()
    labels.write_bytes(bytes(raw))
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its old time
    assert tr_y.any()
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    text = str(err.value)
    assert str(labels) in text and "does not match the digest" in text and f"rm {labels}" in text
    labels.unlink()  # the fix the message names
    again = load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    assert torch.equal(again.train_y, torch.as_tensor(tr_y))


def test_a_changed_source_is_decoded_again_and_an_untouched_cache_is_not(tmp_path):
    fake_fashion(tmp_path / "src")
    cache = tmp_path / "cache"
    load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    raw = cache / "FashionMNIST" / "raw"
    stamps = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    os.utime(tmp_path / "src" / "train-images-idx3-ubyte.gz")  # touched, the same content: nothing decoded
    load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == stamps
    new_y = np.arange(12) % 10
    write_idx_gz(tmp_path / "src", "train", np.zeros((12, 28, 28)), new_y)  # the source itself changed
    d = load_dataset("fashion-mnist", root=tmp_path / "src", cache_dir=cache, download=False)
    assert torch.equal(d.train_y, torch.as_tensor(new_y))


def test_a_torchvision_folder_whose_decoded_file_differs_from_its_gz_is_refused(tmp_path):
    fake_fashion(tmp_path / "src")
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for n in data.FASHION_FILES:  # torchvision's layout: the download's .gz beside what it decoded
        shutil.copy(tmp_path / "src" / f"{n}.gz", raw / f"{n}.gz")
        with gzip.open(raw / f"{n}.gz", "rb") as f:
            (raw / n).write_bytes(f.read())
    good = load_dataset("fashion-mnist", root=tmp_path / "tv", cache_dir=tmp_path / "cache", download=False)
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8] + bytes(len(good.test_y)))
    with pytest.raises(DatasetError, match="does not match the digest") as err:
        load_dataset("fashion-mnist", root=tmp_path / "tv", cache_dir=tmp_path / "cache", download=False)
    assert str(labels) in str(err.value)


def test_a_torchvision_folder_first_seen_with_a_decoded_file_unlike_its_gz_is_refused(tmp_path):
    fake_fashion(tmp_path / "src")
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for n in data.FASHION_FILES:
        shutil.copy(tmp_path / "src" / f"{n}.gz", raw / f"{n}.gz")
        with gzip.open(raw / f"{n}.gz", "rb") as f:
            (raw / n).write_bytes(f.read())
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8] + bytes(12))
    with pytest.raises(DatasetError, match="is not the content of") as err:
        load_dataset("fashion-mnist", root=tmp_path / "tv", cache_dir=tmp_path / "cache", download=False)
    assert str(labels) in str(err.value)

"""Issue 20: CIFAR's and ImageNet16's pickled batches are read through a restricted unpickler.

Files in the real formats decode to the same tensors torchvision / plain pickle give; a crafted
file placed as a batch is refused with an error naming it and the global it asked for, and its
payload never runs.
"""

import os
import pickle
import pickletools
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

import test_data  # the tiny-dataset writers (fake_cifar10, fake_imagenet16) and their `dump`
from e2nas import data
from e2nas.data import DatasetError, UnsafePickleError, load_dataset
from test_data import fake_cifar10, fake_imagenet16

torch.set_num_threads(1)

_RECONSTRUCT = np.empty(0).__reduce__()[0]


@pytest.fixture(autouse=True)
def no_data_env(monkeypatch):
    monkeypatch.delenv(data.ENV_VAR, raising=False)


# ---------------------------------------------------------------- writers of the real formats


class Py2Pickler(pickle._Pickler):
    """Writes what python 2's cPickle wrote for CIFAR's and ImageNet16's batches (protocol 2):
    every string as a python-2 str (SHORT_BINSTRING / BINSTRING, so keys read back as b'data' with
    encoding="bytes" and 'data' with "latin1"), and numpy's arrays under numpy 1's
    numpy.core.multiarray._reconstruct; no _codecs.encode anywhere."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dump_python2(obj, path: Path) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def dump_bytes_keys(obj, path: Path) -> None:
    """Python 3, protocol 2, bytes keys: a re-dump of what pickle.load(encoding="bytes") gives."""
    with open(path, "wb") as f:
        pickle.dump({k.encode("latin1"): v for k, v in obj.items()}, f, protocol=2)


WRITERS = {"python2": dump_python2, "python3": test_data.dump, "python3-bytes-keys": dump_bytes_keys}


@pytest.fixture(params=list(WRITERS))
def writer(request, monkeypatch):
    """The format test_data's writers use, for the length of one test."""
    monkeypatch.setattr(test_data, "dump", WRITERS[request.param])
    return request.param


def fake_cifar100(root: Path, per_file=(5, 3)):
    """cifar-100-python with train, test and meta (the real keys); written with test_data.dump."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    parts = []
    for name, n in zip(("train", "test"), per_file):
        x = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, n)]
        coarse = [v // 5 for v in fine]
        test_data.dump({"filenames": [f"{name}_{j}.png" for j in range(n)], "batch_label": f"{name} batch",
                        "fine_labels": fine, "coarse_labels": coarse, "data": x}, folder / name)
        parts.append((x, fine))
    test_data.dump({"fine_label_names": [f"fine{k}" for k in range(100)],
                    "coarse_label_names": [f"coarse{k}" for k in range(20)]}, folder / "meta")
    return parts


def torchvision_reader(cls):
    """torchvision's own CIFAR reader (plain pickle) without the md5 check of the official files."""
    return type(f"Tv{cls.__name__}", (cls,), {"train_list": [[f, None] for f, _ in cls.train_list],
                                               "test_list": [[f, None] for f, _ in cls.test_list],
                                               "meta": {**cls.meta, "md5": None}})


def torchvision_tensors(cls, root: Path) -> list[torch.Tensor]:
    out = []
    for train in (True, False):
        ds = torchvision_reader(cls)(root, train=train)
        out += [torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)]
    return out


def globals_in(path: Path) -> set[str]:
    """The globals a pickle names (GLOBAL opcodes; protocol 2 writes no STACK_GLOBAL), without loading it."""
    return {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(path.read_bytes()) if op.name == "GLOBAL"}


# ---------------------------------------------------------------- the real formats load as before


def test_python2_writer_writes_what_python2_wrote(tmp_path):
    dump_python2({"data": np.zeros((2, 4), np.uint8), "labels": [1, 2]}, tmp_path / "f")
    assert globals_in(tmp_path / "f") == {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    ops = {op.name for op, _, _ in pickletools.genops((tmp_path / "f").read_bytes())}
    assert "SHORT_BINSTRING" in ops and "BINUNICODE" not in ops
    with open(tmp_path / "f", "rb") as f:
        assert set(pickle.load(f, encoding="bytes")) == {b"data", b"labels"}


def test_cifar10_decodes_as_torchvision_did(tmp_path, writer):
    batches = fake_cifar10(tmp_path)
    if writer == "python2":
        assert "_codecs.encode" not in globals_in(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    got = data._load_cifar("cifar10", tmp_path, tmp_path / "cache", download=False)
    xs = np.concatenate([x for x, _ in batches[:5]]).reshape(-1, 3, 32, 32)
    expect = [torch.from_numpy(xs), torch.tensor(sum((y for _, y in batches[:5]), [])),
              torch.from_numpy(batches[5][0].reshape(-1, 3, 32, 32)), torch.tensor(batches[5][1])]
    if writer != "python3-bytes-keys":  # torchvision reads str keys only
        tv = torchvision_tensors(CIFAR10, tmp_path)
        assert all(torch.equal(a, b) for a, b in zip(tv, expect))
    assert [t.dtype for t in got] == [torch.uint8, torch.long] * 2
    assert all(torch.equal(a, b) for a, b in zip(got, expect))
    d = load_dataset("cifar10", root=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert d.train_x.shape == (15, 3, 32, 32) and torch.equal(d.test_y, expect[3])


def test_cifar100_decodes_fine_labels_as_torchvision_did(tmp_path, writer):
    (tr_x, tr_y), (te_x, te_y) = fake_cifar100(tmp_path)
    got = data._load_cifar("cifar100", tmp_path, tmp_path / "cache", download=False)
    expect = [torch.from_numpy(tr_x.reshape(-1, 3, 32, 32)), torch.tensor(tr_y),
              torch.from_numpy(te_x.reshape(-1, 3, 32, 32)), torch.tensor(te_y)]
    if writer != "python3-bytes-keys":
        assert all(torch.equal(a, b) for a, b in zip(torchvision_tensors(CIFAR100, tmp_path), expect))
    assert all(torch.equal(a, b) for a, b in zip(got, expect))
    d = load_dataset("cifar100", root=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert (d.num_classes, d.train_x.shape, d.test_x.shape) == (100, (5, 3, 32, 32), (3, 3, 32, 32))
    mean = torch.tensor([129.3, 124.1, 112.4]).view(3, 1, 1)
    std = torch.tensor([68.2, 65.4, 70.4]).view(3, 1, 1)
    assert torch.allclose(d.test_x[2] * std + mean, expect[2][2].float(), atol=1e-3)  # same normalisation


def plain_pickle_imagenet16(paths):
    """data.py's decoding before issue 20 (plain pickle.load), the reference."""
    xs, ys = [], []
    for path in paths:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        x, y = np.asarray(entry["data"], dtype=np.uint8), np.asarray(entry["labels"], dtype=np.int64)
        keep = (y >= 1) & (y <= 120)
        xs.append(torch.from_numpy(x[keep].reshape(-1, 3, 16, 16)))
        ys.append(torch.from_numpy(y[keep] - 1))
    return torch.cat(xs), torch.cat(ys)


def test_imagenet16_decodes_as_plain_pickle_did(tmp_path, writer):
    fake_imagenet16(tmp_path / "ImageNet16")
    got = data._load_imagenet16(tmp_path, tmp_path / "cache")
    folder = tmp_path / "ImageNet16"
    if writer != "python3-bytes-keys":
        expect = [*plain_pickle_imagenet16([folder / f for f in data.IMAGENET16_FILES[:-1]]),
                  *plain_pickle_imagenet16([folder / "val_data"])]
        assert all(torch.equal(a, b) for a, b in zip(got, expect))
    assert [t.shape for t in got] == [(40, 3, 16, 16), (40,), (4, 3, 16, 16), (4,)]
    assert got[3].tolist() == [0, 119, 4, 59]


# ---------------------------------------------------------------- crafted files run nothing


class SystemCall:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


PAYLOADS = {
    "os.system": (lambda m: SystemCall(m), r"(posix|os)\.system"),
    "builtins.exec": (lambda m: Exec(m), r"(__builtin__|builtins)\.exec"),
    # a real-looking batch with the payload as one of its values
    "inside a batch": (lambda m: {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 2], "filenames": SystemCall(m)},
                       r"(posix|os)\.system"),
}
TARGETS = {  # dataset, folder under root, file the payload replaces, writer of the rest
    "cifar10 data_batch_3": ("cifar10", "cifar-10-batches-py", "data_batch_3", fake_cifar10),
    "cifar10 batches.meta": ("cifar10", "cifar-10-batches-py", "batches.meta", fake_cifar10),
    "cifar100 train": ("cifar100", "cifar-100-python", "train", fake_cifar100),
    "cifar100 test": ("cifar100", "cifar-100-python", "test", fake_cifar100),
    "imagenet16 train_data_batch_4": ("imagenet16-120", "ImageNet16", "train_data_batch_4",
                                      lambda root: fake_imagenet16(root / "ImageNet16")),
    "imagenet16 val_data": ("imagenet16-120", "ImageNet16", "val_data", lambda root: fake_imagenet16(root / "ImageNet16")),
}


@pytest.mark.parametrize("payload", list(PAYLOADS))
@pytest.mark.parametrize("target", list(TARGETS))
def test_crafted_batch_is_refused_and_runs_nothing(tmp_path, monkeypatch, target, payload):
    name, folder, file, write = TARGETS[target]
    make, refused = PAYLOADS[payload]
    root, marker = tmp_path / "root", tmp_path / "PWNED"
    write(root)
    path = root / folder / file
    with open(path, "wb") as f:
        pickle.dump(make(marker), f, protocol=2)
    assert any(re.fullmatch(refused, g) for g in globals_in(path))  # plain pickle.load would call it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnsafePickleError) as err:
        load_dataset(name, root=root, cache_dir=tmp_path / "cache", download=False)
    msg = str(err.value)
    assert msg.startswith(f"refusing to load {path}: it asks for ")
    assert re.search(refused, msg) and "not a CIFAR/ImageNet16 batch, or it was tampered with" in msg
    assert isinstance(err.value, DatasetError) and isinstance(err.value, ValueError)
    assert not marker.exists() and not (tmp_path / "PWNED").exists() and not (root / "PWNED").exists()


def test_codecs_encode_only_for_latin1_bytes(tmp_path):
    """_codecs.encode is admitted as protocol 2 writes bytes, encode(text, "latin1"), and no other codec."""
    fake_imagenet16(tmp_path / "ImageNet16")
    path = tmp_path / "ImageNet16" / "val_data"
    blob = b"\x80\x02}q\x00X\x04\x00\x00\x00dataq\x01c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86Rs."
    assert pickle.loads(blob) == {"data": "n"}  # what plain pickle would do with it
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=re.escape(f"{path}: it asks for _codecs.encode with str and codec 'rot13'")):
        load_dataset("imagenet16-120", root=tmp_path, cache_dir=tmp_path / "cache")


def test_foreign_but_harmless_pickles_stay_dataset_errors(tmp_path):
    """What is no batch but asks for nothing (a list, a torn file) keeps the 'unreadable' message."""
    fake_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "test_batch").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DatasetError, match=r"cifar10 files under .* are unreadable \(TypeError: .*not the dict") as err:
        load_dataset("cifar10", root=tmp_path, cache_dir=tmp_path / "cache", download=False)
    assert not isinstance(err.value, UnsafePickleError)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": 1}, protocol=2)[:-3])
    with pytest.raises(DatasetError, match="unreadable.*replace them with the official python version"):
        load_dataset("cifar10", root=tmp_path, cache_dir=tmp_path / "cache", download=False)


def test_download_fetches_the_md5_checked_archive_and_reads_it_with_the_restricted_unpickler(tmp_path, monkeypatch):
    """The download is torchvision's archive download (its md5 checked); the batches it unpacks are
    read by e2nas like any others, not by torchvision's dataset class."""
    calls = []

    def fake_download(url, root, filename, md5):
        calls.append((url, filename, md5))
        fake_cifar10(Path(root))  # what unpacking the archive leaves

    monkeypatch.setattr(data, "download_and_extract_archive", fake_download)
    monkeypatch.setattr(CIFAR10, "__init__", lambda *a, **k: pytest.fail("torchvision's CIFAR10 reader was used"))
    d = load_dataset("cifar10", root=tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    assert calls == [(CIFAR10.url, CIFAR10.filename, CIFAR10.tgz_md5)] and d.train_x.shape == (15, 3, 32, 32)

    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(data, "download_and_extract_archive", no_network)
    with pytest.raises(DatasetError, match=r"(?s)cifar-100-python.*torchvision download failed: OSError: no network"):
        load_dataset("cifar100", root=tmp_path / "nowhere", cache_dir=tmp_path / "cache")

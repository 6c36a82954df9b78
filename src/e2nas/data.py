"""Image datasets as resident tensors, NAS-Bench-201's data split, and batch augmentation.

Every dataset is decoded once into normalised float tensors (N, C, H, W) on the CPU; training
moves them to the device once and augments whole batches there, because a per-sample PIL
pipeline on a 2-core machine would dominate every stage.

Where the files are looked for (the first folder that holds them wins):
  1. the `root` argument, else `$E2NAS_DATA_DIR`, else the dataset's default
     (fashion-mnist: the Debian package's /usr/share/datasets/fashion-mnist);
  2. the cache folder (`cache_dir`, else `$E2NAS_DATA_DIR`, else results/data-cache), which holds
     what e2nas decompressed or torchvision downloaded there before.
When none holds them and `download` allows it, torchvision downloads fashion-mnist and CIFAR
into the cache (machines without a network fail fast and get a DatasetError saying what to do).
What e2nas decodes into a cache (fashion-mnist's IDX files) carries the digests of the decoded
files and of their sources (`DIGESTS_FILE` beside them), checked at every load: a cache edited
or damaged since is a DatasetError naming the file and the fix, and a changed source is decoded
again.

CIFAR's and ImageNet16's files are pickles; e2nas decodes them itself through `_BatchUnpickler`,
which builds numpy arrays and plain containers only, so a crafted file cannot run code
(UnsafePickleError names the file and what it asked for).

NAS-Bench-201's protocol: the training set is split into two seeded halves, one to train the
supernet weights and one for the architecture; the test set is held back for the final stage.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import pickle
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.datasets import CIFAR10, CIFAR100, FashionMNIST
from torchvision.datasets.utils import download_and_extract_archive

from e2nas.checkpoint import CheckpointError, atomic_save, safe_load

log = logging.getLogger(__name__)

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "imagenet16-120")
ENV_VAR = "E2NAS_DATA_DIR"
DEFAULT_CACHE = "results/data-cache"
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGENET16_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11)) + ("val_data",)
IMAGENET16_CLASSES = 120  # NB201's ImageNet16-120 keeps the first 120 of the 1000 classes


@dataclass(frozen=True)
class _Spec:
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]  # per-channel, on the 0..1 scale
    std: tuple[float, ...]
    pad: int  # crop padding for augmentation


# Normalisation constants as NAS-Bench-201 uses them (Fashion-MNIST: its training-set statistics).
_SPECS = {
    "fashion-mnist": _Spec(10, 1, 28, (0.2860,), (0.3530,), pad=2),
    "cifar10": _Spec(
        10, 3, 32, tuple(v / 255 for v in (125.3, 123.0, 113.9)), tuple(v / 255 for v in (63.0, 62.1, 66.7)), pad=4
    ),
    "cifar100": _Spec(
        100, 3, 32, tuple(v / 255 for v in (129.3, 124.1, 112.4)), tuple(v / 255 for v in (68.2, 65.4, 70.4)), pad=4
    ),
    "imagenet16-120": _Spec(
        IMAGENET16_CLASSES,
        3,
        16,
        tuple(v / 255 for v in (122.68, 116.66, 104.00)),
        tuple(v / 255 for v in (63.22, 61.26, 65.09)),
        pad=2,
    ),
}


class DatasetError(RuntimeError):
    """Dataset files that cannot be found or read; the message names the places looked and the fix."""


class UnsafePickleError(DatasetError, ValueError):
    """A pickled data file asks for a global that no CIFAR/ImageNet16 batch needs; nothing of it ran."""


@dataclass
class ImageData:
    """A decoded dataset: normalised float32 images (N, C, H, W) and long labels, on the CPU."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    augment: bool  # whether training uses random crop + horizontal flip
    pad: int  # zero padding of the random crop


@dataclass
class DataConfig:
    """Config section `data`: how every stage slices the dataset."""

    split_seed: int = 0  # one split for every seed, method and stage
    subset_per_half: int | None = None  # images per half (weights / arch) for quick profiles; None = all


def split_for(data: ImageData, cfg: DataConfig) -> dict[str, Tensor]:
    """The run's split of `data` under `cfg` (deterministic: every stage derives the same one)."""
    return make_split(len(data.train_y), cfg.split_seed, cfg.subset_per_half)


# ---------------------------------------------------------------- where the files are


def _data_env() -> str | None:
    return os.environ.get(ENV_VAR) or None


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Explicit argument > $E2NAS_DATA_DIR > results/data-cache."""
    return Path(cache_dir or _data_env() or DEFAULT_CACHE)


def _search_dirs(name: str, root, cache: Path) -> list[Path]:
    """Folders to look in, in order: root (or $E2NAS_DATA_DIR, or the default), then the cache."""
    if root is not None:
        dirs = [Path(root)]
    elif _data_env():
        dirs = [Path(_data_env())]
        if name == "fashion-mnist":
            dirs.append(Path(DEBIAN_FASHION_MNIST))  # $E2NAS_DATA_DIR may only serve as the cache
    else:
        dirs = [Path(DEBIAN_FASHION_MNIST)] if name == "fashion-mnist" else []
    return list(dict.fromkeys([*dirs, cache]))  # ordered, without repeats


def _check_folder(path: Path, setting: str, fix: str) -> None:
    """`path` must be a folder or not exist yet (then it is created): a file there, or above it, is one
    DatasetError naming the `setting` it came from and the fix (not an OSError from deep inside a load)."""
    for p in (path, *path.parents):
        if p.is_dir():
            return
        if p.exists() or p.is_symlink():
            kind = "a file" if p.is_file() else "a broken link or a special file"
            what = f"{path} is {kind}, not a folder" if p == path else f"{path} cannot be a folder: {p} above it is {kind}"
            raise DatasetError(f"{setting}: {what}. {fix}")


def _check_folders(root, cache_dir, cache: Path) -> None:
    """The folders `load_dataset` reads and writes, checked before any of them is used."""
    env = _data_env()
    env_fix = (f"Set {ENV_VAR} to the folder that holds the dataset files, not a file in it (e.g. "
               f"export {ENV_VAR}={shlex.quote(str(Path(env).parent))}), or unset it to use the defaults "
               f"({DEBIAN_FASHION_MNIST} for fashion-mnist, {DEFAULT_CACHE} as the cache)") if env else ""
    if root is not None:
        _check_folder(Path(root), f"the dataset folder root={str(root)!r}", "Pass the folder that holds the dataset files")
    elif env:
        _check_folder(Path(env), f"{ENV_VAR}={env!r}", env_fix)
    if cache_dir:
        _check_folder(cache, f"the cache folder cache_dir={str(cache_dir)!r}", "Pass a folder e2nas may write to")
    elif env:
        _check_folder(cache, f"{ENV_VAR}={env!r} (also the cache folder)", env_fix)
    else:
        _check_folder(cache, f"the cache folder {DEFAULT_CACHE}", f"Move aside what is there, or set {ENV_VAR} to a folder")


def _missing(name: str, looked: list[str], fix: str, cause: str = "") -> DatasetError:
    places = "\n".join(f"  - {p}" for p in looked)
    why = f"\n{cause}" if cause else ""
    return DatasetError(f"dataset {name!r} not found; looked in:\n{places}{why}\nTo get it: {fix}")


def _try_download(name: str, download: bool | None, attempt) -> tuple[object | None, str]:
    """Run torchvision's download when allowed; (dataset or None, why it failed)."""
    if download is False:
        return None, "(download disabled)"
    try:
        return attempt(), ""
    except Exception as exc:  # URLError, RuntimeError, OSError, depending on where it fails
        return None, f"torchvision download failed: {type(exc).__name__}: {str(exc)[:300].strip()}"


# ---------------------------------------------------------------- fashion-mnist


# The digests of what e2nas decoded into a cache (and of the files it decoded them from), beside the
# decoded files' folder: every load checks the decoded files against them, so a cache edited or damaged
# since (e.g. labels zeroed) is an error naming the file, not a silent training on other data.
DIGESTS_FILE = "e2nas-digests.json"


def _sha256(path: Path) -> str:
    from e2nas.checkpoint import file_digest

    return file_digest(path)


def _gunzip_sha256(src: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with gzip.open(src, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _source_stat(src: Path) -> dict:
    st = src.stat()
    return {"source": str(src.resolve()), "source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}


class _Digests:
    """The digests file of one decoded folder (`raw`): {file name: {sha256, source, source_sha256, ...}}."""

    def __init__(self, raw: Path):
        self.raw, self.path = raw, raw.parent / DIGESTS_FILE
        try:
            import json

            self.files = dict(json.loads(self.path.read_text()).get("files") or {})
        except (OSError, ValueError, AttributeError):
            self.files = {}
        self.changed = False

    def record(self, name: str, sha256: str, src: Path) -> None:
        self.files[name] = {"sha256": sha256, **_source_stat(src), "source_sha256": _sha256(src)}
        self.changed = True

    def source_unchanged(self, name: str, src: Path) -> bool:
        """Whether `name` was decoded from `src` as it is now (same size and time, else the same content)."""
        entry = self.files.get(name)
        if not entry or entry.get("source") != str(src.resolve()):
            return False
        stat = _source_stat(src)
        if (entry.get("source_size"), entry.get("source_mtime_ns")) == (stat["source_size"], stat["source_mtime_ns"]):
            return True
        if entry.get("source_sha256") == _sha256(src):  # touched, not changed
            entry.update(stat)
            self.changed = True
            return True
        return False

    def verify(self, name: str) -> None:
        """The decoded file must have the digest recorded when it was decoded; a DatasetError names it and the fix."""
        entry, path = self.files.get(name), self.raw / name
        if entry and _sha256(path) != entry.get("sha256"):
            source = entry.get("source") or "its source file"
            raise DatasetError(
                f"decoded dataset file {path} does not match the digest e2nas recorded when it decoded it from {source} "
                f"(it was edited or damaged since; {self.path}); delete it (rm {shlex.quote(str(path))}) and load again: "
                f"it is decoded afresh from {source}"
            )

    def save(self) -> None:
        if self.changed:
            import json

            from e2nas.atomic import write_text

            try:
                write_text(self.path, json.dumps({"format": 1, "files": self.files}, indent=2, sort_keys=True) + "\n")
            except OSError as exc:  # a read-only folder of the user's: the files are still checked each load
                log.warning("could not record the digests of %s: %s", self.raw, exc)
            self.changed = False


@contextlib.contextmanager
def _decoding(raw: Path):
    """One decoder of a folder at a time (parallel jobs): a lock file beside the folder (none where the
    folder is read-only: nothing is decoded there then)."""
    from filelock import FileLock

    try:
        raw.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(raw.parent / ".e2nas-decode.lock"))
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _decompress(src: Path, dst: Path) -> str:
    """Gunzip `src` to `dst` through a temporary file, so parallel jobs never see a torn file; returns
    the sha256 of what was written."""
    import hashlib

    from e2nas.atomic import atomic_write

    digest = hashlib.sha256()

    def write(fout):
        with gzip.open(src, "rb") as fin:
            for block in iter(lambda: fin.read(1 << 20), b""):
                digest.update(block)
                fout.write(block)

    atomic_write(dst, write)
    log.info("decompressed %s into %s", src, dst)
    return digest.hexdigest()


def _fashion_raw(folder: Path) -> Path:
    return folder / "FashionMNIST" / "raw"


def _has_all(folder: Path, names, suffix: str = "") -> bool:
    return all((folder / f"{n}{suffix}").is_file() for n in names)


def _check_decoded(raw: Path) -> None:
    """A folder of decoded IDX files (torchvision's layout): each checked against its recorded digest; one
    without a record but with its .gz beside it (torchvision's download) is checked against that .gz once,
    then recorded. Files with neither are the folder's own source files."""
    digests = _Digests(raw)
    for n in FASHION_FILES:
        gz = raw / f"{n}.gz"
        if n not in digests.files and gz.is_file():
            if _sha256(raw / n) != _gunzip_sha256(gz):
                raise DatasetError(
                    f"decoded dataset file {raw / n} is not the content of {gz} beside it (edited or damaged); "
                    f"delete it (rm {shlex.quote(str(raw / n))}) and load again: it is decoded afresh from {gz}"
                )
            digests.record(n, _sha256(raw / n), gz)
        digests.verify(n)
    digests.save()


def _fashion_root(folder: Path, cache: Path) -> Path | None:
    """A torchvision root holding Fashion-MNIST from `folder`, decompressing gzipped files into `cache`.

    `folder` may hold torchvision's layout (FashionMNIST/raw/), or the gzipped IDX files
    directly or under fashion-mnist/ (the Debian package's layout). Decoded files carry the
    digests of what was decoded and of its source (`DIGESTS_FILE`), checked at every load.
    """
    if _has_all(_fashion_raw(folder), FASHION_FILES):
        with _decoding(_fashion_raw(folder)):
            _check_decoded(_fashion_raw(folder))
        return folder
    for gz_dir in (folder, folder / "fashion-mnist"):
        if _has_all(gz_dir, FASHION_FILES, ".gz"):
            raw = _fashion_raw(cache)
            with _decoding(raw):
                digests = _Digests(raw)
                for n in FASHION_FILES:
                    src, dst = gz_dir / f"{n}.gz", raw / n
                    # Decoded once; again when the source changed (or the decoded file is gone).
                    if dst.is_file() and digests.source_unchanged(n, src):
                        digests.verify(n)
                    else:
                        digests.record(n, _decompress(src, dst), src)
                digests.save()
            return cache
    return None


def _load_fashion(root, cache: Path, download: bool | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    looked = _search_dirs("fashion-mnist", root, cache)
    tv_root = next((r for r in (_fashion_root(d, cache) for d in looked) if r is not None), None)
    if tv_root is None:
        ok, cause = _try_download("fashion-mnist", download, lambda: FashionMNIST(cache, train=True, download=True))
        if ok is None:
            raise _missing(
                "fashion-mnist",
                [str(d) for d in looked],
                f"`apt-get install dataset-fashion-mnist` (installs {DEBIAN_FASHION_MNIST}), or set {ENV_VAR} "
                f"to a folder holding the four *-ubyte.gz IDX files, or run where there is a network so "
                f"torchvision downloads them into {cache}",
                cause,
            )
        tv_root = cache
        with _decoding(_fashion_raw(cache)):
            _check_decoded(_fashion_raw(cache))  # torchvision's download, checked against its .gz and recorded
    log.info("fashion-mnist from %s", tv_root)
    try:
        train, test = FashionMNIST(tv_root, train=True), FashionMNIST(tv_root, train=False)
    except Exception as exc:
        raise DatasetError(
            f"fashion-mnist files under {_fashion_raw(tv_root)} are unreadable ({type(exc).__name__}: {exc}); "
            f"delete them and load again"
        ) from None
    # torchvision keeps (N, 28, 28) uint8 images and long labels.
    return train.data.unsqueeze(1), train.targets.long(), test.data.unsqueeze(1), test.targets.long()


# ---------------------------------------------------------------- pickled batches (cifar, imagenet16)

# numpy's array-rebuilding function, wherever this numpy keeps it (numpy._core since numpy 2).
_RECONSTRUCT = np.empty(0).__reduce__()[0]


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR's and ImageNet16's batches: numpy arrays and plain containers, nothing else.

    Those files are dicts of numpy arrays, lists, ints and strings; pickle asks `find_class` for
    every global a file names before calling anything, so refusing all but the few an array needs
    means no other code runs. Admitted (what pickling such dicts asks for, protocols 0-4):
      - numpy.core.multiarray._reconstruct (python 2's files, as CIFAR's and ImageNet16's are,
        and numpy < 2) or numpy._core.multiarray._reconstruct (numpy >= 2), numpy.ndarray and
        numpy.dtype: what an array pickles as;
      - _codecs.encode, for latin-1 only: python 3 writes bytes in protocols 0-2 as
        encode(text, "latin1") (python-3 re-dumps of the batches, the tests' files).
    Not admitted: numpy's scalar (numpy numbers outside arrays), _frombuffer (protocol 5),
    builtins.bytes (empty bytes in protocol 2) and everything else; no batch needs them.
    """

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")  # python 2's str to str, as torchvision and NB201 read them
        self._path = path
        self._allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("_codecs", "encode"): self._latin1_bytes,
        }

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(
            f"refusing to load {self._path}: it asks for {what}, which no image-data file needs; "
            f"the file is not a CIFAR/ImageNet16 batch, or it was tampered with"
        )

    def _latin1_bytes(self, text, encoding="utf-8", errors="strict"):
        """_codecs.encode as protocol 2 uses it for bytes: encode(str, "latin1"); other codecs are refused."""
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
            raise self._refuse(f"_codecs.encode with {type(text).__name__} and codec {encoding!r}")
        return text.encode("latin1")

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise self._refuse(f"{module}.{name}") from None


def _unpickle_batch(path: Path) -> dict:
    """One pickled batch as a dict with str keys (python 2's str keys, or bytes keys, decoded as latin-1).

    Raises UnsafePickleError for a file asking for anything but arrays; other failures as pickle raises them.
    """
    with open(path, "rb") as f:
        entry = _BatchUnpickler(f, path).load()
    if not isinstance(entry, dict):
        raise TypeError(f"the file holds a {type(entry).__name__}, not the dict a batch is")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


# ---------------------------------------------------------------- cifar10 / cifar100


@dataclass(frozen=True)
class _CifarFormat:
    """Where torchvision's CIFAR class keeps the python version's files; e2nas decodes them itself.

    The official files' md5 is not checked, so subsets and the tests' small files in the same
    format load too; downloads still verify the archive's md5.
    """

    base_folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    meta_key: str  # the class names in the meta file
    url: str
    archive: str
    archive_md5: str

    @classmethod
    def of(cls, tv) -> _CifarFormat:
        return cls(
            tv.base_folder,
            tuple(f for f, _ in tv.train_list),
            tuple(f for f, _ in tv.test_list),
            tv.meta["filename"],
            tv.meta["key"],
            tv.url,
            tv.filename,
            tv.tgz_md5,
        )

    @property
    def files(self) -> list[str]:
        return [*self.train_files, *self.test_files, self.meta_file]


_CIFAR = {"cifar10": _CifarFormat.of(CIFAR10), "cifar100": _CifarFormat.of(CIFAR100)}


def _read_cifar(folder: Path, files: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """Batches as torchvision decodes them: rows of 3072 bytes (red, green, blue planes) to (N, 3, 32, 32) uint8,
    labels from `labels` (CIFAR-10) or `fine_labels` (CIFAR-100)."""
    xs, ys = [], []
    for f in files:
        entry = _unpickle_batch(folder / f)
        xs.append(np.asarray(entry["data"], dtype=np.uint8))
        ys.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    x = np.vstack(xs).reshape(-1, 3, 32, 32)
    return torch.from_numpy(x), torch.as_tensor(ys, dtype=torch.long)


def _download_cifar(fmt: _CifarFormat, cache: Path) -> Path:
    """torchvision's download of the official archive (md5-checked) into `cache`, unpacked; nothing unpickled."""
    download_and_extract_archive(fmt.url, str(cache), filename=fmt.archive, md5=fmt.archive_md5)
    return cache


def _load_cifar(name: str, root, cache: Path, download: bool | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    fmt = _CIFAR[name]
    looked = _search_dirs(name, root, cache)
    tv_root = next((d for d in looked if _has_all(d / fmt.base_folder, fmt.files)), None)
    if tv_root is None:
        ok, cause = _try_download(name, download, lambda: _download_cifar(fmt, cache))
        if ok is None:
            raise _missing(
                name,
                [str(d / fmt.base_folder) for d in looked],
                f"set {ENV_VAR} to the folder that holds {fmt.base_folder}/ (the python version from "
                f"{fmt.url}, unpacked), or run where there is a network so torchvision downloads it into {cache}",
                cause,
            )
        tv_root = cache
    folder = tv_root / fmt.base_folder
    log.info("%s from %s", name, folder)
    try:
        if fmt.meta_key not in _unpickle_batch(folder / fmt.meta_file):  # torchvision requires the class names too
            raise KeyError(fmt.meta_key)
        return (*_read_cifar(folder, fmt.train_files), *_read_cifar(folder, fmt.test_files))
    except UnsafePickleError:
        raise
    except Exception as exc:  # a torn or foreign pickle
        raise DatasetError(
            f"{name} files under {folder} are unreadable ({type(exc).__name__}: {exc}); "
            f"replace them with the official python version"
        ) from None


# ---------------------------------------------------------------- imagenet16-120


def _imagenet16_folder(d: Path) -> Path | None:
    for folder in (d / "ImageNet16", d):
        if _has_all(folder, IMAGENET16_FILES):
            return folder
    return None


def _read_imagenet16(paths: list[Path]) -> tuple[Tensor, Tensor]:
    """NB201's pickles: keep labels 1..120 and map them to 0..119, images to (N, 3, 16, 16)."""
    xs, ys = [], []
    for path in paths:
        try:
            entry = _unpickle_batch(path)
            data, labels = np.asarray(entry["data"], dtype=np.uint8), np.asarray(entry["labels"], dtype=np.int64)
        except UnsafePickleError:
            raise
        except Exception as exc:
            raise DatasetError(
                f"imagenet16-120 file {path} is unreadable ({type(exc).__name__}: {exc}); "
                f"replace it with NAS-Bench-201's ImageNet16 file"
            ) from None
        keep = (labels >= 1) & (labels <= IMAGENET16_CLASSES)  # filter per file to bound memory
        xs.append(torch.from_numpy(data[keep].reshape(-1, 3, 16, 16)))
        ys.append(torch.from_numpy(labels[keep] - 1))
    return torch.cat(xs), torch.cat(ys)


def _load_imagenet16(root, cache: Path) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    looked = _search_dirs("imagenet16-120", root, cache)
    folder = next((f for f in (_imagenet16_folder(d) for d in looked) if f is not None), None)
    if folder is None:
        raise _missing(
            "imagenet16-120",
            [f"{d / 'ImageNet16'} (or {d} itself)" for d in looked],
            f"get NAS-Bench-201's ImageNet16 folder (train_data_batch_1..10, val_data; see the "
            f"NAS-Bench-201 / AutoDL-Projects README) and set {ENV_VAR} to its parent folder; "
            f"torchvision cannot download it",
        )
    log.info("imagenet16-120 from %s", folder)
    train_x, train_y = _read_imagenet16([folder / f for f in IMAGENET16_FILES[:-1]])
    test_x, test_y = _read_imagenet16([folder / "val_data"])
    return train_x, train_y, test_x, test_y


# ---------------------------------------------------------------- public loading


def _normalise(images: Tensor, spec: _Spec) -> Tensor:
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return (images.float().div_(255) - mean).div_(std)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
) -> ImageData:
    """Decode a dataset into normalised tensors (see the module doc for where files are looked for).

    download: None tries torchvision's download only when no folder holds the files; False never.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} in the config key `datasets`; known: {', '.join(DATASETS)}")
    cache = resolve_cache_dir(cache_dir)
    _check_folders(root, cache_dir, cache)
    if name == "fashion-mnist":
        parts = _load_fashion(root, cache, download)
    elif name in _CIFAR:
        parts = _load_cifar(name, root, cache, download)
    else:
        parts = _load_imagenet16(root, cache)
    train_x, train_y, test_x, test_y = parts
    spec = _SPECS[name]
    return ImageData(
        name=name,
        num_classes=spec.num_classes,
        in_channels=spec.in_channels,
        image_size=spec.image_size,
        train_x=_normalise(train_x, spec),
        train_y=train_y,
        test_x=_normalise(test_x, spec),
        test_y=test_y,
        augment=True,
        pad=spec.pad,
    )


# ---------------------------------------------------------------- the split


def make_split(num_train: int, seed: int, subset_per_half: int | None = None) -> dict[str, Tensor]:
    """Two disjoint halves of a seeded permutation of the training set: {"weights", "arch"}.

    subset_per_half truncates each half (quick profiles); more than a half holds means all of it.
    """
    if num_train < 2:
        raise ValueError(f"a split needs at least 2 training images, got {num_train}")
    perm = torch.randperm(num_train, generator=torch.Generator().manual_seed(seed))
    half = num_train // 2
    size = half if subset_per_half is None else min(int(subset_per_half), half)
    if size < 1:
        raise ValueError(f"subset_per_half must be at least 1, got {subset_per_half}")
    return {"weights": perm[:size].clone(), "arch": perm[half : half + size].clone()}


def save_split(split: dict[str, Tensor], path: str | os.PathLike) -> None:
    atomic_save({"weights": split["weights"], "arch": split["arch"]}, path)


def load_split(path: str | os.PathLike) -> dict[str, Tensor]:
    state = safe_load(path, "data split")
    if not {"weights", "arch"} <= set(state):
        raise CheckpointError(f"data split {path} lacks 'weights'/'arch'; delete it and rerun the stage that writes it")
    return {"weights": state["weights"], "arch": state["arch"]}


def subset_test(data: ImageData, n: int | None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The test set, or a seeded subset of n of its images (quick profiles)."""
    if n is None or n >= len(data.test_y):
        return data.test_x, data.test_y
    idx = torch.randperm(len(data.test_y), generator=torch.Generator().manual_seed(seed))[:n]
    return data.test_x[idx], data.test_y[idx]


# ---------------------------------------------------------------- batches and augmentation


def cutout_batch(x: Tensor, generator: torch.Generator | None, size: int) -> Tensor:
    """DARTS's Cutout for the whole batch at once: one size×size square of zeros per image.

    As DARTS's Cutout (applied after normalisation, so the square is the dataset mean): the
    centre is uniform over the pixels and the square is clipped at the border, so near an edge
    less than size² pixels go. The square spans rows cy - size//2 .. cy - size//2 + size - 1
    (DARTS's own span for its even sizes). The centres come from `generator` on the CPU, as in
    augment_batch; the mask is built on x's device. size 0 returns x and draws nothing.
    """
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator)
    cx = torch.randint(0, w, (b,), generator=generator)
    dev = x.device
    top, left = (cy - size // 2).to(dev)[:, None], (cx - size // 2).to(dev)[:, None]
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    in_rows = (rows >= top) & (rows < top + size)  # (B, H); rows off the image simply never match
    in_cols = (cols >= left) & (cols < left + size)  # (B, W)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


def augment_batch(x: Tensor, generator: torch.Generator | None, pad: int, flip: bool = True, cutout: int = 0) -> Tensor:
    """Random crop of the zero-padded images plus a random horizontal flip, for the whole batch at once,
    then `cutout_batch` when cutout > 0 (its draws come last, so cutout 0 leaves the stream as it was).

    The random numbers come from `generator` on the CPU (so a saved state replays them); the
    gather runs on x's device.
    """
    x = _crop_flip(x, generator, pad, flip)
    return cutout_batch(x, generator, cutout)


def _crop_flip(x: Tensor, generator: torch.Generator | None, pad: int, flip: bool) -> Tensor:
    """augment_batch's crop and flip: the crop offsets are drawn first, then the flips."""
    b, _, h, w = x.shape
    if pad > 0:
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    else:
        dy = dx = torch.zeros(b, dtype=torch.long)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    if pad == 0 and not flip:
        return x
    dev = x.device
    rows = dy.to(dev)[:, None] + torch.arange(h, device=dev)  # (B, H) rows of the padded image
    cols = dx.to(dev)[:, None] + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flips.to(dev)[:, None], cols.flip(1), cols)  # a flipped crop reads its columns backwards
    padded = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class BatchIterator:
    """Resident tensors on `device`, shuffled with torch.randperm(generator), augmented as whole batches
    (crop + flip when `augment`, then DARTS's Cutout when `cutout` > 0).

    Deterministic given the generator's state, so a run resumes exactly when callers save
    `generator.get_state()` at epoch ends. The generator must be a CPU generator.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        augment: bool = False,
        pad: int = 0,
        drop_last: bool = True,
        cutout: int = 0,
        memory_format: torch.memory_format = torch.contiguous_format,
    ):
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if drop_last and len(x) < batch_size:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {len(x)} images and drop_last is set: no step per epoch; "
                f"lower the batch size or raise the subset size"
            )
        self.device = torch.device(device)
        self.x, self.y = x.to(self.device), y.to(self.device)  # once, not per batch
        self.batch_size, self.generator = batch_size, generator
        if cutout < 0:
            raise ValueError(f"cutout must be >= 0 (0 = off), got {cutout}")
        self.augment, self.pad, self.drop_last, self.cutout = augment, pad, drop_last, cutout
        self.memory_format = memory_format

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        perm = torch.randperm(len(self.x), generator=self.generator).to(self.device)
        for step in range(len(self)):
            idx = perm[step * self.batch_size : (step + 1) * self.batch_size]
            xb = self.x[idx]
            if self.augment:
                xb = augment_batch(xb, self.generator, self.pad, cutout=self.cutout)
            else:  # asked for explicitly, cutout applies without crop and flip too
                xb = cutout_batch(xb, self.generator, self.cutout)
            yield xb.contiguous(memory_format=self.memory_format), self.y[idx]

"""Write the NAS-Bench-201 accuracy table (`nb201_test_accuracy.csv`) from the official benchmark files.

    python -m e2nas.tables.nb201_convert PATH --out CSV [--benchmark nas-bench-201|nats-tss] [--full-unpickle]

PATH is one of the files the benchmarks publish:

* NAS-Bench-201: `NAS-Bench-201-v1_1-096897.pth` (or `-v1_0-e61699.pth`), read with
  `nas_201_api.NASBench201API(PATH, verbose=False)` (`pip install nas-bench-201`);
* NATS-Bench, topology space: the `NATS-tss-v1_0-3ffb9-simple` folder (one pickle per cell), read with
  `nats_bench.create(PATH, 'tss', fast_mode=True, verbose=False)`, or the whole-space file
  `NATS-tss-v1_0-3ffb9.pickle.pbz2`, read with `fast_mode=False` (`pip install nats_bench`).

The benchmark is recognised from PATH (a folder or a `.pbz2` file: NATS-Bench; a `.pth` file:
NAS-Bench-201); `--benchmark` names it when the name says nothing.

Every cell, in the benchmark's index order, gets one row `arch,cifar10,cifar100,imagenet16_120`:
the cell in the project's canonical NB201 text (`e2nas.spaces.get("nb201").canonical_text`) and
`get_more_info(index, dataset, hp="200", is_random=False)["test-accuracy"]` (the mean over the
benchmark's seeds, %) for the datasets 'cifar10', 'cifar100', 'ImageNet16-120', rounded to 4
decimals: the format of the table the package ships. A provenance file (CSV name with `.json`)
is written beside it: the source file's name, size and sha256, the API package and its version,
the call used, the row count and the date.

SECURITY: these APIs unpickle the benchmark file (NATS-Bench with plain `pickle`, which runs any
code a crafted file holds; NAS-Bench-201 with `torch.load`, restricted to plain data on
torch >= 2.6 unless `--full-unpickle` lifts that). Run the converter only on files you trust,
e.g. ones downloaded from the benchmarks' official links whose checksums you checked.

`convert(path, out_csv, benchmark=None)` does the same from Python and returns the table as a
pandas DataFrame.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import pickle
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

NB201 = "nas-bench-201"
NATS_TSS = "nats-tss"
BENCHMARKS = (NB201, NATS_TSS)
COLUMNS = ("cifar10", "cifar100", "imagenet16_120")
# our column -> the benchmark's dataset name
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16_120": "ImageNet16-120"}
HP = "200"
DECIMALS = 4
LINE_END = "\r\n"  # the shipped CSV's line ends (the csv module's default)
SPACE_SIZE = 15625
QUERY = f"get_more_info(index, dataset, hp='{HP}', is_random=False)['test-accuracy']"

# distribution name, module, pip command
PACKAGES = {
    NB201: ("nas-bench-201", "nas_201_api", "pip install nas-bench-201"),
    NATS_TSS: ("nats_bench", "nats_bench", "pip install nats_bench"),
}
TRUST_NOTE = (
    "These APIs unpickle the benchmark file (NATS-Bench: plain pickle, which runs any code a crafted "
    "file holds; NAS-Bench-201: torch.load, restricted to plain data unless --full-unpickle). "
    "Run this only on files you trust (the benchmarks' official downloads, checksums checked)."
)


class ConvertError(ValueError):
    """A benchmark file that cannot be converted; the message names the file and the fix."""


# ---------------------------------------------------------------- recognising the file


def detect_benchmark(path: Path) -> str:
    """The benchmark a path holds (`nas-bench-201` or `nats-tss`), from its name or first bytes."""
    name = path.name.lower()
    if "nats-sss" in name:
        raise ConvertError(f"{path} is NATS-Bench's size search space (sss); the NB201 table comes from the topology space "
                           "(NATS-tss-v1_0-3ffb9-simple or NATS-tss-v1_0-3ffb9.pickle.pbz2)")
    if path.is_dir():
        if (path / "meta.pickle.pbz2").is_file():
            return NATS_TSS
        if any(path.glob("*-FULL.pth")):
            raise ConvertError(f"{path} looks like NAS-Bench-201's per-cell archive (*-FULL.pth); "
                               "convert the single file NAS-Bench-201-v1_1-096897.pth instead")
        raise ConvertError(f"{path} is a folder without meta.pickle.pbz2, so not a NATS-Bench topology archive "
                           "(NATS-tss-v1_0-3ffb9-simple); pass that folder or a benchmark file")
    if name.endswith(".pbz2") or name.startswith("nats-tss"):
        return NATS_TSS
    if name.endswith(".pth") or name.startswith("nas-bench-201"):
        return NB201
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"BZh"):  # bz2: NATS-Bench's pickle_save
        return NATS_TSS
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save: zip, or a legacy pickle
        return NB201
    raise ConvertError(f"cannot tell which benchmark {path} holds (neither a .pth nor a .pickle.pbz2 file, nor a "
                       f"NATS-Bench folder, and its first bytes {head!r} are neither torch's nor bz2's); "
                       f"name it with --benchmark {'|'.join(BENCHMARKS)}")


def _import_api(benchmark: str):
    dist, module, pip = PACKAGES[benchmark]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConvertError(f"reading {benchmark} files needs its API package {dist} (module {module}), "
                           f"which is not installed: {pip}") from None


def _package_version(benchmark: str) -> str:
    try:
        return importlib.metadata.version(PACKAGES[benchmark][0])
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- opening it through the benchmark's API


@contextlib.contextmanager
def _torch_full_unpickle(enabled: bool):
    """torch.load without weights_only (the API calls it without the argument), for the duration."""
    if not enabled:
        yield
        return
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
            yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def open_api(path: Path, benchmark: str, full_unpickle: bool = False):
    """(the benchmark's API object on `path`, the constructor call as text)."""
    module = _import_api(benchmark)
    if benchmark == NB201:
        if path.is_dir():
            raise ConvertError(f"{path} is a folder; NAS-Bench-201's API reads the single file NAS-Bench-201-v1_1-096897.pth")
        call = "nas_201_api.NASBench201API(path, verbose=False)"
        try:
            with _torch_full_unpickle(full_unpickle):
                api = module.NASBench201API(str(path), verbose=False)
        except pickle.UnpicklingError as exc:
            if "weights only" in str(exc).lower():
                raise ConvertError(
                    f"{path}: torch.load's restricted (weights_only) unpickler refused it ({str(exc).splitlines()[-1].strip()[:300]}). "
                    "If the file is the official NAS-Bench-201 download and you trust it, rerun with --full-unpickle "
                    "(convert(..., full_unpickle=True)), which lets torch unpickle anything the file holds") from None
            raise ConvertError(f"{path} is not a NAS-Bench-201 file nas_201_api can read: {exc}") from None
        except Exception as exc:
            raise ConvertError(f"{path} is not a NAS-Bench-201 file nas_201_api can read: {type(exc).__name__}: {exc}") from None
        if full_unpickle:
            call = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 " + call
        return api, call
    fast = path.is_dir()
    call = f"nats_bench.create(path, 'tss', fast_mode={fast}, verbose=False)"
    try:
        api = module.create(str(path), "tss", fast_mode=fast, verbose=False)
    except Exception as exc:
        raise ConvertError(f"{path} is not a NATS-Bench topology {'folder' if fast else 'file'} nats_bench can read: "
                           f"{type(exc).__name__}: {exc}") from None
    return api, call


def _forget(api, index: int) -> None:
    """NATS fast mode caches every cell it reads; drop a converted one so memory stays flat."""
    if getattr(api, "fast_mode", False) and isinstance(getattr(api, "arch2infos_dict", None), dict):
        api.arch2infos_dict.pop(index, None)
        with contextlib.suppress(AttributeError, KeyError):
            api.evaluated_indexes.discard(index)


def read_rows(api, benchmark: str, progress: bool = False) -> pd.DataFrame:
    """One row per index of the benchmark: canonical cell text and the three rounded test accuracies."""
    from e2nas import spaces

    space = spaces.get("nb201")
    rows = []
    total = len(api)
    for index in range(total):
        raw = api[index]
        try:
            arch = space.canonical_text(str(raw))
        except ValueError as exc:
            raise ConvertError(f"index {index}: cell {raw!r} is not an NB201 cell ({exc})") from None
        row = {"arch": arch}
        for column, dataset in DATASETS.items():
            try:
                info = api.get_more_info(index, dataset, hp=HP, is_random=False)
            except Exception as exc:
                raise ConvertError(f"index {index} ({arch}): the {benchmark} file has no {HP}-epoch results on {dataset} "
                                   f"({type(exc).__name__}: {exc})") from None
            value = info.get("test-accuracy")
            if value is None or not math.isfinite(float(value)):
                raise ConvertError(f"index {index} ({arch}): get_more_info gave no test-accuracy on {dataset} (got {value!r})")
            if not 0 <= float(value) <= 100:
                raise ConvertError(f"index {index} ({arch}): get_more_info gave test-accuracy {value!r} on {dataset}, "
                                   "not a percentage in [0, 100]")
            row[column] = round(float(value), DECIMALS)
        rows.append(row)
        _forget(api, index)
        if progress and (index + 1) % 1000 == 0:
            print(f"  {index + 1}/{total} cells", file=sys.stderr, flush=True)
    return pd.DataFrame(rows, columns=["arch", *COLUMNS])


# ---------------------------------------------------------------- writing the table and its provenance


def write_table(frame: pd.DataFrame, out_csv: Path) -> None:
    """The table in the shipped file's format (header, floats as Python writes them, CRLF), written atomically."""
    _atomic_write(out_csv, frame[["arch", *COLUMNS]].to_csv(index=False, lineterminator=LINE_END))


def _atomic_write(path: Path, text: str) -> None:
    """`text` as it is (no newline translation) through e2nas.atomic: a failed write leaves nothing and
    names the file and the errno (ENOSPC: disk full)."""
    from e2nas.atomic import atomic_write

    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path) -> dict:
    """Name, size and sha256 of the source; a folder's sha256 is that of its `sha256sum`-style listing."""
    if path.is_file():
        return {"name": path.name, "size_bytes": path.stat().st_size, "sha256": _sha256_file(path)}
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    listing = "".join(f"{_sha256_file(p)}  {p.relative_to(path).as_posix()}\n" for p in files)
    return {
        "name": path.name,
        "kind": "folder",
        "files": len(files),
        "size_bytes": sum(p.stat().st_size for p in files),
        "sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "sha256_of": "the lines '<sha256 of file>  <path relative to the folder>' of every file, sorted by path "
                     "(LC_ALL=C sort), as `cd FOLDER && find . -type f | cut -c3- | LC_ALL=C sort | xargs sha256sum | sha256sum`",
    }


def provenance(frame: pd.DataFrame, source: Path, benchmark: str, call: str, out_csv: Path) -> dict:
    """The provenance JSON's content for a table converted from `source`."""
    dist, module, _ = PACKAGES[benchmark]
    api_module = sys.modules.get(module)
    api_version = getattr(api_module, "NAS_BENCH_201_API_VERSION", None)
    if api_version is None and hasattr(api_module, "version"):
        api_version = api_module.version()
    all_skip = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    points = {"best_cifar10": float(frame["cifar10"].max()), "mean_cifar10": round(float(frame["cifar10"].mean()), 2)}
    hit = frame.loc[frame["arch"] == all_skip, "cifar10"]
    if len(hit):
        points["all_skip_cifar10"] = float(hit.iloc[0])
    info = {
        "what": "NAS-Bench-201 test accuracies (%) of the cells of the NB201 (NATS-Bench topology, tss) space",
        "columns": {
            "arch": "the cell in the benchmark's string form (canonical NB201 text)",
            "cifar10": f"CIFAR-10 test accuracy after {HP} epochs, mean over the benchmark's seeds",
            "cifar100": "the same on CIFAR-100",
            "imagenet16_120": "the same on ImageNet16-120",
        },
        "benchmark": benchmark,
        "source": f"{call}.{QUERY} for every index, datasets {list(DATASETS.values())}, rounded to {DECIMALS} decimals",
        "source_file": fingerprint(source),
        "api": {"package": dist, "version": _package_version(benchmark), "module": module, "api_version": api_version,
                "constructor": call, "query": QUERY},
        "rows": len(frame),
        "row_order": "the benchmark's index order",
        "reference_points": points,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "regenerate": f"python -m e2nas.tables.nb201_convert {source.name} --out {out_csv.name} --benchmark {benchmark}",
    }
    if benchmark == NB201:
        import torch

        info["api"]["torch"] = torch.__version__
    return info


def convert(path, out_csv, benchmark: str | None = None, *, full_unpickle: bool = False, progress: bool = False) -> pd.DataFrame:
    """Write `out_csv` (and its provenance, `out_csv` with `.json`) from the official benchmark file at `path`.

    `benchmark`: 'nas-bench-201' or 'nats-tss' (None: recognised from the path). The file is unpickled
    by the benchmark's API: convert only files you trust. `full_unpickle` lets torch.load (NAS-Bench-201)
    unpickle anything instead of plain data only. Returns the table written.
    """
    path, out_csv = Path(path), Path(out_csv)
    if not path.exists():
        raise ConvertError(f"benchmark file {path} does not exist")
    if benchmark is None:
        benchmark = detect_benchmark(path)
    elif benchmark not in BENCHMARKS:
        raise ConvertError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")
    if out_csv.is_dir():
        raise ConvertError(f"--out {out_csv} is a folder; name the CSV file to write")
    api, call = open_api(path, benchmark, full_unpickle)
    frame = read_rows(api, benchmark, progress=progress)
    if frame.empty:
        raise ConvertError(f"{path} holds no cells")
    if (frame[list(COLUMNS)] <= 1).all().all():  # what Nb201Table.load refuses: write no table it cannot read
        raise ConvertError(f"{path}: every test-accuracy is at most 1, fractions rather than the percentages "
                           "the table holds; this API version reports another scale")
    write_table(frame, out_csv)
    meta = provenance(frame, path, benchmark, call, out_csv)
    _atomic_write(out_csv.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2nas.tables.nb201_convert",
        description="Write the NAS-Bench-201 accuracy table (arch,cifar10,cifar100,imagenet16_120; the format of the "
                    "shipped nb201_test_accuracy.csv) and its provenance JSON from the official NAS-Bench-201 file "
                    "(NAS-Bench-201-v1_1-096897.pth, via nas_201_api) or NATS-Bench topology files "
                    "(NATS-tss-v1_0-3ffb9-simple folder or NATS-tss-v1_0-3ffb9.pickle.pbz2, via nats_bench).",
        epilog=f"WARNING: {TRUST_NOTE} Point E2NAS_NB201_TABLE at the CSV written to use it.",
    )
    parser.add_argument("path", type=Path, help="the benchmark file, or the NATS-tss-v1_0-3ffb9-simple folder")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write (the provenance goes beside it, .json)")
    parser.add_argument("--benchmark", choices=BENCHMARKS, default=None,
                        help="which benchmark PATH holds (default: recognised from the path)")
    parser.add_argument("--full-unpickle", action="store_true",
                        help="NAS-Bench-201 only: let torch.load unpickle anything in the file, not only plain data "
                             "(needed if the restricted load refuses it; trusted files only)")
    args = parser.parse_args(argv)
    try:
        frame = convert(args.path, args.out, args.benchmark, full_unpickle=args.full_unpickle, progress=True)
    except ConvertError as exc:
        parser.exit(1, f"nb201_convert: error: {exc}\n")
    note = "" if len(frame) == SPACE_SIZE else f"; note: the NB201 space has {SPACE_SIZE}"
    print(f"wrote {args.out} ({len(frame)} cells{note}) and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

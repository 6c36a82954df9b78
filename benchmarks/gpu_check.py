"""GPU check: supernet warm-up and every search method's step on Fashion-MNIST, in under 5 minutes.

One script for a lent GPU (a 15-minute device budget leaves room to rerun it). It builds the
paper-size supernet (C = 16, N = 5, batch 64), puts two 25,000-image halves of Fashion-MNIST
on the device (CIFAR-10's half size, as NB201 splits it), and times a fixed number of steps
of the warm-up and of each search method (e2nas, gdas, darts, rsps), plus e2nas with three
distinct complementation paths in every step (its worst case), and both again with the
weight half's paths in one grouped pass instead of one after the other ("-grouped",
e2nas.spaces.nb201.grouped; an opt-in of the harness, kept off where it does not pay). Each row: untimed steps first
(allocator, cuDNN autotuning), then the median of steps timed one by one between
synchronisations, then the same number of steps back to back; extrapolated to seconds per
epoch (391 steps at the defaults) and the peak GPU memory of the row. A second pass with
cudnn.benchmark and channels_last runs when the first leaves time for it, and the bars are
read on the faster pass:

    E2NAS step ≤ 2.0× the GDAS step;  a paper-size E2NAS search epoch ≤ 30 s on an H100/H200.

    PYTHONPATH=src python benchmarks/gpu_check.py --data DIR [--steps N] [--device cuda] [--record]
    PYTHONPATH=src python benchmarks/gpu_check.py --data DIR --device cpu --steps 2 --channels 4 --cells 1 --half 256

DIR holds the four Fashion-MNIST `*-ubyte.gz` files (as /usr/share/datasets/fashion-mnist does).
Needs only torch and torch-geometric: no MLflow, Snakemake or papermill. Where torchvision is
installed, e2nas.data reads the files and batches them; without it (e2nas.data imports
torchvision), a small IDX reader and batcher here do the same. The E2NAS decoder is the
project's VGAE at its default config with random weights: a step's cost does not depend on them.

Prints a markdown report; writes it (and a JSON of the numbers) under $OUT when that is set;
appends it to benchmarks/RESULTS.md only with --record.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import itertools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from e2nas.graphs import build_graph_set
from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search import Harness, SearchConfig
from e2nas.search.e2nas import E2NAS
from e2nas.spaces import nb201

NB201 = nb201.SPACE
from e2nas import spaces
from e2nas.warmup import WarmupConfig, build_supernet, sample_path
from e2nas.training import make_sgd, train_epoch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ siblings, also when imported
from results_file import append_result
from search_step import build_decoder

PAPER = {"channels": 16, "cells": 5, "batch": 64, "half": 25000}
BAR_E2NAS_OVER_GDAS = 2.0
BAR_EPOCH_SECONDS = 30.0
BAR_EPOCH_CARDS = ("H100", "H200")
DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
# Fashion-MNIST's training-set statistics and crop padding, as e2nas.data uses them (for the fallback reader).
FASHION_MEAN, FASHION_STD, FASHION_PAD = 0.2860, 0.3530, 2
# "-grouped": the same e2nas rows with the weight half's paths in one grouped pass
# (Harness.grouped_paths = True) instead of one after the other (the default).
# The rows time the paper's E2NAS step (straight-through, a_t, a_{t−1}, a_c), the step the GPU bars were set on.
PAPER_STEP = {"estimator": "straight-through", "weight_paths": "sampled"}
ROWS = ("warm-up", "e2nas", "e2nas-3paths", "e2nas-grouped", "e2nas-3paths-grouped", "gdas", "darts", "rsps")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEBIAN_FASHION_MNIST, help="folder with the four Fashion-MNIST *-ubyte.gz files")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50, help="timed steps per row (one by one, then as many back to back)")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps per row first")
    p.add_argument("--channels", type=int, default=PAPER["channels"], help="supernet C (paper: 16)")
    p.add_argument("--cells", type=int, default=PAPER["cells"], help="supernet N, cells per stage (paper: 5)")
    p.add_argument("--batch", type=int, default=PAPER["batch"], help="images per step (paper: 64)")
    p.add_argument("--half", type=int, default=PAPER["half"], help="images per half of the split (CIFAR-10's: 25000)")
    p.add_argument("--tuned", choices=("auto", "on", "off"), default="auto",
                   help="also time cudnn.benchmark + channels_last (auto: on CUDA, when the budget allows)")
    p.add_argument("--budget-s", type=float, default=270.0, help="skip the tuned pass if it would end the script later")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", action="store_true", help="append the report to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    if min(args.steps, args.channels, args.cells, args.batch) < 1 or args.warmup_steps < 0:
        p.error("--steps, --channels, --cells, --batch must be >= 1 and --warmup-steps >= 0")
    if args.half < args.batch:
        p.error(f"--half {args.half} holds less than one batch of {args.batch}")
    return args


# ---------------------------------------------------------------- data


def _find_idx(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}.gz", folder / name, folder / "fashion-mnist" / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {name}[.gz] in {folder}: pass --data, a folder with the four Fashion-MNIST IDX files")


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (gzipped or not) of unsigned bytes as a uint8 tensor of its declared shape."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if raw[:3] != b"\x00\x00\x08":  # two zero bytes, then type 0x08 = unsigned byte
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(shape)


def read_fashion_idx(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST's training images (N, 1, 28, 28), normalised as e2nas.data does, and labels."""
    images = read_idx(_find_idx(folder, "train-images-idx3-ubyte")).unsqueeze(1)
    labels = read_idx(_find_idx(folder, "train-labels-idx1-ubyte")).long()
    return (images.float().div_(255) - FASHION_MEAN).div_(FASHION_STD), labels


def library_reads_data() -> str | None:
    """torchvision's version when e2nas.data can be imported (it imports torchvision), else None."""
    try:
        import torchvision
    except ImportError:
        return None
    return torchvision.__version__


def load_halves(folder: str, half: int, seed: int) -> tuple[dict, str]:
    """{"weights": (x, y), "arch": (x, y), "pad": int}: the seeded halves, and which reader read them."""
    tv_version = library_reads_data()
    if tv_version is not None:
        from e2nas.data import load_dataset, make_split

        with tempfile.TemporaryDirectory() as cache:  # the decompressed copies go here, not into the repo
            data = load_dataset("fashion-mnist", root=folder, cache_dir=cache, download=False)
        x, y, pad = data.train_x, data.train_y, data.pad
        split = make_split(len(y), seed, half)
        source = f"e2nas.data (torchvision {tv_version})"
    else:
        x, y = read_fashion_idx(Path(folder))
        pad = FASHION_PAD
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))  # as e2nas.data.make_split
        size = min(half, len(y) // 2)
        split = {"weights": perm[:size], "arch": perm[len(y) // 2 : len(y) // 2 + size]}
        source = "the IDX reader in gpu_check.py (torchvision is not installed, and e2nas.data imports it)"
    halves = {name: (x[idx], y[idx]) for name, idx in split.items()}
    return {**halves, "pad": pad}, source


def _crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """e2nas.data.augment_batch's random crop of the zero-padded batch and horizontal flip, as one gather."""
    b, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    flips = (torch.rand(b, generator=generator) < 0.5).to(dev)
    rows = dy[:, None] + torch.arange(h, device=dev)
    cols = dx[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    padded = F.pad(x, (pad, pad, pad, pad))
    batch = torch.arange(b, device=dev)[:, None, None, None]
    chan = torch.arange(c, device=dev)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


def batch_stream(x, y, batch: int, device, seed: int, pad: int, library: bool) -> Iterator:
    """Endless augmented batches of one half, resident on `device`, epoch after epoch (as the stages batch)."""
    gen = torch.Generator().manual_seed(seed)
    if library:
        from e2nas.data import BatchIterator

        batches = BatchIterator(x, y, batch, device, gen, augment=True, pad=pad)
        while True:
            yield from batches
    x, y = x.to(device), y.to(device)
    while True:
        perm = torch.randperm(len(x), generator=gen).to(device)
        for s in range(len(x) // batch):
            idx = perm[s * batch : (s + 1) * batch]
            yield _crop_flip(x[idx], gen, pad), y[idx]


class Take:
    """The next n items of a stream, with a length (train_epoch's progress bar asks for one)."""

    def __init__(self, stream: Iterator, n: int):
        self.stream, self.n = stream, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(self.stream, self.n)


# ---------------------------------------------------------------- cells


def three_path_cells(n: int, generator: torch.Generator) -> list[tuple[int, ...]]:
    """Cells that each agree with the one before on at least one edge and differ on at least one.

    Then a_t, a_{t−1} and the complement a_c (another op where the two agree) are three
    distinct paths: E2NAS's weight half at its most expensive.
    """
    num_ops = len(nb201.OPS)
    cells = NB201.sample(1, generator)
    while len(cells) < n:
        prev, cell = cells[-1], list(NB201.sample(1, generator)[0])
        keep, change = torch.randperm(nb201.NUM_EDGES, generator=generator)[:2].tolist()
        cell[keep] = prev[keep]
        if tuple(cell) == prev:
            cell[change] = (prev[change] + int(torch.randint(1, num_ops, (1,), generator=generator))) % num_ops
        cells.append(tuple(cell))
    return cells


# ---------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Row:
    name: str
    setting: str
    step_s: list[float]  # each of the one-by-one timed steps
    back_to_back_s: float  # all of the back-to-back steps together
    peak_bytes: int | None  # torch.cuda.max_memory_allocated during the row
    paths: list[int] = field(default_factory=list)  # distinct single paths of each weight half

    @property
    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.step_s)

    @property
    def back_to_back_ms(self) -> float:
        return 1e3 * self.back_to_back_s / len(self.step_s)


def measure(step: Callable[[], None], run: Callable[[int], None] | None, warm: int, steps: int, device) -> tuple[list, float]:
    """Untimed steps, then `steps` steps each between synchronisations, then `steps` back to back."""
    for _ in range(warm):
        step()
    times = []
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    sync(device)
    t0 = time.perf_counter()
    if run is None:
        for _ in range(steps):
            step()
    else:
        run(steps)
    sync(device)
    return times, time.perf_counter() - t0


def count_paths(harness: Harness, counts: list[int]) -> None:
    """Record how many distinct single paths each weight step of `harness` trains (identical cells merge)."""
    inner = harness.train_paths

    def counted(x, y, terms, probe=None):
        counts.append(len({tuple(cell) for cell, _ in terms}))
        return inner(x, y, terms, probe)

    harness.train_paths = counted


@dataclass
class Bench:
    """What every row shares: the supernet, the decoder, the batch streams, the sizes."""

    net: torch.nn.Module
    vae: torch.nn.Module
    stream_w: Iterator
    stream_a: Iterator
    device: torch.device
    cfg: SearchConfig
    seed: int
    cells_needed: int
    channels_last: bool = False

    def batch(self, stream):
        x, y = next(stream)
        return (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y


def warmup_row(b: Bench):
    """Stage 3's step: one uniformly sampled path, SGD on a weights-half batch (train_epoch's own loop)."""
    wcfg = WarmupConfig()
    opt, _ = make_sgd(b.net.parameters(), 1, wcfg.lr, wcfg.lr_min, wcfg.momentum, wcfg.nesterov, wcfg.weight_decay)
    gen = torch.Generator().manual_seed(b.seed)
    forward = lambda xb: b.net(xb, sample_path(gen, "nb201"))
    batches = (b.batch(b.stream_w) for _ in itertools.count())

    def step():
        train_epoch(b.net, [next(batches)], opt, wcfg.grad_clip, forward=forward, progress=False)

    def run(n):  # one truncated epoch of the library's loop: it syncs once, at its end
        train_epoch(b.net, Take(batches, n), opt, wcfg.grad_clip, forward=forward, progress=False)

    return step, run


def search_row(name: str, b: Bench, counts: list[int]):
    """One method's search step (weight half + architecture half) over forced cells."""
    harness = Harness(b.net, b.cfg, b.device, b.seed, space="nb201")
    gen = torch.Generator().manual_seed(b.seed + 1)  # the same cells for every method but e2nas-3paths
    cells = three_path_cells(b.cells_needed, gen) if "3paths" in name else NB201.sample(b.cells_needed, gen)
    harness.grouped_paths = name.endswith("-grouped")
    if name.startswith("e2nas"):
        # Every NB201 cell's encoding makes the manifold term, as in a search (the archive starts full).
        method = E2NAS.for_method("e2nas", harness, b.vae, build_graph_set("nb201"))
    else:
        method = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}[name](harness)
    method.start_epoch(0, 250)  # the paper's first epoch: τ at its maximum, η ≈ 1 (novelty with gradient)
    count_paths(harness, counts)
    cells = iter(cells)

    def step():
        (xw, yw), (xa, ya) = b.batch(b.stream_w), b.batch(b.stream_a)
        method.step(xw, yw, xa, ya, cell=next(cells))

    return step, None


def time_rows(b: Bench, setting: str, args, progress) -> list[Row]:
    rows = []
    for name in ROWS:
        counts: list[int] = []
        step, run = warmup_row(b) if name == "warm-up" else search_row(name, b, counts)
        if b.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(b.device)
        times, together = measure(step, run, args.warmup_steps, args.steps, b.device)
        peak = torch.cuda.max_memory_allocated(b.device) if b.device.type == "cuda" else None
        paths = [1] if name == "warm-up" else counts[args.warmup_steps :]  # the timed steps' weight paths
        rows.append(Row(name, setting, times, together, peak, paths))
        progress(f"{setting} {name}: {rows[-1].median_ms:.1f} ms/step (median), {rows[-1].back_to_back_ms:.1f} back to back")
    return rows


# ---------------------------------------------------------------- report


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def verdicts(rows: list[Row], setting: str, args, card: str, epoch_steps: int) -> dict:
    by = {r.name: r for r in rows if r.setting == setting}
    ratio = by["e2nas"].median_ms / by["gdas"].median_ms
    epoch_s = by["e2nas"].median_ms * epoch_steps / 1e3
    paper = all(getattr(args, k) == v for k, v in PAPER.items())
    on_card = any(c in card for c in BAR_EPOCH_CARDS)
    return {
        "setting": setting,
        "e2nas_over_gdas": ratio,
        "e2nas_3paths_over_gdas": by["e2nas-3paths"].median_ms / by["gdas"].median_ms,
        "grouped_speedup": by["e2nas"].median_ms / by["e2nas-grouped"].median_ms,
        "grouped_speedup_3paths": by["e2nas-3paths"].median_ms / by["e2nas-3paths-grouped"].median_ms,
        "e2nas_epoch_s": epoch_s,
        "ratio_pass": ratio <= BAR_E2NAS_OVER_GDAS,
        "epoch_pass": (epoch_s <= BAR_EPOCH_SECONDS) if paper and on_card else None,
        "epoch_skip_reason": None if paper and on_card else
        ("not an H100/H200" if not on_card else "not the paper size (C=16, N=5, batch 64, half 25000)"),
    }


def report(rows: list[Row], v: dict, meta: dict) -> str:
    a, n_ep = meta["args"], meta["epoch_steps"]
    mib = lambda b: "n/a" if b is None else f"{b / 2**20:.0f}"
    word = lambda ok: "PASS" if ok else "FAIL"
    gdas = {r.setting: r.median_ms for r in rows if r.name == "gdas"}
    lines = [
        f"## gpu_check — {meta['date']}",
        "",
        (f"card **{meta['card']}** (device {meta['device']}), torch {torch.__version__} (CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'n/a'}), "
        f"torch-geometric {meta['pyg']}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, host {platform.node()}"),
        "",
        (f"- data: Fashion-MNIST from {a['data']}, read by {meta['source']}; two seeded halves of {meta['half']} images "
        f"(weights, arch), 1x28x28, resident on the device ({meta['data_mib']:.0f} MiB), crop+flip per batch there"),
        f"- supernet C={a['channels']}, N={a['cells']}, batch {a['batch']}; one epoch = {n_ep} steps (ceil(half / batch))",
        (f"- E2NAS decoder: {meta['decoder']}, random weights (untrained: a step's cost does not depend on them); "
        f"archive full (K=50), η and τ of the first of 250 epochs"),
        ("- cells: every path method steps over one seeded list of uniformly random cells, forced (as "
        "benchmarks/search_step.py does; forcing skips the argmax's host copy, and the per-step "
        "synchronisation stands in for it); e2nas-3paths: cells for which a_t, a_{t−1} and a_c are three "
        "distinct paths in every step"),
        (f"- timing: {a['warmup_steps']} untimed steps per row, then the median of {a['steps']} steps each between "
        f"synchronisations (s/epoch = median × {n_ep}), then {a['steps']} steps back to back; "
        "peak = torch.cuda.max_memory_allocated over the row (resident data included)"),
        f"- settings: eager = defaults; tuned = cudnn.benchmark + channels_last. {meta['tuned_note']}",
        f"- wall time of the whole script: {meta['wall_s']:.0f} s",
        "",
        f"| setting | row | ms/step (median) | ms/step back to back | s per {n_ep}-step epoch | × gdas | weight paths/step | peak MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        paths = f"{statistics.mean(r.paths):.2f}" if r.paths else "mixture"  # DARTS trains no single path
        lines.append(
            f"| {r.setting} | {r.name} | {r.median_ms:.1f} | {r.back_to_back_ms:.1f} | {r.median_ms * n_ep / 1e3:.1f} | "
            f"{r.median_ms / gdas[r.setting]:.2f} | {paths} | {mib(r.peak_bytes)} |"
        )
    epoch_word = f"SKIP ({v['epoch_skip_reason']})" if v["epoch_pass"] is None else word(v["epoch_pass"])
    lines += [
        "",
        f"Bars, on the faster setting ({v['setting']}):",
        f"- {word(v['ratio_pass'])} — e2nas step / gdas step = {v['e2nas_over_gdas']:.2f} (bar ≤ {BAR_E2NAS_OVER_GDAS})",
        (f"- {epoch_word} — e2nas search epoch of {n_ep} steps = {v['e2nas_epoch_s']:.1f} s "
        f"(bar ≤ {BAR_EPOCH_SECONDS:.0f} s at the paper size on an H100/H200)"),
        f"- (no bar) e2nas-3paths step / gdas step = {v['e2nas_3paths_over_gdas']:.2f}: three distinct weight paths every step",
        (f"- (no bar) grouped pass (opt-in): e2nas step {v['grouped_speedup']:.2f}× and e2nas-3paths step "
         f"{v['grouped_speedup_3paths']:.2f}× faster than with the weight paths run one after the other"),
        "",
    ]
    return "\n".join(lines)


def pyg_version() -> str:
    import torch_geometric

    return torch_geometric.__version__


def main(argv=None) -> dict:
    start = time.perf_counter()
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device")
    progress = lambda msg: print(f"[{time.perf_counter() - start:6.1f} s] {msg}", flush=True)

    halves, source = load_halves(args.data, args.half, args.seed)
    (xw, yw), (xa, ya) = halves["weights"], halves["arch"]
    progress(f"data: {len(yw)} + {len(ya)} images, read by {source}")
    library = source.startswith("e2nas.data")
    stream_w = batch_stream(xw, yw, args.batch, device, args.seed, halves["pad"], library)
    stream_a = batch_stream(xa, ya, args.batch, device, args.seed + 1, halves["pad"], library)

    net = build_supernet(spaces.get("nb201").config("supernet", {"channels": args.channels, "cells_per_stage": args.cells}), 10, 1, args.seed, "nb201").to(device)
    torch.manual_seed(args.seed)  # the decoder's random weights
    vae, _, decoder = build_decoder(device)
    bench = Bench(
        net, vae, stream_w, stream_a, device, SearchConfig(epochs=250, batch_size=args.batch, **PAPER_STEP), args.seed,
        cells_needed=args.warmup_steps + 2 * args.steps,
    )

    t0 = time.perf_counter()
    rows = time_rows(bench, "eager", args, progress)
    eager_s = time.perf_counter() - t0
    tuned_note = ""
    want_tuned = args.tuned == "on" or (args.tuned == "auto" and device.type == "cuda")
    projected = time.perf_counter() - start + 1.2 * eager_s
    if want_tuned and args.tuned == "auto" and projected > args.budget_s:
        want_tuned, tuned_note = False, f"Tuned pass skipped: it would end at ≈{projected:.0f} s > --budget-s {args.budget_s:.0f}."
    elif not want_tuned:
        tuned_note = "Tuned pass not run (--tuned off, or auto on a CPU)."
    if want_tuned:
        tuned_note = "Both passes ran."
        torch.backends.cudnn.benchmark = True
        bench.net = net.to(memory_format=torch.channels_last)
        bench.channels_last = True
        rows += time_rows(bench, "tuned", args, progress)

    card = device_name(device)
    epoch_steps = math.ceil(len(yw) / args.batch)
    settings = sorted({r.setting for r in rows}, key=lambda s: next(r.median_ms for r in rows if r.setting == s and r.name == "e2nas"))
    v = verdicts(rows, settings[0], args, card, epoch_steps)
    meta = {
        "args": vars(args), "card": card, "device": str(device), "pyg": pyg_version(), "source": source,
        "half": len(yw), "data_mib": (xw.numel() + xa.numel()) * xw.element_size() / 2**20, "decoder": decoder,
        "epoch_steps": epoch_steps, "tuned_note": tuned_note, "wall_s": time.perf_counter() - start,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    text = report(rows, v, meta)
    print(text, flush=True)
    summary = {
        **meta, "verdicts": v,
        "rows": [
            {"setting": r.setting, "row": r.name, "median_ms": r.median_ms, "back_to_back_ms": r.back_to_back_ms,
             "epoch_s": r.median_ms * epoch_steps / 1e3, "peak_bytes": r.peak_bytes,
             "mean_paths": statistics.mean(r.paths) if r.paths else None, "step_ms": [1e3 * t for t in r.step_s]}
            for r in rows
        ],
    }
    if os.environ.get("OUT"):
        out = Path(os.environ["OUT"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.md").write_text(text + "\n")
        (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    if args.record:
        append_result(text)
    return summary


if __name__ == "__main__":
    main()

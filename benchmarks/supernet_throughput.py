"""Images per second of one single-path supernet training step (forward + backward + SGD).

The step is the warm-up's: a uniformly sampled cell, cross-entropy, backward, gradient
clipping, Nesterov SGD. Two sizes: the default profile (C=8, N=1, 1x28x28, Fashion-MNIST) and
the paper's (C=16, N=5, 3x32x32, CIFAR-10), both at batch 64 with 10 classes. Each size gets
untimed warm-up steps, then the median of the timed steps, each on its own sampled cell.

    python benchmarks/supernet_throughput.py                   # both sizes, on the GPU when there is one
    python benchmarks/supernet_throughput.py --device cpu --steps 10 --sizes default

Needs only torch. Appends a dated entry to benchmarks/RESULTS.md (unless --no-record).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from e2nas.spaces.nb201.supernet import SuperNet  # noqa: E402
from e2nas.warmup import sample_path  # noqa: E402

from results_file import append_result  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

# name: (C, N, in_channels, image side, classes)
SIZES = {"default": (8, 1, 1, 28, 10), "paper": (16, 5, 3, 32, 10)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (cuda when there is a GPU), cpu, cuda")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30, help="timed steps per size")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per size first")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(size: str, args, device: torch.device) -> list[float]:
    """Seconds of each timed training step at `size`."""
    C, N, channels, side, classes = SIZES[size]
    torch.manual_seed(args.seed)
    net = SuperNet(C, N, classes, channels).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, channels, side, side, generator=g).to(device)
    y = torch.randint(classes, (args.batch,), generator=g).to(device)
    paths = torch.Generator().manual_seed(args.seed + 1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, sample_path(paths, "nb201")), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    for _ in range(args.warmup):  # allocator, cuDNN autotuning
        step()
    times = []
    for _ in range(args.steps):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def report(rows: dict, args, device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"## supernet_throughput — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"machine {platform.node()} ({name}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {device}; one single-path training step "
        f"(forward + backward + clip + Nesterov SGD) on a uniformly sampled cell, batch {args.batch}, "
        f"median of {args.steps} steps after {args.warmup} untimed",
        "",
        "| size | C | N | input | ms/step (median) | images/s |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for size, times in rows.items():
        C, N, channels, side, _ = SIZES[size]
        med = statistics.median(times)
        lines.append(f"| {size} | {C} | {N} | {channels}x{side}x{side} | {1e3 * med:.1f} | {args.batch / med:,.0f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    rows = {}
    for size in args.sizes:
        rows[size] = step_times(size, args, device)
        print(f"{size}: {1e3 * statistics.median(rows[size]):.1f} ms/step", flush=True)
    text = report(rows, args, device)
    print(text)
    if not args.no_record:
        append_result(text)
    return {size: args.batch / statistics.median(t) for size, t in rows.items()}


if __name__ == "__main__":
    main()

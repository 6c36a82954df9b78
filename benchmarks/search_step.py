"""Cost of one search step (weight half + architecture half) per method, on one supernet and batch.

Every method steps over the same fixed, seeded list of uniformly sampled cells (the step's
cell is forced, so the path sizes match), interleaved round-robin over several rounds so that
drift of a shared machine hits all methods alike; the median step time is reported, with the
ratios to GDAS and DARTS and the share of an E2NAS step spent in its latent part (decoder
forward + backward, novelty, manifold term, normalised combination, archive), timed separately in
the same rounds.

Bars (issue 8): e2nas ≤ 2.2× gdas, e2nas ≤ 0.6× darts, latent part ≤ 10% of an e2nas step.

    python benchmarks/search_step.py                       # paper size: C=16, N=5, batch 64, 3x32x32, 10 classes
    python benchmarks/search_step.py --C 8 --N 1 --rounds 3 --device cuda

Needs only torch and torch-geometric (no MLflow). Appends a dated entry to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import torch
from torch import nn

from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search import Harness, SearchConfig
from e2nas.search.e2nas import E2NAS
from e2nas.spaces import nb201

from results_file import append_result  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

METHOD_ORDER = ("e2nas", "gdas", "darts", "rsps")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--C", type=int, default=16, help="supernet channels (paper: 16)")
    p.add_argument("--N", type=int, default=5, help="cells per stage (paper: 5)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image", type=int, default=32, help="image side")
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=6, help="round-robin rounds over the methods")
    p.add_argument("--steps", type=int, default=2, help="timed steps per method per round")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per method first")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return p.parse_args(argv)


def build_decoder(device) -> tuple[nn.Module, int, str]:
    """The project's VGAE at its default config (untrained weights cost the same as trained ones)."""
    from e2nas.graphs import build_graph_set
    from e2nas.vgae import GraphVAE, VGAEConfig

    cfg = VGAEConfig()
    num_features = build_graph_set("nb201", torch.zeros(1, nb201.NUM_EDGES, dtype=torch.long)).num_features
    vae = GraphVAE(num_features, nb201.CHOICE_SIZES, cfg).to(device).eval()
    return vae, cfg.latent_dim, f"GraphVAE(VGAEConfig()) d={cfg.latent_dim} hidden={cfg.hidden_dim}x{cfg.decoder_layers}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class LatentPart(E2NAS):
    """E2NAS's latent part of a step alone: its `step` without the supernet.

    Sample, decode (with μ's reference decode), novelty, manifold term, the normalised
    combination, Adam, σ's clamp and the archive all run as in a real step; the supernet's
    validation loss is replaced by a surrogate on the straight-through weights that takes the
    same route back through the decoder, and the weight half is skipped.
    """

    def validation_loss(self, x, y, cell, weights):
        return (weights * torch.linspace(0, 1, weights.shape[-1], device=weights.device)).sum()

    def weight_step(self, x, y, prev, cur, probe):
        pass


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from e2nas.spaces.nb201.supernet import SuperNet

    torch.manual_seed(args.seed)
    net = SuperNet(args.C, args.N, args.classes, args.channels).to(device)
    g = torch.Generator().manual_seed(args.seed)
    shape = (args.batch, args.channels, args.image, args.image)
    xw, xa = (torch.randn(shape, generator=g).to(device) for _ in range(2))
    yw, ya = (torch.randint(args.classes, (args.batch,), generator=g).to(device) for _ in range(2))
    cfg = SearchConfig(epochs=1, batch_size=args.batch, archive_size=50)

    decoder, dim, decoder_name = build_decoder(device)
    # The manifold term's KDE runs over every NB201 cell's encoding: 15,625 points, as in a search.
    encodings = torch.randn(nb201.NUM_ARCHS, dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
    mu0 = torch.randn(dim, generator=torch.Generator().manual_seed(args.seed))
    methods = {}
    for name in METHOD_ORDER:
        harness = Harness(net, cfg, device, args.seed, xa, ya, space="nb201")  # one supernet, one optimiser per method
        if name == "e2nas":
            methods[name] = E2NAS(harness, decoder, mu0, encodings=encodings, sigma_max=0.3)
        else:
            methods[name] = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}[name](harness)
        methods[name].start_epoch(0, 2)
    latent = LatentPart(Harness(net, cfg, device, args.seed, xa, ya, space="nb201"), decoder, mu0, encodings=encodings, sigma_max=0.3)
    latent.start_epoch(0, 2)

    total = args.warmup + args.rounds * args.steps
    cells = nb201.SPACE.sample(total, torch.Generator().manual_seed(args.seed + 1))
    times = {name: [] for name in (*METHOD_ORDER, "latent")}

    def timed(fn) -> float:
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t0

    for name, method in methods.items():  # untimed warm-up (allocator, cuDNN autotuning)
        for i in range(args.warmup):
            method.step(xw, yw, xa, ya, cell=cells[i])
    for r in range(args.rounds):
        for name, method in methods.items():
            for s in range(args.steps):
                cell = cells[args.warmup + r * args.steps + s]
                times[name].append(timed(lambda: method.step(xw, yw, xa, ya, cell=cell)))
            if name == "e2nas":  # its latent part alone, right after its full steps
                for s in range(args.steps):
                    times["latent"].append(timed(lambda: latent.step(xw, yw, xa, ya, cell=cell)))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {1e3 * t[-1]:.0f} ms" for n, t in times.items()), flush=True)

    med = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    summary = {
        "ms": med,
        # Ratios paired within each round (same cells, same moment of a shared machine's load),
        # then the median over rounds: steadier than a ratio of medians.
        "e2nas_over_gdas": paired_ratio(times, "e2nas", "gdas", args.steps),
        "e2nas_over_darts": paired_ratio(times, "e2nas", "darts", args.steps),
        "latent_share": paired_ratio(times, "latent", "e2nas", args.steps),
        "decoder": decoder_name,
        "args": vars(args),
        "threads": torch.get_num_threads(),
    }
    text = report(summary, device)
    print(text)
    if not args.no_record:
        append_result(text)
    return summary


def paired_ratio(times: dict[str, list[float]], num: str, den: str, steps: int) -> float:
    """Median over rounds of (num's total time in the round) / (den's total time in the round)."""
    rounds = len(times[num]) // steps
    chunk = lambda name, r: sum(times[name][r * steps : (r + 1) * steps])  # noqa: E731
    return statistics.median(chunk(num, r) / chunk(den, r) for r in range(rounds))


def report(s: dict, device: torch.device) -> str:
    a = s["args"]
    ok = lambda cond: "pass" if cond else "FAIL"  # noqa: E731
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"## search_step — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"machine {platform.node()} ({name}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{s['threads']} torch threads, device {device}; supernet C={a['C']} N={a['N']}, batch {a['batch']}, "
        f"{a['channels']}x{a['image']}x{a['image']}, {a['classes']} classes; decoder {s['decoder']}; "
        f"median of {a['rounds'] * a['steps']} steps per method ({a['rounds']} round-robin rounds x {a['steps']})",
        "",
        "| method | ms/step (median) | × gdas (ratio of medians) |",
        "| --- | ---: | ---: |",
    ]
    for m in METHOD_ORDER:
        lines.append(f"| {m} | {s['ms'][m]:.1f} | {s['ms'][m] / s['ms']['gdas']:.2f} |")
    lines += [
        f"| e2nas latent part (decoder + novelty + manifold + archive) | {s['ms']['latent']:.2f} | |",
        "",
        "Paired per round (median over rounds):",
        f"- e2nas / gdas = {s['e2nas_over_gdas']:.2f} (bar ≤ 2.2: {ok(s['e2nas_over_gdas'] <= 2.2)})",
        f"- e2nas / darts = {s['e2nas_over_darts']:.2f} (bar ≤ 0.6: {ok(s['e2nas_over_darts'] <= 0.6)})",
        f"- latent part / e2nas step = {100 * s['latent_share']:.2f}% (bar ≤ 10%: {ok(s['latent_share'] <= 0.10)})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

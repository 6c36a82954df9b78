"""Stage-2 cost and quality: `run_pretraining` with the default VGAEConfig on all 15,625 NB201 graphs.

Builds the real stage-1 graph file in a temporary folder, times the whole stage (train,
evaluate, save), prints the stage-2 metrics and checks the issue's bars: reconstruction and
held-out reconstruction accuracy 1.0, 15,625 unique means, pretraining ≤ 3 minutes with 2
torch threads on the 2-core CPU.

With `--space darts` it trains on `--num-archs` genotypes sampled with seed 0 (the space is
too large to enumerate) with DARTS_CONFIG, and checks the DARTS bar: held-out
reconstruction ≥ 0.999 of the sampled genotypes (no time bar; the time is reported).

    python benchmarks/vgae.py                  # 2 torch threads, CPU
    python benchmarks/vgae.py --device cuda
    python benchmarks/vgae.py --space darts --num-archs 20000

Needs only torch and torch-geometric (no MLflow). Appends a dated entry to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from e2nas.graphs import build_graph_set
from e2nas.spaces import darts
from e2nas.vgae import VGAEConfig, run_pretraining

from results_file import append_result  # noqa: E402 (benchmarks/ is on sys.path when run as a script)

BAR_SECONDS = 180.0
DARTS_BAR = 0.999
# The vgae section a DARTS profile uses (see VGAEConfig: a sum readout cannot bind each op to its
# position among 32 choices, and a 64-wide decoder cannot hold them all).
DARTS_CONFIG = dict(readout="concat", latent_dim=64, hidden_dim=32, decoder_dim=256, batch_size=64, epochs=10)
SHOWN = (
    "reconstruction_accuracy",
    "heldout_reconstruction_accuracy",
    "unique_means",
    "prior_validity",
    "prior_uniqueness",
    "prior_coverage",
    "smoothness",
    "final_loss",
    "final_recon_loss",
    "final_kl",
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the bar is stated for 2)")
    p.add_argument("--space", default="nb201", choices=("nb201", "darts"))
    p.add_argument("--num-archs", type=int, default=20000, help="sampled DARTS genotypes (darts only)")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = VGAEConfig(**(DARTS_CONFIG if args.space == "darts" else {}))
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        graphs_path = Path(tmp) / "graphs" / f"{args.space}.pt"
        build_graphs(args).save(graphs_path)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        metrics, _ = run_pretraining(
            graphs_path, Path(tmp) / "model.pt", Path(tmp) / "metrics.json", cfg, device=args.device, progress=True
        )
        stage_seconds = time.perf_counter() - start
    # The machine is shared: the 1-minute load average says how contended the measurement was.
    load = (load_before, os.getloadavg()[0])
    text = (darts_report if args.space == "darts" else report)(metrics, stage_seconds, cfg, args, load)
    print(text)
    if not args.no_record:
        append_result(text)
    return metrics


def build_graphs(args):
    """All NB201 cells, or --num-archs DARTS genotypes sampled with seed 0."""
    if args.space == "nb201":
        return build_graph_set("nb201")
    return build_graph_set("darts", darts.sample_archs(args.num_archs, torch.Generator().manual_seed(0)))


def machine_line(cfg: VGAEConfig, args, load: tuple[float, float]) -> str:
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return (
        f"machine {platform.node()} ({platform.platform()}, {name}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {device}; 1-min load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after (other jobs share the CPUs)"
    )


def darts_report(m: dict, stage_seconds: float, cfg: VGAEConfig, args, load: tuple[float, float]) -> str:
    held = m["heldout_reconstruction_accuracy"]
    lines = [
        f"## vgae (darts) — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        machine_line(cfg, args, load),
        f"VGAEConfig {asdict(cfg)}; {m['num_archs']} sampled DARTS genotypes (seed 0), {m['num_heldout']} held out",
        "",
        "| quantity | value |",
        "| --- | ---: |",
        f"| run_pretraining (train + evaluate + save), s | {stage_seconds:.1f} |",
        f"| training, s | {m['train_seconds']:.1f} |",
        f"| evaluation, s | {m['eval_seconds']:.1f} |",
    ]
    for key in SHOWN:
        value = m[key]
        lines.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += ["", f"- heldout_reconstruction_accuracy = {held:.4f} (bar ≥ {DARTS_BAR}: {'pass' if held >= DARTS_BAR else 'FAIL'})", ""]
    return "\n".join(lines)


def report(m: dict, stage_seconds: float, cfg: VGAEConfig, args, load: tuple[float, float]) -> str:
    ok = lambda cond: "pass" if cond else "FAIL"  # noqa: E731
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    lines = [
        f"## vgae — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"machine {platform.node()} ({platform.platform()}, {name}, {os.cpu_count()} CPUs), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {device}; default VGAEConfig "
        f"(latent {cfg.latent_dim}, hidden {cfg.hidden_dim}, {cfg.num_layers} GIN layers, {cfg.epochs} epochs, "
        f"batch {cfg.batch_size}, β {cfg.beta}); {m['num_archs']} NB201 cells, {m['num_heldout']} held out; "
        f"1-min load average {load[0]:.1f} before, {load[1]:.1f} after (other jobs share the CPUs)",
        "",
        "| quantity | value |",
        "| --- | ---: |",
        f"| run_pretraining (train + evaluate + save), s | {stage_seconds:.1f} |",
        f"| training, s | {m['train_seconds']:.1f} |",
        f"| evaluation, s | {m['eval_seconds']:.1f} |",
    ]
    for key in SHOWN:
        value = m[key]
        lines.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += [
        "",
        f"- reconstruction_accuracy = {m['reconstruction_accuracy']:.4f} (bar 1.0: {ok(m['reconstruction_accuracy'] == 1.0)})",
        f"- heldout_reconstruction_accuracy = {m['heldout_reconstruction_accuracy']:.4f} "
        f"(bar 1.0: {ok(m['heldout_reconstruction_accuracy'] == 1.0)})",
        f"- unique_means = {m['unique_means']} (bar {m['num_archs']}: {ok(m['unique_means'] == m['num_archs'])})",
        f"- pretraining {stage_seconds:.1f} s (bar ≤ {BAR_SECONDS:.0f} s with 2 threads: {ok(stage_seconds <= BAR_SECONDS)})",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

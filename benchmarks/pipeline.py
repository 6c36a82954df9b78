"""Wall time of the default pipeline (`snakemake --cores 8`) from an empty run folder.

Runs the committed workflow on a config (default: config/config.yaml) in a fresh working
folder, then prints and appends to benchmarks/RESULTS.md: the wall time, the time per rule,
and what the run found (per method: seeds, mean ± std of retrain accuracy and of the found
cells' NB201 CIFAR-10 table accuracy).

    python benchmarks/pipeline.py [--config config/config.yaml] [--workdir DIR] [--cores 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from e2nas import layout
from results_file import append_result

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    parser.add_argument("--workdir", default=None, help="empty folder to run in (default: a temporary one)")
    parser.add_argument("--cores", default="8")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="e2nas-pipeline-"))
    run = yaml.safe_load(Path(args.config).read_text())["run"]
    snakemake = Path(sys.executable).parent / "snakemake"
    cmd = [str(snakemake), "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--configfile", args.config, "--cores", args.cores]
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"pipeline failed after {wall:.0f} s:\n{out.stderr[-4000:]}")

    results = workdir / layout.RESULTS / run
    frame = pd.read_csv(workdir / layout.path("report_summary", run=run))
    for column in ("nb201_cifar10", "ground_truth_percentile"):  # absent in the DARTS space
        frame[column] = frame.get(column, float("nan"))
    found = frame.groupby("method").agg(
        seeds=("seed", "count"),
        retrain_mean=("test_accuracy", "mean"),
        retrain_std=("test_accuracy", "std"),
        nb201_c10_mean=("nb201_cifar10", "mean"),
        nb201_c10_std=("nb201_cifar10", "std"),
        percentile_mean=("ground_truth_percentile", "mean"),
        percentile_std=("ground_truth_percentile", "std"),
    )
    load = os.getloadavg()[0]
    lines = [
        f"\n## pipeline — {datetime.now().isoformat(timespec='seconds')}\n",
        f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), `snakemake --cores {args.cores}`, "
        f"config {Path(args.config).name} (run `{run}`), from an empty folder; load average at the end {load:.1f}\n",
        f"**wall time: {wall:.0f} s ({wall / 60:.1f} min)**\n",
        *job_times(results),
        "",
        "",
        "What it found (retrain: test accuracy % of the found cell trained from scratch on this data; NB201 C-10: "
        "the cell's CIFAR-10 table accuracy, a transfer proxy):",
        "",
        "| method | seeds | retrain acc (mean ± std) | ground-truth percentile (mean ± std) | NB201 C-10 (mean ± std) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    def mean_std(mean, std) -> str:
        return "–" if mean != mean else f"{mean:.2f}" if std != std else f"{mean:.2f} ± {std:.2f}"

    for method, r in found.iterrows():
        lines.append(
            f"| {method} | {int(r.seeds)} | {mean_std(r.retrain_mean, r.retrain_std)} | "
            f"{mean_std(r.percentile_mean, r.percentile_std)} | {mean_std(r.nb201_c10_mean, r.nb201_c10_std)} |"
        )
    lines += latent_diagnostics(results) + supernet_ranking(results)
    text = "\n".join(lines) + "\n"
    print(text)
    append_result(text)


def job_times(results: Path, by: str = "rule") -> list[str]:
    """Papermill's duration of every notebook job of a run, summed per rule (or per `by`: a layout wildcard)."""
    durations: dict[str, list[float]] = {}
    for kind in ("notebook_log", "report_notebook"):
        for nb in layout.run_files(results, kind):
            fields = {"rule": "report", **layout.parse(nb)}
            key = " · ".join(str(fields.get(k, "–")) for k in by.split(","))
            seconds = json.loads(Path(nb).read_text())["metadata"]["papermill"].get("duration")
            if seconds is not None:  # None: the job was stopped and has not finished since
                durations.setdefault(key, []).append(seconds)
    header = " | ".join(by.split(","))
    return [f"| {header} | jobs | notebook seconds (sum) | per job (mean) |",
            "| " + " | ".join("---" for _ in by.split(",")) + " | ---: | ---: | ---: |",
            *(f"| {key.replace(' · ', ' | ')} | {len(secs)} | {sum(secs):.0f} | {sum(secs) / len(secs):.0f} |"
              for key, secs in sorted(durations.items()))]


def supernet_ranking(results: Path) -> list[str]:
    """Stage 6's Kendall τ of every supernet against the ground truth and the NB201 proxy, per seed."""
    rows = []
    for file in layout.run_files(results, "ranking"):
        path, res = Path(file), json.loads(Path(file).read_text())
        for name, entry in res["supernets"].items():
            tau = lambda ref, entry=entry: "–" if not entry.get(ref) else f"{entry[ref]['kendall_tau']:.2f}"  # noqa: E731
            rows.append(f"| {path.stem} | {name} | {len(res['cells'])} | {tau('ground_truth')} | {tau('nb201_cifar10')} |")
        ceiling = res.get("noise_ceiling") or {}
        agreement = res.get("ground_truth_vs_nb201") or {}
        if ceiling:
            rows.append(f"| {path.stem} | (the table's own ceiling over its {ceiling['cells']} cells; its τ with NB201 over "
                        f"these cells: {agreement.get('kendall_tau', float('nan')):.2f}) | | {ceiling['tau_all']:.2f} | |")
    if not rows:
        return []
    return ["", "How the supernets rank cells (stage 6, Kendall τ):", "",
            "| seed | supernet | cells | τ vs ground truth | τ vs NB201 C-10 |", "| --- | --- | ---: | ---: | ---: |", *rows]


def latent_diagnostics(results: Path) -> list[str]:
    """Each E2NAS search's last-epoch diagnostics beside its found cell (docs/method.md)."""
    rows = []
    for path in layout.run_files(results, "search_result"):
        if not layout.parse(path)["method"].startswith("e2nas"):
            continue
        res = json.loads(Path(path).read_text())
        last = res["trajectory"][-1]
        rows.append(
            f"| {res['method']} | {res['seed']} | {last['sampled_decoded_fraction']:.2f} | {last['decoder_confidence']:.3f} | "
            f"{last['sigma']:.3f} / {res['sigma_max']:.3f} | {last['mu_nearest_distance']:.2f} / {res['encoding_nn_median']:.2f} | "
            f"{last['distinct_cells']} | `{res['arch']}` |"
        )
    if not rows:
        return []
    return [
        "",
        "E2NAS in its last search epoch (σ against σ_max; distance from μ to the nearest encoded cell against the "
        "median nearest-neighbour distance of the encodings):",
        "",
        "| method | seed | sampled_decoded_fraction | decoder_confidence | sigma / sigma_max | mu_nearest_distance / "
        "encoding_nn_median | distinct cells | found cell |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
    ]


if __name__ == "__main__":
    main()

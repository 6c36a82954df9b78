"""The study's table: does each method find better cells than chance, judged by the ground truth?

Reads a finished run of config/study-nb201.yaml (its summary.csv, stage 6's rankings and the E2NAS
searches' diagnostics), writes one row per method and seed to benchmarks/study/{run}.csv, and prints
and appends to benchmarks/RESULTS.md, per method: the mean ground-truth percentile with a 95%
percentile-bootstrap interval over seeds, retrain accuracy, the NB201 CIFAR-10 transfer proxy, the
Kendall τ of the method's searched supernet against the ground truth; then which methods E2NAS is
ahead of (disjoint intervals), what the supernets' own favourites score, and the E2NAS diagnostics.

    python benchmarks/study.py --results results/study-nb201 [--wall-minutes M] [--revision REV]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import layout  # noqa: E402
from pipeline import latent_diagnostics, supernet_ranking  # noqa: E402
from results_file import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
COLUMNS = ["method", "seed", "arch", "ground_truth_percentile", "retrain_accuracy", "nb201_cifar10", "supernet_tau",
           "supernet_tau_nb201", "start_arch", "distinct_cells_last_epoch"]
ORDER = ["e2nas", "e2nas-noexplore", "e2nas-nocomplement", "gdas", "darts", "rsps", "random"]
BOOTSTRAP_DRAWS = 10_000


def rankings(results: Path) -> dict[int, dict]:
    return {layout.parse(p)["seed"]: json.loads(Path(p).read_text()) for p in layout.run_files(results, "ranking")}


def study_rows(results: Path) -> pd.DataFrame:
    """One row per method and seed (the random reference included; reference cells left out)."""
    summary = pd.read_csv(layout.path("report_summary", run=results.name, root=str(results.parent)))
    summary = summary[summary["method"].isin(ORDER)]
    ranked = rankings(results)
    rows = []
    for _, r in summary.iterrows():
        seed = int(r["seed"])
        entry = ranked.get(seed, {}).get("supernets", {}).get(r["method"], {})  # random: no supernet
        search = Path(layout.path("search_result", run=results.name, root=str(results.parent), dataset=r["dataset"],
                                  space=r["space"], method=r["method"], seed=seed))
        found = json.loads(search.read_text()) if search.is_file() else {}
        rows.append({
            "method": r["method"], "seed": seed, "arch": r["arch"],
            "ground_truth_percentile": r["ground_truth_percentile"], "retrain_accuracy": r["test_accuracy"],
            "nb201_cifar10": r["nb201_cifar10"],
            "supernet_tau": (entry.get("ground_truth") or {}).get("kendall_tau", np.nan),
            "supernet_tau_nb201": (entry.get("nb201_cifar10") or {}).get("kendall_tau", np.nan),
            "start_arch": found.get("start_arch"),
            "distinct_cells_last_epoch": found["trajectory"][-1].get("distinct_cells") if found.get("trajectory") else None,
        })
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"distinct_cells_last_epoch": "Int64"})
    frame["order"] = frame["method"].map(ORDER.index)
    return frame.sort_values(["order", "seed"]).drop(columns="order").reset_index(drop=True)


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean over `values` (seeds resampled with replacement)."""
    means = rng.choice(values, size=(BOOTSTRAP_DRAWS, len(values)), replace=True).mean(axis=1)
    return tuple(np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))


def per_method(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for method, group in frame.groupby("method", sort=False):
        pct = group["ground_truth_percentile"].to_numpy(float)
        low, high = bootstrap_interval(pct, rng)
        out.append({
            "method": method, "seeds": len(group),
            "stayed": int((group["arch"] == group["start_arch"]).sum()) if group["start_arch"].notna().any() else None,
            "percentile_mean": pct.mean(), "ci_low": low, "ci_high": high,
            "retrain_mean": group["retrain_accuracy"].mean(), "retrain_std": group["retrain_accuracy"].std(),
            "nb201_mean": group["nb201_cifar10"].mean(), "nb201_std": group["nb201_cifar10"].std(),
            "tau_mean": group["supernet_tau"].mean(), "tau_std": group["supernet_tau"].std(),
        })
    return pd.DataFrame(out).set_index("method")


def supernet_favourites(results: Path) -> list[str]:
    """Per seed and supernet: the ground-truth percentile of the ranked cell it scores highest, i.e. what a
    search that exploited that supernet perfectly among these cells would find, beside the best cell's."""
    from e2nas.tables.fashion_mnist import GroundTruthTable

    table = GroundTruthTable.load()
    rows = []
    for seed, res in sorted(rankings(results).items()):
        truth = np.asarray(res["ground_truth"], float)
        best = table.percentile(truth.max())
        for name, entry in res["supernets"].items():
            favourite = int(np.argmax(entry["accuracy"]))
            rows.append(f"| {seed} | {name} | {table.percentile(truth[favourite]):.0f} | {best:.0f} |")
    return ["", "What each supernet would pick (the highest-scoring of the ranked cells, its ground-truth mean as a "
            "percentile of the table's trainings) against the best ranked cell:", "",
            "| seed | supernet | its favourite's percentile | best ranked cell's percentile |", "| ---: | --- | ---: | ---: |",
            *rows]


def table(frame: pd.DataFrame, stats: pd.DataFrame) -> list[str]:
    def pm(mean, std) -> str:
        return "–" if mean != mean else f"{mean:.2f}" if std != std else f"{mean:.2f} ± {std:.2f}"

    lines = ["| method | seeds | ground-truth percentile: mean [95% bootstrap CI] | retrain acc % | NB201 C-10 % | "
             "searched supernet's τ vs ground truth | seeds whose found cell is the start cell |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method, s in stats.iterrows():
        lines.append(f"| {method} | {int(s.seeds)} | {s.percentile_mean:.1f} [{s.ci_low:.1f}, {s.ci_high:.1f}] | "
                     f"{pm(s.retrain_mean, s.retrain_std)} | {pm(s.nb201_mean, s.nb201_std)} | {pm(s.tau_mean, s.tau_std)} | "
                     f"{'–' if s.stayed is None or s.stayed != s.stayed else int(s.stayed)} |")
    e2nas = stats.loc["e2nas"] if "e2nas" in stats.index else None
    if e2nas is not None:
        ahead = [m for m, s in stats.iterrows() if m != "e2nas" and e2nas.ci_low > s.ci_high]
        behind = [m for m, s in stats.iterrows() if m != "e2nas" and e2nas.ci_high < s.ci_low]
        lines += ["", f"E2NAS's mean percentile {e2nas.percentile_mean:.1f} (goal ≥ 90); ahead of (disjoint intervals): "
                      f"{', '.join(ahead) or 'none'}; behind: {', '.join(behind) or 'none'}; overlapping: "
                      f"{', '.join(m for m in stats.index if m not in ahead + behind + ['e2nas']) or 'none'}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="results/{run} of a finished study run")
    parser.add_argument("--out", default=None, help="CSV to write (default: benchmarks/study/{run}.csv)")
    parser.add_argument("--wall-minutes", type=float, default=None, help="the run's wall time, to record")
    parser.add_argument("--revision", default=None, help="the git revision the run used, to record")
    args = parser.parse_args()
    results = Path(args.results)
    frame = study_rows(results)
    out = Path(args.out or HERE / "study" / f"{results.name}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    stats = per_method(frame)
    when = datetime.now().isoformat(timespec="minutes")
    lines = [
        f"\n## study — {when} (`{results.name}`, {int(stats.seeds.min())}–{int(stats.seeds.max())} seeds per method)\n",
        f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs); revision {args.revision or 'unrecorded'}; "
        f"wall {'unrecorded' if args.wall_minutes is None else f'{args.wall_minutes:.0f} min'}; per-run rows in "
        f"`{out.relative_to(HERE.parent) if out.is_relative_to(HERE.parent) else out}`\n",
        *table(frame, stats),
        *supernet_favourites(results),
        *supernet_ranking(results),
        *latent_diagnostics(results),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    append_result(text)


if __name__ == "__main__":
    main()

"""The study's table: does each method find better cells than what a user would do instead, judged by the ground truth?

Reads a finished run of config/study-nb201.yaml (its summary.csv, stage 6's rankings, the searches'
results), writes one row per method and seed to benchmarks/study/{run}.csv and a figure of each
seed's percentile against the method's CPU-seconds (benchmarks/study/{run}-cost.png), and prints and
appends to benchmarks/RESULTS.md: per method the mean ground-truth percentile (the mean over a found
cell's judge trainings of each one's percentile among the table's single trainings) with a 95%
percentile-bootstrap interval over seeds; E2NAS against every other method, paired by seed, with
Holm-corrected bootstrap intervals (e2nas.statistics); the smallest difference the run could detect;
each searched supernet's τ on the ranked (held-out) cells; where each method's found cell sits
under the warm-up supernet and under its own searched one; and each supernet's favourite among the
ranked cells (what a perfect optimiser under that judge would find there).

    python benchmarks/study.py --results results/study-nb201 [--wall-minutes M] [--revision REV]
                               [--recorded benchmarks/study/study-nb201.csv]
    python benchmarks/study.py --size-random-search [--configfile config/study-nb201.yaml]

`--recorded CSV` adds the rows of seeds the run does not hold from an earlier record of the same profile
(this script's own CSV, kept in git): a study run over several machines or sessions whose `results/` did not
survive. A seed in both is checked against its record and a difference named (the fresh row is used): on
one machine a rerun is bitwise the same, across machines it need not be (CPU kernels round differently, so
trainings differ in the last digits and searches can take other paths: RESULTS.md, seed 0 rerun 2026-12-07).

`--size-random-search` times, on the profile and in CPU-seconds, one table-protocol training with its
scoring (random search's unit) and one E2NAS search job with its share of the warm-up (shared by the
supernet methods of a seed), the VGAE and the graphs (shared by every E2NAS job of the run), and prints
k = round(E2NAS total / one training) and the search-only k.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import layout, spaces  # noqa: E402
from e2nas import statistics as st  # noqa: E402
from e2nas.names import E2NAS_METHODS, METHODS, RANDOM_METHOD  # noqa: E402
from pipeline import job_times, latent_diagnostics  # noqa: E402
from results_file import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COLUMNS = ["method", "seed", "arch", "ground_truth_percentile", "ground_truth_percentile_single", "judge_trainings",
           "retrain_accuracy", "nb201_cifar10", "supernet_tau", "supernet_tau_nb201", "found_in_warmup_percentile",
           "found_in_own_supernet_percentile", "parameter_free_edges", "cpu_seconds", "start_arch", "distinct_cells_last_epoch"]
ORDER = [*METHODS, RANDOM_METHOD]
REFERENCE = "e2nas"


def rankings(results: Path) -> dict[int, dict]:
    return {layout.parse(p)["seed"]: json.loads(Path(p).read_text()) for p in layout.run_files(results, "ranking")}


def study_rows(results: Path) -> pd.DataFrame:
    """One row per method and seed (the random reference included; reference cells left out)."""
    summary = pd.read_csv(layout.path("report_summary", run=results.name, root=str(results.parent)))
    summary = summary[summary["method"].isin(ORDER)]
    ranked = rankings(results)
    nb201 = spaces.get("nb201")
    free = set(nb201.parameter_free_ops)
    rows = []
    for _, r in summary.iterrows():
        seed = int(r["seed"])
        ranking = ranked.get(seed, {})
        entry = ranking.get("supernets", {}).get(r["method"], {})  # random, random-search, zero-cost: no supernet
        found_entry = ranking.get("found", {}).get(r["method"], {})
        search = Path(layout.path("search_result", run=results.name, root=str(results.parent), dataset=r["dataset"],
                                  space=r["space"], method=r["method"], seed=seed))
        found = json.loads(search.read_text()) if search.is_file() else {}
        rows.append({
            "method": r["method"], "seed": seed, "arch": r["arch"],
            "ground_truth_percentile": r["ground_truth_percentile"],
            "ground_truth_percentile_single": r.get("ground_truth_percentile_single", r["ground_truth_percentile"]),
            "judge_trainings": r.get("judge_trainings", 1), "retrain_accuracy": r["test_accuracy"],
            "nb201_cifar10": r["nb201_cifar10"],
            "supernet_tau": (entry.get("ground_truth") or {}).get("kendall_tau", np.nan),
            "supernet_tau_nb201": (entry.get("nb201_cifar10") or {}).get("kendall_tau", np.nan),
            "found_in_warmup_percentile": found_entry.get("found_in_warmup_percentile", np.nan),
            "found_in_own_supernet_percentile": found_entry.get("found_in_own_supernet_percentile", np.nan),
            "parameter_free_edges": sum(nb201.ops[o] in free for o in nb201.parse(r["arch"])),
            "cpu_seconds": found.get("cpu_seconds", np.nan),
            "start_arch": found.get("start_arch"),
            "distinct_cells_last_epoch": found["trajectory"][-1].get("distinct_cells") if found.get("trajectory") else None,
        })
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"distinct_cells_last_epoch": "Int64"})
    frame["order"] = frame["method"].map(ORDER.index)
    return frame.sort_values(["order", "seed"]).drop(columns="order").reset_index(drop=True)


def merge_recorded(frame: pd.DataFrame, recorded: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`frame` plus `recorded`'s rows for seeds `frame` lacks; each seed in both checked against its record."""
    key = ["method", "seed"]
    fresh_seeds = set(frame["seed"])
    both = frame.merge(recorded, on=key, suffixes=("", "_recorded"))
    agree = (both["arch"] == both["arch_recorded"]) & np.isclose(
        both["ground_truth_percentile"], both["ground_truth_percentile_recorded"], atol=0.01)
    notes = []
    if len(both):
        notes.append(f"{int(agree.sum())} of {len(both)} method-seed rows rerun here reproduce their recorded row "
                     f"(seeds {', '.join(map(str, sorted(set(both['seed']))))}: same found cell and percentile)")
    for _, r in both[~agree].iterrows():
        notes.append(f"{r['method']} seed {r['seed']} differs from its record: `{r['arch']}` at {r['ground_truth_percentile']:.2f} "
                     f"here, `{r['arch_recorded']}` at {r['ground_truth_percentile_recorded']:.2f} recorded (the fresh row is used)")
    added = recorded[~recorded["seed"].isin(fresh_seeds)]
    if len(added):
        notes.append(f"seeds {', '.join(map(str, sorted(set(added['seed']))))} from the record ({len(added)} rows; not in this run's results)")
    merged = pd.concat([frame, added[frame.columns]], ignore_index=True).astype({"distinct_cells_last_epoch": "Int64"})
    merged["order"] = merged["method"].map(ORDER.index)
    return merged.sort_values(["order", "seed"]).drop(columns="order").reset_index(drop=True), notes


def per_method(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for method, group in frame.groupby("method", sort=False):
        mean, low, high = st.mean_interval(group["ground_truth_percentile"], rng)
        out.append({
            "method": method, "seeds": len(group), "percentile_mean": mean, "ci_low": low, "ci_high": high,
            "single_mean": group["ground_truth_percentile_single"].mean(),
            "percentile_sd": group["ground_truth_percentile"].std(),
            "retrain_mean": group["retrain_accuracy"].mean(), "free_mean": group["parameter_free_edges"].mean(),
            "tau_mean": group["supernet_tau"].mean(), "tau_std": group["supernet_tau"].std(),
            "warmup_pct": group["found_in_warmup_percentile"].mean(), "own_pct": group["found_in_own_supernet_percentile"].mean(),
            "cpu_mean": group["cpu_seconds"].mean(),
        })
    return pd.DataFrame(out).set_index("method")


def fmt(value, digits: int = 1) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def method_table(stats: pd.DataFrame) -> list[str]:
    lines = ["| method | seeds | ground-truth percentile: mean [95% bootstrap CI] | single-training percentile | retrain acc % "
             "| parameter-free edges | searched supernet's τ (held-out cells) | found cell under the warm-up / its own supernet "
             "(percentile of ranked cells) | CPU-s of its job |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for method, s in stats.iterrows():
        tau = fmt(s.tau_mean, 2) + ("" if s.tau_std != s.tau_std else f" ± {s.tau_std:.2f}")
        lines.append(f"| {method} | {int(s.seeds)} | {s.percentile_mean:.1f} [{s.ci_low:.1f}, {s.ci_high:.1f}] | {fmt(s.single_mean)} | "
                     f"{fmt(s.retrain_mean, 2)} | {fmt(s.free_mean)} | {tau} | {fmt(s.warmup_pct, 0)} / {fmt(s.own_pct, 0)} | "
                     f"{fmt(s.cpu_mean, 0)} |")
    return lines


def comparisons(frame: pd.DataFrame, stats: pd.DataFrame) -> list[str]:
    if REFERENCE not in stats.index:
        return []
    by = {m: dict(zip(g["seed"], g["ground_truth_percentile"])) for m, g in frame.groupby("method")}
    rows = st.paired_comparisons(by, REFERENCE)
    spread = float(np.sqrt(np.nanmean(stats["percentile_sd"] ** 2))) if stats["percentile_sd"].notna().any() else np.nan
    n = int(stats.loc[REFERENCE, "seeds"])
    lines = ["", f"E2NAS − each method, paired by seed (mean difference of percentiles; one-sided bootstrap p for \"E2NAS is "
                 f"ahead\", Holm at 5% over {len(rows)} comparisons; the interval at each comparison's Holm level):", "",
             "| other method | seeds | E2NAS − other | Holm-level interval | p | Holm level | E2NAS ahead? |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in sorted(rows, key=lambda r: ORDER.index(r["other"])):
        lines.append(f"| {r['other']} | {r['seeds']} | {fmt(r['difference'])} | [{fmt(r['low'])}, {fmt(r['high'])}] | "
                     f"{fmt(r['p'], 4)} | {fmt(r['holm_alpha'], 4)} | {'yes' if r['ahead'] else 'no'} |")
    headline = next((r for r in rows if r["other"] == "random-search"), None)
    if n < st.MIN_PAIRED_SEEDS:  # no spread from one seed, no test below three (e2nas.statistics)
        return [*lines, "", f"At {n} seed(s) there is no spread to measure and no test (it needs {st.MIN_PAIRED_SEEDS} paired "
                            "seeds): the differences above are one seed's, not findings."]
    lines += ["", f"Seed-to-seed spread of a method's percentile (pooled sd): {spread:.1f} points; at {n} seeds the smallest "
                  f"difference of means this run detects (80% power, two-sided 5%) is {st.detectable_difference(spread, n):.1f} points."]
    if headline:
        lines.append(f"Headline: E2NAS − random-search = {fmt(headline['difference'])} percentile points "
                     f"[{fmt(headline['low'])}, {fmt(headline['high'])}]; "
                     f"{'E2NAS is ahead' if headline['ahead'] else 'E2NAS is not ahead'} at Holm-corrected 5%; "
                     f"detecting a difference of this size would take about {st.seeds_needed(spread, headline['difference'])} seeds.")
    return lines


def judge_favourites(results: Path) -> list[str]:
    """Per supernet, the ground-truth percentile of its favourite among stage 6's ranked cells: what an optimiser that
    found exactly what this judge likes best would get there, so a found cell's shortfall splits into judge and optimiser."""
    per_supernet: dict[str, list[tuple[int, dict]]] = {}
    cells = set()
    for seed, ranking in sorted(rankings(results).items()):
        cells.add(len(ranking["cells"]))
        for name, entry in ranking["supernets"].items():
            per_supernet.setdefault(name, []).append((seed, entry))
    if not per_supernet:
        return []
    lines = ["", f"What each judge likes best (stage 6: the highest-scoring of the {'/'.join(map(str, sorted(cells)))} ranked cells, "
                 "the cell a perfect optimiser under that supernet would pick among them; its ground-truth mean as a "
                 "percentile of the table's trainings), over the seeds in this run's results:", "",
             "| supernet | seeds | its favourite's percentile: mean (per seed) | top-10% precision | parameter-free share of its top 10 |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, entries in per_supernet.items():
        value = lambda key, entries=entries: [e.get(key, np.nan) for _, e in entries]  # noqa: E731
        favourites = value("favourite_percentile")
        per_seed = ", ".join(f"{seed}: {f:.0f}" for (seed, _), f in zip(entries, favourites))
        lines.append(f"| {name} | {len(entries)} | {np.nanmean(favourites):.1f} ({per_seed}) | "
                     f"{np.nanmean(value('top10_precision')):.2f} | {np.nanmean(value('parameter_free_top10')):.2f} |")
    return lines


def cost_figure(frame: pd.DataFrame, out: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    markers = "os^vD<>phX*"
    for i, (method, group) in enumerate(frame.groupby("method", sort=False)):
        ax.scatter(group["cpu_seconds"].fillna(0), group["ground_truth_percentile"], marker=markers[i % len(markers)],
                   label=method, s=36)
    ax.set(xscale="symlog", xlabel="CPU-seconds of the method's own job (warm-up, VGAE, graphs apart; log scale)",
           ylabel="ground-truth percentile (mean of judge trainings)", ylim=(0, 100),
           title="Each seed's found cell: percentile against what its search cost")
    ax.legend(fontsize=8, ncol=2)
    fig.savefig(out, dpi=120)
    return out


def size_random_search(configfile: str) -> None:
    """CPU-seconds of one random-search training (with its scoring) and of one E2NAS job with its shares."""
    import torch

    from e2nas.data import DataConfig, load_dataset, split_for
    from e2nas.graphs import write_stage
    from e2nas.search import SearchConfig, run_search
    from e2nas.search.standalone import run_standalone
    from e2nas.vgae import VGAEConfig, run_pretraining
    from e2nas.warmup import WarmupConfig, run_warmup
    from supernet_ranking import merged_profile

    torch.set_num_threads(1)
    config = merged_profile(configfile, [])
    space = spaces.get(config["space"])
    data = load_dataset(config["datasets"][0])
    split = split_for(data, DataConfig(**config["data"]))
    cpu = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def timed(name, fn):
            start = time.process_time()
            fn()
            cpu[name] = time.process_time() - start

        search_cfg = SearchConfig(**{**config["search"], "random_search_trainings": 1})
        timed("training", lambda: run_standalone("random-search", data, split, search_cfg, config["ranking"]["images"], 0,
                                                 tmp / "rs.json", tmp / "rs.pt", space=space, progress=False))
        timed("graphs", lambda: write_stage(space, tmp / "g.pt", tmp / "g.json"))
        timed("vgae", lambda: run_pretraining(tmp / "g.pt", tmp / "v.pt", tmp / "v.json", VGAEConfig(**config["vgae"]), progress=False))
        timed("warmup", lambda: run_warmup(data, split, space.config("supernet", config["supernet"]), WarmupConfig(**config["warmup"]),
                                           0, tmp / "w.pt", tmp / "w.ckpt", progress=False, space=space))
        timed("search", lambda: run_search("e2nas", data, tmp / "w.pt", tmp / "v.pt", SearchConfig(**config["search"]), 0,
                                           tmp / "e.json", tmp / "e.ckpt", progress=False, graphs_path=tmp / "g.pt"))
    supernet_methods = [m for m in config["methods"] if m not in ("random-search", "params", "synflow")]
    e2nas_jobs = sum(m in E2NAS_METHODS for m in config["methods"]) * len(config["seeds"])
    share = cpu["warmup"] / max(len(supernet_methods), 1) + (cpu["graphs"] + cpu["vgae"]) / max(e2nas_jobs, 1)
    total = cpu["search"] + share
    text = "\n".join([
        f"\n## study — sizing random search ({datetime.now().isoformat(timespec='minutes')})\n",
        f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), 1 torch thread, profile {configfile}; "
        f"CPU-seconds (process time):\n",
        f"- one random-search training under the table's protocol with its scoring: {cpu['training']:.0f} s",
        f"- one E2NAS search job: {cpu['search']:.0f} s; its share of the warm-up ({cpu['warmup']:.0f} s over "
        f"{len(supernet_methods)} supernet methods) and of graphs + VGAE ({cpu['graphs'] + cpu['vgae']:.0f} s over "
        f"{e2nas_jobs} E2NAS jobs): {share:.0f} s; total {total:.0f} s",
        f"- k = round(E2NAS total / one training) = **{round(total / cpu['training'])}**; search-only k = "
        f"{round(cpu['search'] / cpu['training'])}",
    ]) + "\n"
    print(text)
    append_result(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="results/{run} of a finished study run")
    parser.add_argument("--out", default=None, help="CSV to write (default: benchmarks/study/{run}.csv)")
    parser.add_argument("--wall-minutes", type=float, default=None, help="the run's wall time, to record")
    parser.add_argument("--revision", default=None, help="the git revision the run used, to record")
    parser.add_argument("--size-random-search", action="store_true", help="time random search's unit against an E2NAS job")
    parser.add_argument("--configfile", default=str(REPO / "config" / "study-nb201.yaml"))
    parser.add_argument("--recorded", default=None, help="an earlier CSV of this script: its seeds the run lacks are added")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    if args.size_random_search:
        size_random_search(args.configfile)
        return
    if not args.results:
        parser.error("--results is required (or --size-random-search)")
    results = Path(args.results)
    frame = study_rows(results)
    merged_notes = []
    if args.recorded:
        frame, merged_notes = merge_recorded(frame, pd.read_csv(args.recorded))
    out = Path(args.out or HERE / "study" / f"{results.name}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.round(2).to_csv(out, index=False)
    figure = cost_figure(frame, out.with_name(f"{out.stem}-cost.png"))
    stats = per_method(frame)
    when = datetime.now().isoformat(timespec="minutes")
    rel = lambda p: p.relative_to(REPO) if p.is_relative_to(REPO) else p  # noqa: E731
    lines = [
        f"\n## study — {when} (`{results.name}`, {int(stats.seeds.min())}–{int(stats.seeds.max())} seeds per method)\n",
        f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs); revision {args.revision or 'unrecorded'}; "
        f"wall {'unrecorded' if args.wall_minutes is None else f'{args.wall_minutes:.0f} min'}; per-run rows in `{rel(out)}`, "
        f"percentile against CPU-seconds in `{rel(figure)}`\n",
        *[f"- {note}" for note in merged_notes], *([""] if merged_notes else []),
        *method_table(stats),
        *comparisons(frame, stats),
        *judge_favourites(results),
        *latent_diagnostics(results),
        "", "Job times (papermill's duration of each notebook, summed by rule and method; a judge job trains one cell for "
        "every method that found it):", "",
        *job_times(results, "rule,method"),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_record:
        append_result(text)


if __name__ == "__main__":
    main()

"""How well a warm-up regime's supernet ranks the ground-truth table's cells (the judge every search shares).

One regime per call, in one process, with no Snakemake and no MLflow: warm up a supernet under a
profile (merged over config/config.yaml, as Snakemake merges it) plus `--set` overrides, score the
chosen table cells on the profile's ranking images (the first `ranking.images` of the arch half),
and write

    {"regime": {...}, "seed": S, "trained_paths": N, "warmup_seconds": ..., "cells": [{"arch", "score"}, ...]}

(score = the supernet's accuracy in %), and the supernet in stage 3's format, so that
`e2nas.ranking.score(OUT.pt, cells, e2nas.data.load_dataset("fashion-mnist"), RankingConfig(images=...), "cpu")`
reproduces the scores.

    python benchmarks/supernet_ranking.py --configfile config/study-nb201.yaml --seed 0 --cells held-out \\
        --json out/uniform-s0.json --save-supernet out/uniform-s0.pt [--set warmup.sampling=fair --set supernet.split_edge=0]

`--summarize OUT1.json OUT2.json ...` reads such files and prints (and with --record appends to
benchmarks/RESULTS.md) one row per regime and subset (tuning, held-out): Kendall τ and Spearman ρ
against the table's mean, the parameter count's τ on the same cells, the parameter-free share of
the supernet's top 10, top-10% precision, its favourite's percentile, trained paths and seconds,
averaged over the regime's seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import spaces  # noqa: E402
from e2nas.data import DataConfig, load_dataset, split_for  # noqa: E402
from e2nas.ranking import RankingConfig, cell_parameters, correlation, judge_quality, score  # noqa: E402
from e2nas.tables.fashion_mnist import GroundTruthTable  # noqa: E402
from e2nas.warmup import WarmupConfig, run_warmup  # noqa: E402
from results_file import append_result  # noqa: E402


def merged_profile(configfile: str | None, overrides: list[str]) -> dict:
    """config/config.yaml, the profile merged over it key by key, then each `section.key=value` (YAML values)."""
    def merge(base, extra):
        out = dict(base)
        for key, value in (extra or {}).items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if configfile:
        config = merge(config, yaml.safe_load(Path(configfile).read_text()))
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            sys.exit(f"--set {item!r}: write section.key=value (e.g. warmup.sampling=fair)")
        config[section] = {**(config.get(section) or {}), name: yaml.safe_load(value)}
    return config


def regime_of(config: dict) -> dict:
    """What names a warm-up regime: its supernet and warm-up sections."""
    return {"supernet": dict(config["supernet"]), "warmup": dict(config["warmup"])}


def measure(args) -> None:
    config = merged_profile(args.configfile, args.set)
    space = spaces.get(config["space"])
    table = GroundTruthTable.load()
    cells = table.subset(args.cells)
    dataset = config["datasets"][0]
    data = load_dataset(dataset)
    split = split_for(data, DataConfig(**config["data"]))
    torch.set_num_threads(args.threads)
    net_cfg, cfg = space.config("supernet", config["supernet"]), WarmupConfig(**config["warmup"])
    out_pt = Path(args.save_supernet) if args.save_supernet else Path(tempfile.mkdtemp()) / "warmup.pt"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_warmup(data, split, net_cfg, cfg, args.seed, out_pt, Path(tmp) / "checkpoint.pt", progress=not args.quiet, space=space)
    seconds = time.perf_counter() - start
    trained = torch.load(out_pt, weights_only=True)["trained_paths"]
    ranking = RankingConfig(**{**(config.get("ranking") or {}), "subset": "all"})
    scores = score(out_pt, cells, data, ranking, "cpu")
    out = {"regime": regime_of(config), "overrides": args.set, "profile": args.configfile, "seed": args.seed,
           "trained_paths": trained, "warmup_seconds": seconds, "ranking_images": ranking.images, "threads": args.threads,
           "cells": [{"arch": a, "score": s} for a, s in zip(cells, scores)]}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"{args.json}: {trained} paths in {seconds:.0f} s, {len(cells)} cells scored")


def quality(run: dict, subset: str, table: GroundTruthTable, params: dict) -> dict:
    space = spaces.get(table.space)
    kept = [c for c in run["cells"] if c["arch"] in set(table.subset(subset))]
    cells, scores = [c["arch"] for c in kept], [c["score"] for c in kept]
    truth = table.mean().loc[cells].tolist()
    counts = [params[c] for c in cells]
    return {"cells": len(cells), **correlation(scores, truth),
            "params_tau": correlation(counts, truth)["kendall_tau"],
            **judge_quality(scores, truth, cells, space, table)}


def label_of(run: dict) -> str:
    return ", ".join(run["overrides"]) or "profile as it is"


def summarize(args) -> None:
    table = GroundTruthTable.load()
    space = spaces.get(table.space)
    runs = [json.loads(Path(p).read_text()) for p in args.summarize]
    every = sorted({c["arch"] for r in runs for c in r["cells"]})
    params = dict(zip(every, cell_parameters(space, every, space.config("retrain", table.protocol.retrain), 10, 1)))
    groups = defaultdict(list)
    for run in runs:
        groups[(label_of(run), run["trained_paths"])].append(run)
    lines = [f"\n## supernet_ranking — {datetime.now().isoformat(timespec='minutes')}\n",
             f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), torch {torch.__version__}; "
             f"profile {runs[0]['profile']}; each row: the mean over the regime's seeds (values per seed in brackets); "
             f"τ/ρ against the table's mean; 'free': parameter-free share of the ops of the supernet's top 10; "
             f"'top-10%': precision among the truly best ⌈n/10⌉; 'fav.': its favourite's percentile among the table's trainings\n"]
    for subset in ("tuning", "held-out"):
        lines += [f"\n{subset} cells:\n", "| regime | trained paths | seeds | τ | ρ | params τ | free | top-10% | fav. | seconds |",
                  "| --- | ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
        for (label, trained), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            q = [quality(r, subset, table, params) for r in group]

            def col(key, d=2, q=q):
                values = [x[key] for x in q]
                return f"{np.mean(values):.{d}f}" + (f" ({', '.join(f'{v:.{d}f}' for v in values)})" if len(values) > 1 else "")

            lines.append(f"| {label} | {trained:,} | {', '.join(str(r['seed']) for r in group)} | {col('kendall_tau')} | "
                         f"{col('spearman_rho')} | {col('params_tau')} | {col('parameter_free_top10')} | {col('top10_precision')} | "
                         f"{col('favourite_percentile', 0)} | {np.mean([r['warmup_seconds'] for r in group]):.0f} |")
        lines.append(f"\n(ground truth's own top 10 of these cells: "
                     f"{space.parameter_free_share(table.mean().loc[table.subset(subset)].nlargest(10).index.tolist()):.2f} parameter-free)")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        append_result(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", help="a profile merged over config/config.yaml (e.g. config/study-nb201.yaml)")
    parser.add_argument("--seed", type=int, default=0, help="the warm-up's seed")
    parser.add_argument("--cells", default="held-out", choices=("all", "tuning", "held-out"), help="which table cells to score")
    parser.add_argument("--json", help="where the scores go")
    parser.add_argument("--save-supernet", help="where the warmed-up supernet goes (stage 3's format)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="a config override (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--summarize", nargs="+", metavar="JSON", help="summarize measured regimes instead of measuring one")
    parser.add_argument("--record", action="store_true", help="with --summarize: append the tables to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.summarize:
        summarize(args)
    elif not args.json:
        parser.error("--json is required to measure a regime")
    else:
        measure(args)


if __name__ == "__main__":
    main()

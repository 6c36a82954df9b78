"""Does E2NAS find what its judge prefers, and which judge? The search's drift, measured (issue 31).

For each variant of the search (its method and `search` overrides) and seed, on a profile's warm-up
(merged over config/config.yaml, plus `--warmup-set` overrides): run the search from the seed's warm-up
supernet, then score the ground-truth table's cells with the searched supernet, and place the found cell
among the table cells' scores under the warm-up supernet (the judge before the search) and under its own
searched supernet (the judge it trained), on tuning and held-out cells. Also: the found cell's
parameter-free edges, whether it has a convolution, what the last epoch's weight half trained and the
arch half sampled (their parameter-free shares), the searched supernet's τ on held-out cells and the
search's seconds. One process, no Snakemake, no MLflow; every file is cached under --out, so a rerun
resumes.

    python benchmarks/search_drift.py --configfile config/study-nb201.yaml --warmup-set warmup.sampling=fair \\
        --warmup-set warmup.epochs=8 --seeds 0 1 2 --out results/drift \\
        --variant paper:method=e2nas --variant frozen:method=e2nas,search.weight_paths=frozen
    python benchmarks/search_drift.py --summarize results/drift [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2nas import spaces  # noqa: E402
from e2nas.data import DataConfig, load_dataset, split_for  # noqa: E402
from e2nas.ranking import RankingConfig, correlation, percentile_among, score  # noqa: E402
from e2nas.tables.fashion_mnist import GroundTruthTable  # noqa: E402
from results_file import append_result  # noqa: E402
from supernet_ranking import merged_profile  # noqa: E402

SUBSETS = ("tuning", "held-out")


def parse_variant(text: str) -> tuple[str, str, dict]:
    """'name:method=e2nas,search.key=value,...' → (name, method, search overrides)."""
    name, _, body = text.partition(":")
    method, search = "e2nas", {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key == "method":
            method = value
        elif key.startswith("search."):
            search[key.removeprefix("search.")] = yaml.safe_load(value)
        else:
            sys.exit(f"--variant {text!r}: keys are method= and search.KEY=")
    return name, method, search


def cached_json(path: Path, make):
    if path.is_file():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n")
    return value


def measure(args) -> None:
    from e2nas.graphs import write_stage
    from e2nas.search import SearchConfig, run_search
    from e2nas.vgae import VGAEConfig, run_pretraining
    from e2nas.warmup import WarmupConfig, run_warmup

    torch.set_num_threads(1)
    config = merged_profile(args.configfile, args.warmup_set)
    space = spaces.get(config["space"])
    table = GroundTruthTable.load()
    cells = table.subset("all")
    data = load_dataset(config["datasets"][0])
    split = split_for(data, DataConfig(**config["data"]))
    ranking = RankingConfig(**{**(config.get("ranking") or {}), "subset": "all"})
    out = Path(args.out)
    (out / "setup.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "setup.json").write_text(json.dumps({"profile": args.configfile, "warmup_set": args.warmup_set,
                                                "supernet": config["supernet"], "warmup": config["warmup"]}, indent=1))
    graphs, vgae = out / "graphs.pt", out / "vgae.pt"
    if not vgae.is_file():
        write_stage(space, graphs, out / "graphs.json")
        run_pretraining(graphs, vgae, out / "vgae.json", VGAEConfig(**config["vgae"]), progress=False)
    for seed in args.seeds:
        warmup = out / f"warmup-s{seed}.pt"
        if not warmup.is_file():
            run_warmup(data, split, space.config("supernet", config["supernet"]), WarmupConfig(**config["warmup"]), seed,
                       warmup, out / f"warmup-s{seed}.ckpt", progress=False, space=space)
        before = cached_json(out / f"warmup-s{seed}-scores.json", lambda w=warmup: score(w, cells, data, ranking, "cpu"))
        for text in args.variant:
            name, method, overrides = parse_variant(text)
            record = out / f"{name}-s{seed}.json"
            if record.is_file():
                continue
            cfg = SearchConfig(**{**config["search"], **overrides})
            start = time.perf_counter()
            result = run_search(method, data, warmup, vgae, cfg, seed, out / f"{name}-s{seed}-result.json",
                                out / f"{name}-s{seed}.ckpt", progress=False, graphs_path=graphs,
                                supernet_path=out / f"{name}-s{seed}-supernet.pt")
            seconds = time.perf_counter() - start
            after = score(out / f"{name}-s{seed}-supernet.pt", cells, data, ranking, "cpu")
            found = result["arch"]
            found_before = score(warmup, [found], data, ranking, "cpu")[0]
            found_after = score(out / f"{name}-s{seed}-supernet.pt", [found], data, ranking, "cpu")[0]
            ops = [space.ops[o] for o in space.parse(found)]
            last = result["trajectory"][-1]
            entry = {"variant": name, "method": method, "search": overrides, "seed": seed, "arch": found,
                     "parameter_free_edges": sum(o in space.parameter_free_ops for o in ops),
                     "has_convolution": any(o not in space.parameter_free_ops for o in ops),
                     "search_seconds": seconds, "steps_seconds": result["search_seconds"],
                     "trained_parameter_free_share": last.get("trained_parameter_free_share"),
                     "sampled_parameter_free_share": last.get("sampled_parameter_free_share"),
                     "distinct_cells_trained": last.get("distinct_cells_trained"), "distinct_cells": last.get("distinct_cells"),
                     "in_table": found in set(cells), "ground_truth_mean": float(table.mean()[found]) if found in set(cells) else None}
            for subset in SUBSETS:
                keep = [i for i, c in enumerate(cells) if c in set(table.subset(subset))]
                entry[f"warmup_percentile_{subset}"] = percentile_among(found_before, [before[i] for i in keep])
                entry[f"own_percentile_{subset}"] = percentile_among(found_after, [after[i] for i in keep])
                truth = table.mean().loc[[cells[i] for i in keep]].tolist()
                entry[f"searched_tau_{subset}"] = correlation([after[i] for i in keep], truth)["kendall_tau"]
                entry[f"warmup_tau_{subset}"] = correlation([before[i] for i in keep], truth)["kendall_tau"]
            record.write_text(json.dumps(entry, indent=1) + "\n")
            print(f"{name} seed {seed}: {found} ({entry['parameter_free_edges']} free edges), warm-up percentile "
                  f"{entry['warmup_percentile_tuning']:.0f} (tuning), own {entry['own_percentile_tuning']:.0f}, {seconds:.0f} s",
                  flush=True)


def summarize(args) -> None:
    folder = Path(args.summarize)
    setup = json.loads((folder / "setup.json").read_text())
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*-s[0-9]*.json"))
            if not p.name.endswith(("-result.json", "-scores.json"))]
    order = list(dict.fromkeys(r["variant"] for r in runs))
    lines = [f"\n## search_drift — {datetime.now().isoformat(timespec='minutes')}\n",
             f"machine {platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs), 1 torch thread; profile "
             f"{setup['profile']} with {', '.join(setup['warmup_set']) or 'its own warm-up'}; per variant the mean over seeds "
             f"(per seed in brackets). Percentiles: the found cell's supernet accuracy among that supernet's scores of "
             f"the table's tuning (held-out) cells.\n",
             "| variant | seeds | found cell under the warm-up supernet, tuning (held-out) | under its own searched supernet, "
             "tuning | parameter-free edges | seeds without a convolution | last epoch: trained / sampled parameter-free "
             "share | distinct cells trained | searched supernet τ, held-out (warm-up's) | search s |",
             "| --- | --- | --- | --- | --- | ---: | --- | ---: | --- | ---: |"]
    for name in order:
        group = [r for r in runs if r["variant"] == name]

        def col(key, d=0, g=group):
            values = [r[key] for r in g if r.get(key) is not None]
            if not values:
                return "–"
            return f"{np.mean(values):.{d}f}" + (f" ({', '.join(f'{v:.{d}f}' for v in values)})" if len(values) > 1 else "")

        lines.append(f"| {name} | {', '.join(str(r['seed']) for r in group)} | {col('warmup_percentile_tuning')} "
                     f"({col('warmup_percentile_held-out')}) | {col('own_percentile_tuning')} | {col('parameter_free_edges', 1)} | "
                     f"{sum(not r['has_convolution'] for r in group)} | {col('trained_parameter_free_share', 2)} / "
                     f"{col('sampled_parameter_free_share', 2)} | {col('distinct_cells_trained')} | {col('searched_tau_held-out', 2)} "
                     f"({col('warmup_tau_held-out', 2)}) | {col('search_seconds')} |")
    lines += ["", "Found cells:", ""] + [f"- {r['variant']} seed {r['seed']}: `{r['arch']}`" for r in runs]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.record:
        append_result(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default="config/study-nb201.yaml")
    parser.add_argument("--warmup-set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:method=M,search.KEY=V")
    parser.add_argument("--out", default="results/drift")
    parser.add_argument("--summarize", metavar="FOLDER")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    if args.summarize:
        summarize(args)
    else:
        measure(args)


if __name__ == "__main__":
    main()

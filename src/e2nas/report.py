"""Stage 7, the report: methods and seeds side by side, from the files stages 4, 5 and 6 wrote.

Reads stage 4's result.json and stage 5's metrics.json of a run (where `e2nas.layout` puts them;
the wildcards come back out of their paths), pairs them by (dataset, space, method, seed), and
summarises over seeds. Plots are matplotlib Figures built
without pyplot (no global figure state; notebooks `display()` them, MLflow logs them).

On Fashion-MNIST the NB201 columns are a *transfer proxy*: the found cell's CIFAR-10 accuracy
in the benchmark table, not a result of this run's data. The DARTS space has no such table: a
frame of DARTS runs only has the columns every space has (the found genotype's text, its retrain
test accuracy, parameters as DARTS counts them, costs).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import kendalltau

from e2nas import layout, spaces
from e2nas import statistics as st
from e2nas.names import METHODS, RANDOM_METHOD, is_reference

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.draw: the found cells' pictures.
SPACE_PARTS = ('drawing',)


NB201_KEYS = ("cifar10", "cifar100", "imagenet16_120")
KEYS = ("dataset", "space", "method", "seed")
# Columns only NB201 cells have: the benchmark table's accuracies and their percentile, and the
# percentile of the retrain accuracy in the ground-truth table (retrained under its protocol).
NB201_COLUMNS = (*(f"nb201_{k}" for k in NB201_KEYS), "percentile_cifar10", "ground_truth_percentile",
                 "ground_truth_percentile_single")
COLUMNS = (
    *KEYS,
    "arch",
    *NB201_COLUMNS,
    "test_accuracy",
    "judge_trainings",
    "protocol",
    "params",
    "flops",
    "search_seconds",
    "cpu_seconds",
    "train_seconds",
)


# ---------------------------------------------------------------- reading the stage files


def _path_keys(path: str | os.PathLike, kind: str) -> dict:
    """(dataset, space, method, seed) of a stage-4 or stage-5 file, read from its path (e2nas.layout)."""
    found = layout.parse(path)
    if found["kind"] != kind:
        raise ValueError(f"{path} is not a {kind} file of the results layout ({layout.TEMPLATES[kind]})")
    return {k: found[k] for k in KEYS}


def _read_json(path: str | os.PathLike) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path} ({type(exc).__name__}: {exc}); rerun the stage that writes it") from None


def _arch_text(arch, space: str) -> str:
    """Cells as the space's text form (NB201 string, DARTS Genotype): a file's text as it is, choice indices formatted."""
    return arch if isinstance(arch, str) else spaces.get(space).format(arch)


def _search_row(path: str, table) -> dict:
    keys = _path_keys(path, "search_result")
    res = _read_json(path)
    for k in ("method", "seed"):
        if k in res and res[k] != keys[k]:
            raise ValueError(f"{path} says {k}={res[k]!r} but lies in the folder for {k}={keys[k]!r}")
    arch = _arch_text(res["arch"], keys["space"])
    in_table = spaces.get(keys["space"]).has_benchmark_table  # the NB201 table holds only NB201 cells
    nb = res.get("nb201") if in_table else None
    if nb is None and table is not None and in_table:
        nb = table.lookup(arch)  # stage 4 ran without a table; the report has one
    row = {**keys, "arch": arch, "search_seconds": res.get("search_seconds", math.nan), "cpu_seconds": res.get("cpu_seconds", math.nan)}
    row.update({f"nb201_{k}": float(nb[k]) if nb and nb.get(k) is not None else math.nan for k in NB201_KEYS})
    value = row["nb201_cifar10"]
    row["percentile_cifar10"] = table.percentile(value, "cifar10") if table is not None and value == value else math.nan
    return row


def _retrain_row(path: str) -> dict:
    keys = _path_keys(path, "retrain_metrics")
    res = _read_json(path)
    row = {**keys, "retrain_arch": _arch_text(res["arch"], keys["space"])}
    row.update({k: float(res.get(k, math.nan)) for k in ("test_accuracy", "params", "flops", "train_seconds")})
    row["protocol"] = res.get("protocol") or "config"
    # Judged by several trainings (retrain.judge_seeds): each one's accuracy, for their percentiles.
    row["judge_accuracies"] = [t["test_accuracy"] for t in res.get("judge_trainings") or []] or [row["test_accuracy"]]
    return row


def _frame(rows: list[dict], required: list[str]) -> pd.DataFrame:
    """Rows as a frame that has at least the `required` columns, even when there are no rows."""
    return pd.DataFrame(rows).reindex(columns=list(dict.fromkeys([*required, *(rows[0] if rows else [])])))


def collect_results(search_files: list[str], retrain_files: list[str], table=None, ground_truth=None) -> pd.DataFrame:
    """One row per (dataset, space, method, seed), search and retrain files side by side.

    `table` is an NB201 table (`lookup`, `percentile`) or None; `ground_truth` the ground-truth
    table or None: a retrain under its protocol gets its percentile there (`protocol` column:
    "ground-truth", else "config"). A run with only one of the two stages has NaN in the other's
    columns; a retrain of another cell than its search found raises.
    """
    search = _frame([_search_row(str(p), table) for p in search_files], [*KEYS, "arch"])
    retrain = _frame([_retrain_row(str(p)) for p in retrain_files], [*KEYS, "retrain_arch", "test_accuracy", "protocol"])
    df = search.merge(retrain, on=list(KEYS), how="outer")
    both = df["arch"].notna() & df["retrain_arch"].notna()
    clash = df[both & (df["arch"] != df["retrain_arch"])]
    if len(clash):
        r = clash.iloc[0]
        raise ValueError(
            f"{r['dataset']}/{r['space']}/{r['method']}/seed{r['seed']}: retrain trained {r['retrain_arch']} "
            f"but the search found {r['arch']}; rerun the retrain stage"
        )
    df["arch"] = df["arch"].fillna(df["retrain_arch"])
    if table is not None:  # cells no search found (the random cell, the references): their table accuracies too
        for i in df.index[df["nb201_cifar10"].isna() if "nb201_cifar10" in df else []]:
            nb = table.lookup(df.at[i, "arch"]) if spaces.get(df.at[i, "space"]).has_benchmark_table else None
            for k in NB201_KEYS if nb else ():
                df.at[i, f"nb201_{k}"] = float(nb[k])
            if nb:
                df.at[i, "percentile_cifar10"] = table.percentile(float(nb["cifar10"]), "cifar10")
    on_protocol = df["protocol"].eq("ground-truth") & (ground_truth is not None)
    # The mean over a cell's trainings of each one's percentile among the table's single trainings (one
    # training: its own); the first training's alone beside it.
    judged = df["judge_accuracies"] if "judge_accuracies" in df else pd.Series([[]] * len(df), index=df.index)
    df["ground_truth_percentile"] = [float(np.mean([ground_truth.percentile(a) for a in accs])) if ok and accs else math.nan
                                     for accs, ok in zip(judged, on_protocol)]
    df["ground_truth_percentile_single"] = [ground_truth.percentile(accs[0]) if ok and accs else math.nan
                                            for accs, ok in zip(judged, on_protocol)]
    df["judge_trainings"] = [len(accs) if isinstance(accs, list) else 0 for accs in judged]
    nb201_rows = df.empty or any(spaces.get(name).has_benchmark_table for name in df["space"].unique())
    df = df.reindex(columns=[c for c in COLUMNS if nb201_rows or c not in NB201_COLUMNS])
    df["seed"] = df["seed"].astype(int)
    df = df.sort_values(["dataset", "space", "method", "seed"], key=lambda s: s.map(method_rank) if s.name == "method" else s)
    return df.reset_index(drop=True)


def method_rank(method: str) -> int:
    """Where a method's rows go: the searches in the names' order, then the random cell, then the references."""
    order = {m: i for i, m in enumerate((*METHODS, RANDOM_METHOD))}
    return order.get(method, len(order))


COUNTS = ("params", "flops", "judge_trainings", "seed")  # whole numbers in summary.csv


def write_summary(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """summary.csv (identifier columns, for scripts) with every float to 2 decimals and counts whole, through a
    temporary file and a rename: a kill never leaves a half-written output."""
    path = Path(path)
    out = frame.drop(columns=[c for c in ("judge_accuracies",) if c in frame])
    for col in out.select_dtypes("number").columns:
        out[col] = out[col].round(0).astype("Int64") if col in COUNTS else out[col].round(2)
    from e2nas.atomic import write_text

    write_text(path, out.to_csv(index=False))


def find_run_files(run_dir: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Every stage-4 result.json and stage-5 metrics.json under `results/{run}`, sorted."""
    return layout.run_files(run_dir, "search_result"), layout.run_files(run_dir, "retrain_metrics")


def collect_trajectories(search_files: list[str], dataset: str | None = None) -> dict[tuple[str, int], list[dict]]:
    """{(method, seed): per-epoch records} of one dataset's searches."""
    out: dict[tuple[str, int], list[dict]] = {}
    datasets = set()
    for path in search_files:
        keys = _path_keys(path, "search_result")
        if dataset is not None and keys["dataset"] != dataset:
            continue
        datasets.add(keys["dataset"])
        out[(keys["method"], keys["seed"])] = list(_read_json(path).get("trajectory") or [])
    if len(datasets) > 1:
        raise ValueError(f"search files of several datasets {sorted(datasets)}: pass dataset= to pick one")
    return out


def searched(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of cells a search found: not the random cell, not the references."""
    return df[(df["method"] != RANDOM_METHOD) & ~df["method"].map(is_reference)]


def found_genotypes(df: pd.DataFrame) -> list[dict]:
    """The found cells of the searched methods (not `random`, not the references), one dict per
    (dataset, method, seed): keys, the cell's text (a DARTS Genotype) and what retraining it gave."""
    found = searched(df)
    cols = [c for c in (*KEYS, "test_accuracy", "params", "arch") if c in found.columns]
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in found[cols].to_dict("records")]


# Columns of the runs table a reader sees, with the headers they get (the CSV keeps the raw names).
READABLE = {"method": "method", "seed": "seed", "test_accuracy": "retrain acc. (%)",
            "ground_truth_percentile": "ground-truth percentile", "judge_trainings": "judge trainings",
            "nb201_cifar10": "NB201 C-10 (%)", "params": "params", "search_seconds": "search (s)",
            "cpu_seconds": "search CPU (s)", "train_seconds": "retrain (s)", "n_seeds": "seeds"}


WHOLE_NUMBERS = ("params", "search_seconds", "cpu_seconds", "train_seconds", "judge_trainings")


def run_table(frame: pd.DataFrame):
    """One row per run with short columns that fit a page, as a Styler (its `.data` is the frame):
    no index, counts and seconds as whole numbers, accuracies to 2 decimals, "–" where a run has no
    value (a reference cell has no search); the cells are in `cells_table`."""
    cols = [c for c in READABLE if c in frame.columns and frame[c].notna().any()]
    out = frame[cols].rename(columns=READABLE)
    whole = [READABLE[c] for c in cols if c in WHOLE_NUMBERS]
    decimal = [READABLE[c] for c in cols if c not in (*WHOLE_NUMBERS, *KEYS)]
    return (out.style.hide(axis="index").format("{:.0f}", subset=whole, na_rep="–")
            .format("{:.2f}", subset=decimal, na_rep="–"))


def summary_table(frame: pd.DataFrame):
    """`headline_summary` as the report shows it: a Styler without the index column."""
    return headline_summary(frame).style.hide(axis="index")


def cells_table(frame: pd.DataFrame):
    """The cell of every run in full (NB201 string, DARTS Genotype), beside its method and seed: a Styler,
    so the notebook and its HTML show each string whole (a DataFrame's display cuts them at 50 characters)."""
    table = frame[["method", "seed", "arch"]].rename(columns={"arch": "cell"}).style.hide(axis="index")
    # A cell string is one long word: let it wrap anywhere, or it runs off an 800 px page.
    return table.set_properties(subset=["cell"], **{"word-break": "break-all", "white-space": "normal", "text-align": "left"})


# ---------------------------------------------------------------- statistics


def _group_keys(df: pd.DataFrame) -> list[str]:
    return [k for k in ("dataset", "space", "method") if k in df.columns]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, space, method): n_seeds and `{col}_mean`, `{col}_std` of each numeric column.

    std is the sample standard deviation over seeds (ddof=1), NaN for a single seed.
    """
    keys = _group_keys(df)
    numeric = [c for c in df.select_dtypes("number").columns if c != "seed"]
    groups = df.groupby(keys, sort=False)
    out = groups.size().rename("n_seeds").to_frame()
    for col in numeric:
        out[f"{col}_mean"] = groups[col].mean()
        out[f"{col}_std"] = groups[col].std(ddof=1)
    return out.reset_index()


def format_mean_std(summary: pd.DataFrame, decimals: int | dict[str, int] = 2) -> pd.DataFrame:
    """One "93.12 ± 0.40" string column per metric ("93.12" alone for a single seed, "–" when missing)."""
    metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
    out = summary[[c for c in (*_group_keys(summary), "n_seeds") if c in summary.columns]].copy()
    for m in metrics:
        d = decimals.get(m, 2) if isinstance(decimals, dict) else decimals

        def fmt(mean, std, d=d):
            if mean != mean:
                return "–"
            return f"{mean:.{d}f}" if std != std else f"{mean:.{d}f} ± {std:.{d}f}"

        out[m] = [fmt(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
    return out


def headline_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per method over seeds, the numbers a reader compares ("78.50 ± 0.52"): retrain accuracy, its
    ground-truth percentile and the NB201 table accuracy, where the runs have them."""
    keep = [c for c in (*KEYS, "test_accuracy", "ground_truth_percentile", "nb201_cifar10") if c in frame.columns]
    cols = [c for c in keep if c in KEYS or frame[c].notna().any()]
    out = format_mean_std(summarize(frame[cols]))
    return out.drop(columns=[c for c in ("dataset", "space") if c in out and out[c].nunique() == 1]).rename(
        columns={c: READABLE[c] for c in out.columns if c in READABLE and c not in ("method",)})


def kendall_tau(x, y) -> float:
    """Kendall's tau of the pairs where both values are present; NaN with fewer than two pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return math.nan
    return float(kendalltau(x[keep], y[keep]).statistic)


# ---------------------------------------------------------------- the verdict


# What each method is compared with, where the run has it: the random cell, and what a user would do instead.
COMPARED_WITH = (RANDOM_METHOD, "random-search", "params")


def verdict_metric(frame: pd.DataFrame) -> tuple[str, str]:
    """(column, words) the verdict compares: the ground-truth percentile where the cells have one, else accuracy."""
    if "ground_truth_percentile" in frame and frame["ground_truth_percentile"].notna().any():
        return "ground_truth_percentile", "ground-truth percentile"
    return "test_accuracy", "retrain test accuracy (%)"


def verdict_table(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per method (searches, then the random cell): seeds, and the mean of the verdict's metric with its 95%
    percentile-bootstrap interval over seeds."""
    column, words = verdict_metric(frame)
    rng = np.random.default_rng(seed)
    rows = []
    for method, group in frame[~frame["method"].map(is_reference)].groupby("method", sort=False):
        mean, low, high = st.mean_interval(group[column], rng)
        rows.append({"method": method, "seeds": len(group), words: f"{mean:.2f}",
                     "95% interval over seeds": "–" if low != low or len(group) < 2 else f"[{low:.2f}, {high:.2f}]"})
    return pd.DataFrame(rows)


def verdict(frame: pd.DataFrame, alpha: float = 0.05, seed: int = 0) -> str:
    """One paragraph that concludes: which searched methods are ahead of the random cell (and of random search
    and the parameter-count pick, where the run has them) by paired-by-seed differences, one-sided bootstrap,
    Holm at `alpha` over every comparison made; or that none can be told apart at this many seeds, and how
    many seeds the observed spread would need for the largest observed difference."""
    column, words = verdict_metric(frame)
    by = {m: dict(zip(g["seed"], g[column])) for m, g in frame[~frame["method"].map(is_reference)].groupby("method", sort=False)}
    targets = [m for m in COMPARED_WITH if m in by]
    methods = [m for m in by if m not in targets]
    if not methods or not targets:
        return f"Nothing to compare: the run has {', '.join(by) or 'no methods'} and no reference to compare them with."
    rng = np.random.default_rng(seed)
    rows = [{"method": m, "target": t, **st.paired_difference(by[m], by[t], rng)} for t in targets for m in methods]
    rejected, _ = st.holm([r["p"] for r in rows], alpha)
    seeds = sorted({s for m in methods for s in by[m]})
    n = len(seeds)
    names = {RANDOM_METHOD: "the random cell", "random-search": "random search", "params": "the largest of many cells (params)"}
    text = [f"**Verdict over {n} seed{'s' if n != 1 else ''}** ({', '.join(map(str, seeds))}), by the {words}: "]
    for target in targets:
        ahead = [r["method"] for r, yes in zip(rows, rejected) if r["target"] == target and yes]
        text.append(f"{', '.join(ahead)} {'is' if len(ahead) == 1 else 'are'} ahead of {names[target]}; " if ahead
                    else f"no method is ahead of {names[target]}; ")
    spreads = [np.std(list(by[m].values()), ddof=1) for m in by if len(by[m]) > 1]
    spread = float(np.sqrt(np.mean(np.square(spreads)))) if spreads else math.nan
    if any(rejected):
        text.append(f"paired by seed, one-sided bootstrap, Holm at {alpha:.0%} over {len(rows)} comparisons.")
    else:
        largest = max((abs(r["difference"]) for r in rows if r["difference"] == r["difference"]), default=math.nan)
        need = st.seeds_needed(spread, largest)
        text.append(f"no method can be told apart from {'these' if len(targets) > 1 else 'it'} at {n} seed{'s' if n != 1 else ''}"
                    + (f": with the spread seen between seeds ({spread:.2f} sd) the largest difference seen ({largest:.2f}) "
                       f"would need about {need} seeds per method." if need else "."))
    return "".join(text)


def judge_sentence(ranking_files: list[str], ground_truth) -> str:
    """What the supernets' τ means: against the ground truth's own noise ceiling and the parameter count's τ on
    the same cells (stage 6), averaged over seeds."""
    results = [_read_json(p) for p in ranking_files]
    if not results or ground_truth is None:
        return ""
    warm = [r["supernets"]["warm-up"]["ground_truth"]["kendall_tau"] for r in results if (r["supernets"].get("warm-up") or {}).get("ground_truth")]
    params = [r["parameters"]["ground_truth"]["kendall_tau"] for r in results if (r.get("parameters") or {}).get("ground_truth")]
    if not warm:
        return ""
    ceiling = ground_truth.noise_ceiling()["tau_all"]
    text = (f"The warm-up supernet ranks the table's cells at Kendall τ {np.mean(warm):.2f} against the ground truth "
            f"(mean over {len(warm)} seed{'s' if len(warm) != 1 else ''}), where two trainings of the same cells agree at "
            f"τ {ceiling:.2f} (the table's noise ceiling: no judge can do better)")
    if params:
        better = "a better" if np.mean(warm) > np.mean(params) else "a worse"
        text += (f"; simply counting each cell's parameters ranks the same cells at τ {np.mean(params):.2f}, so the supernet "
                 f"is {better} judge of cells than their parameter count")
    return text + "."


# ---------------------------------------------------------------- plots


_LABEL_BOX = {"boxstyle": "round,pad=0.1", "facecolor": "white", "alpha": 0.8, "edgecolor": "none"}


def _axes(ax: Axes | None, size=(6.4, 4.0)) -> Axes:
    return ax if ax is not None else Figure(figsize=size, layout="constrained").add_subplot()


def plot_method_bars(
    summary: pd.DataFrame,
    metric: str = "test_accuracy",
    reference_lines: dict[str, float] | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Mean ± std over seeds per method (one bar group per dataset), with labelled horizontal lines.

    reference_lines: e.g. {"NB201 space mean": 87.06, "NB201 best": 94.37, "random cell": 85.1}.
    """
    ax = _axes(ax)
    methods = list(dict.fromkeys(summary["method"]))
    datasets = list(dict.fromkeys(summary["dataset"])) if "dataset" in summary.columns else [None]
    width = 0.8 / len(datasets)
    lows, highs = [], []
    for i, ds in enumerate(datasets):
        part = summary if ds is None else summary[summary["dataset"] == ds]
        part = part.set_index("method").reindex(methods)
        mean = part[f"{metric}_mean"].to_numpy(dtype=float)
        std = np.nan_to_num(part[f"{metric}_std"].to_numpy(dtype=float))
        x = np.arange(len(methods)) + (i - (len(datasets) - 1) / 2) * width
        ax.bar(x, mean, width, yerr=std, capsize=3, label=ds)
        lows.append(np.nanmin(mean - std) if np.isfinite(mean).any() else np.nan)
        highs.append(np.nanmax(mean + std) if np.isfinite(mean).any() else np.nan)
    for j, (name, value) in enumerate((reference_lines or {}).items()):
        ax.axhline(value, color=f"C{len(datasets) + j}", linestyle="--", linewidth=1, zorder=3)
        ax.annotate(f"{name} ({value:.2f})", (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color=f"C{len(datasets) + j}", bbox=_LABEL_BOX)
        lows.append(value)
        highs.append(value)
    baseline = ""
    if metric.endswith("percentile"):
        ax.set_ylim(0, 100)  # a percentile's whole range: heights compare as they are
    elif np.isfinite(lows).any():  # accuracies: from a stated baseline, said on the axis (from 0 the bars would look alike)
        lo, hi = np.nanmin(lows), np.nanmax(highs)
        margin = max(0.1 * (hi - lo), 0.5)
        ax.set_ylim(lo - margin, hi + margin)
        baseline = f" (axis from {lo - margin:.2f}, not 0)"
    ax.set_xticks(np.arange(len(methods)), methods, rotation=20)
    ax.set_ylabel(READABLE.get(metric, metric) + " — mean ± std over seeds" + baseline, fontsize=9)
    if len(datasets) > 1:
        ax.legend(title="dataset")
    return ax.figure


def plot_trajectories(
    trajectories: dict[tuple[str, int], list[dict]],
    key: str = "nb201_cifar10",
    ax: Axes | None = None,
    ylabel: str | None = None,
    reference_lines: dict[str, float] | None = None,
) -> Figure:
    """`key` per epoch for every (method, seed): one colour per method, one line per seed."""
    ax = _axes(ax)
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(m for m, _ in trajectories))}
    markers = {s: "o^sDvP*X"[i % 8] for i, s in enumerate(sorted({s for _, s in trajectories}))}  # one per seed
    labelled = set()
    for (method, seed), records in trajectories.items():
        points = [(r["epoch"] + 1, r[key]) for r in records if r.get(key) is not None]  # epochs 1..T, as everywhere
        if not points:
            continue
        epochs, values = zip(*points)
        ax.plot(epochs, values, color=colours[method], alpha=0.8, marker=markers[seed], markersize=4,
                label=None if method in labelled else method)
        labelled.add(method)
    for name, value in (reference_lines or {}).items():
        ax.axhline(value, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"{name} ({value:.2f})", (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="grey", bbox=_LABEL_BOX)
    if not labelled:
        ax.text(0.5, 0.5, f"no '{key}' in the trajectories", transform=ax.transAxes, ha="center")
    else:
        ax.legend(fontsize=8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search epoch" + (f" (markers: seeds {', '.join(map(str, markers))})" if len(markers) > 1 else ""))
    ax.set_ylabel(ylabel or {"nb201_cifar10": "NB201 CIFAR-10 accuracy of the epoch's cell (%)"}.get(key, key))
    return ax.figure


def plot_forgetting(trajectories: dict[tuple[str, int], list[dict]], key: str = "forgetting",
                    ax: Axes | None = None) -> Figure:
    """Per-epoch forgetting: the supernet accuracy a_{t−1} loses over one weight step on a_t."""
    fig = plot_trajectories(trajectories, key, ax, ylabel="forgetting (accuracy points of a$_{t-1}$ lost)")
    fig.axes[-1].axhline(0.0, color="black", linewidth=0.5)
    return fig


# ---------------------------------------------------------------- how well the supernets ranked (stage 6's files)


def ranking_frame(ranking_files: list[str]) -> pd.DataFrame:
    """One row per (seed, supernet) of the rank_supernet files: Kendall τ and Spearman ρ against the
    ground truth and against the NB201 transfer proxy (NaN where there is none)."""
    rows = []
    for path in ranking_files:
        seed = layout.parse(path)["seed"]
        result = _read_json(path)
        judges = {**result["supernets"], **({"parameter count": result["parameters"]} if result.get("parameters") else {})}
        for name, entry in judges.items():
            row = {"seed": seed, "supernet": name}
            for ref in ("ground_truth", "nb201_cifar10"):
                for stat in ("kendall_tau", "spearman_rho"):
                    row[f"{stat}_{ref}"] = (entry.get(ref) or {}).get(stat, math.nan)
            row.update({k: entry.get(k, math.nan) for k in ("parameter_free_top10", "top10_precision", "favourite_percentile")})
            rows.append(row)
    return pd.DataFrame(rows)


RANKING_HEADERS = {
    "seed": "seed", "supernet": "supernet",
    "kendall_tau_ground_truth": "τ vs ground truth", "spearman_rho_ground_truth": "ρ vs ground truth",
    "kendall_tau_nb201_cifar10": "τ vs NB201 C-10", "spearman_rho_nb201_cifar10": "ρ vs NB201 C-10",
    "parameter_free_top10": "parameter-free share of its top 10", "top10_precision": "top-10% precision",
    "favourite_percentile": "its favourite's percentile",
}


def ranking_table(ranking_files: list[str]):
    """`ranking_frame` as the report shows it: headers in words, two decimals, no index (a Styler)."""
    frame = ranking_frame(ranking_files)
    frame = frame[[c for c in frame.columns if frame[c].notna().any()]].rename(columns=RANKING_HEADERS)
    numbers = [c for c in frame.columns if c not in ("seed", "supernet")]
    return frame.style.hide(axis="index").format("{:.2f}", subset=numbers, na_rep="–")


def ground_truth_sentence(ground_truth, nb201_table=None) -> str:
    """The ground truth's noise ceiling (and its agreement with NB201, given the table) as a sentence."""
    c = ground_truth.noise_ceiling()
    text = (f"The ground truth's own noise ceiling, the Kendall τ between its two training seeds over its "
            f"{c['cells']} cells, is {c['tau_all']:.2f} ({c['tau_top_half']:.2f} among the better half); "
            f"one training differs from the other by {c['seed_difference_sd']:.2f} points (sd).")
    if nb201_table is not None:
        a = ground_truth.nb201_agreement(nb201_table)
        text += (f" Against NB201's CIFAR-10 accuracies over {a['cells']} cells it has τ {a['kendall_tau']:.2f} "
                 f"and ρ {a['spearman_rho']:.2f}.")
    return text


# ---------------------------------------------------------------- the report's figures


def ground_truth_note(frame: pd.DataFrame) -> str:
    """Whether the retrain accuracies have a percentile in the ground-truth table: only cells retrained
    under its protocol (retrain.protocol: ground-truth) are comparable with it."""
    protocols = set(frame["protocol"].dropna())
    if protocols == {"ground-truth"}:
        return "Every cell was retrained under the ground-truth table's protocol: `ground_truth_percentile` places it among the table's trainings."
    if "ground-truth" in protocols:
        return "Only some cells were retrained under the ground-truth table's protocol; the others have no percentile."
    return ("The cells were retrained under this run's own retrain settings, not the ground-truth table's protocol: "
            "their accuracies have no percentile in the table (set retrain.protocol: ground-truth to get one).")


def transfer_proxy_label(frame: pd.DataFrame) -> str:
    """How to label NB201 table accuracies of cells searched on `frame`'s datasets: a transfer proxy
    unless the search itself ran on CIFAR-10, the table's dataset."""
    datasets = ", ".join(sorted(frame["dataset"].unique()))
    return "" if datasets == "cifar10" else f" — transfer proxy (searched on {datasets})"


def reference_percentiles(frame: pd.DataFrame) -> dict[str, float]:
    """Mean ground-truth percentile of the random cell and of each reference cell (their lines on the percentile chart)."""
    out = {}
    for method, rows in frame[(frame["method"] == RANDOM_METHOD) | frame["method"].map(is_reference)].groupby("method", sort=False):
        value = rows["ground_truth_percentile"].mean()
        if value == value:
            out["random cell" if method == RANDOM_METHOD else method] = float(value)
    return out


def reference_lines(frame: pd.DataFrame, table) -> dict[str, dict[str, float]]:
    """Reference values per metric: the retrained random cell and the config's reference cells (mean over
    seeds); the NB201 space's mean and best."""
    lines = {"test_accuracy": {}, "nb201_cifar10": {}}
    random_acc = frame.loc[frame["method"] == RANDOM_METHOD, "test_accuracy"].mean()
    if random_acc == random_acc:
        lines["test_accuracy"]["random cell (retrained)"] = float(random_acc)
    for method, rows in frame[frame["method"].map(is_reference)].groupby("method", sort=False):
        accuracy = rows["test_accuracy"].mean()
        if accuracy == accuracy:
            lines["test_accuracy"][f"{method} (retrained)"] = float(accuracy)
    if table is not None:
        stats = table.stats()
        lines["nb201_cifar10"] = {"space mean (NB201 C-10)": stats["mean"], "best cell (NB201 C-10)": stats["best"]}
    return lines


def method_figures(frame: pd.DataFrame, table) -> dict[str, Figure]:
    """The bar charts per method: the ground-truth percentile (0-100) where the cells have one, retrain test
    accuracy, and the NB201 table accuracy where there is a table."""
    summary = summarize(searched(frame))
    lines = reference_lines(frame, table)
    datasets = ", ".join(sorted(frame["dataset"].unique()))
    out = {}
    if "ground_truth_percentile" in frame and frame["ground_truth_percentile"].notna().any():
        fig = plot_method_bars(summary, "ground_truth_percentile", reference_percentiles(frame))
        fig.axes[0].set_title(f"where the found cells rank among the ground-truth table's trainings ({datasets})", fontsize=10)
        out["ground_truth_percentile_by_method.png"] = fig
    if table is not None:
        fig = plot_method_bars(summary, "nb201_cifar10", lines["nb201_cifar10"])
        fig.axes[0].set_title(f"NB201 CIFAR-10 table accuracy of the found cells{transfer_proxy_label(frame)}", fontsize=10)
        out["nb201_cifar10_by_method.png"] = fig
    fig = plot_method_bars(summary, "test_accuracy", lines["test_accuracy"])
    fig.axes[0].set_title(f"test accuracy after retraining from scratch ({datasets})", fontsize=10)
    out["retrain_accuracy_by_method.png"] = fig
    return out


def trajectory_figures(trajectories: dict[tuple[str, int], list[dict]], table) -> dict[str, Figure]:
    """Per-epoch figures over methods and seeds: the epoch's cell in the table (when there is one), and
    E2NAS's forgetting."""
    out = {}
    if table is not None:
        out["table_accuracy_trajectories.png"] = plot_trajectories(trajectories, key="nb201_cifar10")
    measured = forgetting_runs(trajectories)
    if measured:
        out["forgetting.png"] = plot_forgetting(measured)
    titles = {"table_accuracy_trajectories.png": "the NB201 table accuracy of each epoch's cell (transfer proxy)",
              "forgetting.png": "forgetting: what a$_{t-1}$ loses over one weight step on a$_t$ (E2NAS)"}
    for name, fig in out.items():
        fig.axes[0].set_title(titles[name], fontsize=10)
    return out


def forgetting_runs(trajectories: dict[tuple[str, int], list[dict]]) -> dict[tuple[str, int], list[dict]]:
    """The E2NAS runs that measured forgetting: those that took weight steps (not `search.weight_paths: frozen`)."""
    return {k: v for k, v in trajectories.items()
            if k[0].startswith("e2nas") and any(r.get("forgetting") is not None for r in v)}


def forgetting_note(trajectories: dict[tuple[str, int], list[dict]]) -> str | None:
    """Why there is no forgetting figure when E2NAS ran but measured none (an empty chart says nothing)."""
    e2nas = sorted({m for m, _ in trajectories if m.startswith("e2nas")})
    if not e2nas or forgetting_runs(trajectories):
        return None
    return (f"No forgetting figure: {', '.join(e2nas)} took no weight steps in the search (`search.weight_paths: frozen`, "
            "the warm-up's weights are kept), so no cell's accuracy can be lost to another's update.")


def draw_found_cells(frame: pd.DataFrame, space) -> Figure | None:
    """One small drawing per found cell (every method and seed; the random cell and the references left out)."""
    found = searched(frame)
    if found.empty:
        return None
    fig = Figure(figsize=(6.5, 2.4 * len(found)), layout="constrained")
    for ax, (_, row) in zip(fig.subplots(len(found), 1, squeeze=False)[:, 0], found.iterrows()):
        space.draw(row["arch"], ax, title=f"{row['method']} seed {row['seed']}")
    return fig

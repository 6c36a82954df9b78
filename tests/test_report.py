"""e2nas.report: hand-written stage-4/5 files in a temp run folder → table, summary and plots."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

from e2nas import layout, report, spaces  # noqa: E402
from e2nas.spaces import darts, nb201  # noqa: E402

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
OTHER = "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"


class FakeTable:
    """The Nb201Table interface: lookup(arch) and percentile(value, column)."""

    rows = {BEST: {"cifar10": 94.37, "cifar100": 73.5, "imagenet16_120": 47.3},
            OTHER: {"cifar10": 90.0, "cifar100": 70.0, "imagenet16_120": 40.0}}
    values = np.array([50.0, 80.0, 90.0, 94.37])

    def lookup(self, arch):
        return self.rows.get(arch)

    def percentile(self, value, column="cifar10"):
        return 100.0 * np.searchsorted(np.sort(self.values), value, side="right") / len(self.values)


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture
def run(tmp_path):
    """e2nas with 2 seeds (both stages), gdas with 1 seed whose search had no table (nb201: null)."""
    run_dir = tmp_path / "results" / "smoke"
    base = ("fashion-mnist", "nb201")
    cases = [  # method, seed, arch, nb201 cifar10, test accuracy
        ("e2nas", 0, BEST, 94.37, 92.0),
        ("e2nas", 1, OTHER, 90.0, 91.0),
        ("gdas", 0, OTHER, None, 90.5),
    ]
    for method, seed, arch, c10, acc in cases:
        nb = None if c10 is None else {"cifar10": c10, "cifar100": 70.0, "imagenet16_120": 40.0}
        traj = [{"epoch": e, "arch": arch, "nb201_cifar10": (c10 or 85.0) - 2 + e, "forgetting": 1.0 - 0.2 * e,
                 "loss": 2.0} for e in range(3)]
        write(run_dir.joinpath("search", *base, method, f"seed{seed}", "result.json"),
              {"arch": arch, "method": method, "seed": seed, "epochs": 3, "search_seconds": 10.0 + seed,
               "nb201": nb, "trajectory": traj})
        write(run_dir.joinpath("retrain", *base, method, f"seed{seed}", "metrics.json"),
              {"arch": arch, "test_accuracy": acc, "params": 1000 + seed, "flops": 5e6, "train_seconds": 3.0})
    return run_dir


def test_collect_pairs_stages_and_fills_table_columns(run):
    search, retrain = report.find_run_files(run)
    assert len(search) == len(retrain) == 3
    df = report.collect_results(search, retrain, table=FakeTable())
    assert list(df["method"]) == ["e2nas", "e2nas", "gdas"] and list(df["seed"]) == [0, 1, 0]
    assert set(df["dataset"]) == {"fashion-mnist"} and set(df["space"]) == {"nb201"}
    first = df.iloc[0]
    assert first["arch"] == BEST and first["test_accuracy"] == 92.0 and first["params"] == 1000
    assert first["percentile_cifar10"] == 100.0
    assert df.iloc[1]["percentile_cifar10"] == 75.0
    # nb201: null in the search file, filled from the report's table.
    assert df.iloc[2]["nb201_cifar10"] == 90.0

    plain = report.collect_results(search, retrain)  # no table at all
    assert math.isnan(plain.iloc[2]["nb201_cifar10"]) and plain["percentile_cifar10"].isna().all()
    assert plain.iloc[0]["nb201_cifar10"] == 94.37


def test_search_without_retrain_and_mismatched_files(run, tmp_path):
    search, retrain = report.find_run_files(run)
    df = report.collect_results(search, retrain[:1])
    assert df["test_accuracy"].notna().sum() == 1 and len(df) == 3

    bad = write(run / "retrain" / "fashion-mnist" / "nb201" / "e2nas" / "seed0" / "metrics.json",
                {"arch": OTHER, "test_accuracy": 1.0, "params": 1, "flops": 1, "train_seconds": 1})
    with pytest.raises(ValueError, match="retrain trained"):
        report.collect_results(search, [bad])
    with pytest.raises(ValueError, match="seed"):
        report.collect_results([write(tmp_path / "x" / "result.json", {})], [])


def test_summary_mean_std_known_case(run):
    df = report.collect_results(*report.find_run_files(run))
    summary = report.summarize(df)
    e2 = summary[summary["method"] == "e2nas"].iloc[0]
    assert e2["n_seeds"] == 2
    assert e2["test_accuracy_mean"] == pytest.approx(91.5)
    assert e2["test_accuracy_std"] == pytest.approx(np.std([92.0, 91.0], ddof=1))  # 0.7071
    assert e2["search_seconds_mean"] == pytest.approx(10.5)
    assert "seed_mean" not in summary.columns

    shown = report.format_mean_std(summary).set_index("method")
    assert shown.loc["e2nas", "test_accuracy"] == "91.50 ± 0.71"
    assert shown.loc["gdas", "test_accuracy"] == "90.50"  # one seed: no spread to show
    assert shown.loc["gdas", "nb201_cifar10"] == "–"  # nb201 null and no table


def test_kendall_tau_ignores_missing():
    assert report.kendall_tau([1, 2, 3, np.nan], [1, 2, 3, 0]) == pytest.approx(1.0)
    assert report.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(report.kendall_tau([1, np.nan], [1, 2]))


def test_all_plots_build(run, tmp_path):
    search, retrain = report.find_run_files(run)
    summary = report.summarize(report.collect_results(search, retrain, table=FakeTable()))
    refs = {"NB201 space mean": 87.06, "NB201 best": 94.37}
    bars = report.plot_method_bars(summary, "nb201_cifar10", refs)
    ax = bars.axes[0]
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == ["e2nas", "gdas"]
    assert {t.get_text() for t in ax.texts} == {"NB201 space mean (87.06)", "NB201 best (94.37)"}
    assert ax.get_ylim()[0] < 87.06 and ax.get_ylim()[1] > 94.37

    traj = report.collect_trajectories(search)
    assert set(traj) == {("e2nas", 0), ("e2nas", 1), ("gdas", 0)}
    lines = report.plot_trajectories(traj, "nb201_cifar10", reference_lines=refs).axes[0].get_lines()
    assert len([line for line in lines if len(line.get_xdata()) == 3]) == 3
    assert list(lines[0].get_ydata()) == [92.37, 93.37, 94.37]
    forgetting = report.plot_forgetting(traj)
    assert len(forgetting.axes[0].get_lines()) == 4  # three runs and the zero line

    cell = spaces.get("nb201").draw(BEST, title="e2nas seed 0")
    cax = cell.axes[0]
    assert sum(isinstance(p, FancyArrowPatch) for p in cax.patches) == 6
    labels = [t.get_text() for t in cax.texts]
    assert labels.count("conv3x3") == 5 and labels.count("skip") == 1 and set("0123") <= set(labels)
    assert spaces.get("nb201").draw(nb201.parse_arch(OTHER)).axes[0].texts  # op tuples too

    for i, fig in enumerate((bars, forgetting, cell)):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 1000


def test_plot_into_given_axes_and_empty_key():
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert spaces.get("nb201").draw((0, 1, 2, 3, 4, 3), ax=axes[0]) is fig
    report.plot_trajectories({("rsps", 0): [{"epoch": 0, "arch": BEST}]}, "nb201_cifar10", ax=axes[1])
    assert "no 'nb201_cifar10'" in axes[1].texts[0].get_text()
    with pytest.raises(ValueError):
        spaces.get("nb201").draw((0, 1, 2, 3, 4, 9))


def test_summary_csv_round_trip(run, tmp_path):
    df = report.collect_results(*report.find_run_files(run))
    df.to_csv(tmp_path / "summary.csv", index=False)
    back = pd.read_csv(tmp_path / "summary.csv")
    assert list(back.columns) == list(report.COLUMNS) and len(back) == 3


def test_darts_runs_report_genotypes_accuracy_and_params_without_nb201_columns(tmp_path):
    """A DARTS run: no NB201 columns (and no table look-up, even with a table), Genotype text
    (also from a 32-choice encoding), DARTS-counted params; found_genotypes lists the searched cells."""
    run_dir = tmp_path / "results" / "smoke-darts"
    cells = {("e2nas", 0): darts.DARTS_V2, ("gdas", 0): darts.format_arch(darts.sample_archs(1, None)[0].tolist()),
             ("random", 0): darts.format_arch(darts.sample_archs(1, None)[0].tolist())}
    for (method, seed), arch in cells.items():
        base = ("fashion-mnist", "darts", method, f"seed{seed}")
        if method != "random":
            stored = list(darts.parse_arch(arch)) if method == "gdas" else arch  # choices or text
            write(run_dir.joinpath("search", *base, "result.json"),
                  {"arch": stored, "method": method, "seed": seed, "space": "darts", "nb201": None, "search_seconds": 4.0,
                   "trajectory": [{"epoch": 0, "arch": arch, "nb201_cifar10": None, "forgetting": 0.5}]})
        write(run_dir.joinpath("retrain", *base, "metrics.json"),
              {"arch": arch, "space": "darts", "test_accuracy": 80.0 + len(method), "params": 3349342,
               "train_seconds": 2.0})
    df = report.collect_results(*report.find_run_files(run_dir), table=FakeTable())
    assert not set(report.NB201_COLUMNS) & set(df.columns)
    assert list(df.columns) == [c for c in report.COLUMNS if c not in report.NB201_COLUMNS]
    assert list(df["method"]) == ["e2nas", "gdas", "random"] and set(df["space"]) == {"darts"}
    assert df.set_index("method").loc["gdas", "arch"] == cells[("gdas", 0)]
    assert df.set_index("method").loc["e2nas", "params"] == 3349342
    shown = report.format_mean_std(report.summarize(df)).set_index("method")
    assert shown.loc["e2nas", "test_accuracy"] == "85.00" and "nb201_cifar10" not in shown.columns
    genotypes = report.found_genotypes(df)
    assert [(g["method"], g["seed"]) for g in genotypes] == [("e2nas", 0), ("gdas", 0)]
    assert genotypes[0]["arch"] == darts.DARTS_V2 and genotypes[0]["params"] == 3349342
    assert darts.parse_arch(genotypes[1]["arch"]) == darts.parse_arch(cells[("gdas", 0)])
    json.dumps(genotypes)  # plain values: MLflow's log_dict takes them


def test_the_report_tables_fit_a_page(run):
    df = report.collect_results(*report.find_run_files(run), table=FakeTable())
    runs, cells = report.run_table(df), report.cells_table(df)
    assert "arch" not in runs.data.columns and list(cells.data.columns) == ["method", "seed", "cell"]
    assert all(arch in cells.to_html() for arch in df["arch"])  # whole, not cut
    assert "word-break: break-all" in cells.to_html()  # ... and wrapped, not run off an 800 px page
    assert runs.data["retrain acc. (%)"].tolist() == [92.0, 91.0, 90.5]
    html = runs.to_html()
    assert "row_heading" not in html and ">92.00<" in html  # no index column, accuracies to 2 decimals
    assert all(f">{int(p)}<" in html for p in df["params"])  # counts whole, not "1000.0"
    assert "row_heading" not in report.summary_table(df).to_html()
    headline = report.headline_summary(df).set_index("method")
    assert headline.loc["e2nas", "retrain acc. (%)"] == "91.50 ± 0.71" and headline.loc["gdas", "retrain acc. (%)"] == "90.50"
    assert set(headline.columns) <= {"method", "seeds", "retrain acc. (%)", "NB201 C-10 (%)"}  # worded; one dataset: no column


def test_the_ranking_table_has_worded_headers_two_decimals_and_no_index(tmp_path):
    entry = {"ground_truth": {"kendall_tau": 0.2154, "spearman_rho": 0.31}, "nb201_cifar10": None}
    path = tmp_path / layout.path("ranking", run="r", dataset="fashion-mnist", space="nb201", seed=3)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"supernets": {"warm-up": entry}}))
    html = report.ranking_table([str(path)]).to_html()
    assert "τ vs ground truth" in html and "kendall_tau" not in html
    assert ">0.22<" in html and ">3<" in html and "NB201" not in html  # NB201 absent: no empty columns
    assert "row_heading" not in html  # no index column


def test_a_frozen_e2nas_search_gets_a_sentence_not_an_empty_forgetting_chart():
    """With `search.weight_paths: frozen` E2NAS takes no weight step, so it records no forgetting: the report
    says so in a sentence instead of drawing empty axes; a search that took weight steps gets the chart."""
    frozen = {("e2nas", 0): [{"epoch": e, "nb201_cifar10": 90.0, "forgetting": None} for e in range(3)],
              ("gdas", 0): [{"epoch": e, "nb201_cifar10": 85.0, "forgetting": 0.5} for e in range(3)]}
    assert "forgetting.png" not in report.trajectory_figures(frozen, table=None)
    assert "weight_paths: frozen" in report.forgetting_note(frozen)

    stepped = {**frozen, ("e2nas-paper", 0): [{"epoch": e, "nb201_cifar10": 88.0, "forgetting": 1.5 - e} for e in range(3)]}
    figures = report.trajectory_figures(stepped, table=None)
    assert report.forgetting_note(stepped) is None
    (ax,) = figures["forgetting.png"].axes
    assert [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")] == ["e2nas-paper"]
    assert report.forgetting_note({("gdas", 0): frozen[("gdas", 0)]}) is None  # no E2NAS run: nothing to explain

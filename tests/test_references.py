"""Config `references`: published or given cells retrained beside the found ones, and shown as reference rows."""

import json

import pandas as pd
import pytest

from e2nas import report, spaces

NB201 = spaces.get("nb201")
BEST = NB201.reference_cells()["nb201-best"].arch


def test_a_reference_is_a_registry_name_or_a_literal_cell_of_the_space():
    assert NB201.resolve_reference("nb201-best") == ("nb201-best", NB201.canonical_text(BEST))
    literal = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    slug, text = NB201.resolve_reference(literal)
    assert slug.startswith("cell-") and text == NB201.canonical_text(literal)
    with pytest.raises(ValueError, match="neither a known nb201 cell .*nb201-best"):
        NB201.resolve_reference("darts-v2")
    darts = spaces.get("darts")
    slug, text = darts.resolve_reference("darts-v2")
    assert slug == "darts-v2" and darts.resolve_reference(text)[1] == text


def test_reference_rows_get_their_table_accuracy_and_a_line_but_no_bar(tmp_path):
    class Table:
        def lookup(self, arch):
            return {"cifar10": 94.37, "cifar100": 73.5, "imagenet16_120": 47.3} if NB201.canonical_text(arch) == NB201.canonical_text(BEST) else None

        def percentile(self, value, column="cifar10"):
            return 100.0

        def stats(self):
            return {"mean": 87.06, "best": 94.37}

    run = tmp_path / "results" / "r"
    other = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|nor_conv_1x1~2|"
    for method, arch, acc in (("e2nas", other, 80.0), ("ref-nb201-best", BEST, 83.0)):
        if method == "e2nas":
            path = run / "search/fashion-mnist/nb201/e2nas/seed0/result.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"arch": arch, "method": method, "seed": 0, "epochs": 1, "search_seconds": 1.0,
                                        "nb201": None, "trajectory": []}))
        path = run / f"retrain/fashion-mnist/nb201/{method}/seed0/metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"arch": arch, "test_accuracy": acc, "params": 1, "flops": 1, "train_seconds": 1.0}))
    df = report.collect_results(*report.find_run_files(run), table=Table())
    ref = df[df.method == "ref-nb201-best"].iloc[0]
    assert ref.nb201_cifar10 == 94.37 and ref.percentile_cifar10 == 100.0 and ref.test_accuracy == 83.0
    assert report.reference_lines(df, Table())["test_accuracy"] == {"ref-nb201-best (retrained)": 83.0}
    assert list(report.searched(df).method) == ["e2nas"]
    bars = report.method_figures(df, Table())["retrain_accuracy_by_method.png"]
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["e2nas"]
    assert isinstance(report.summarize(df), pd.DataFrame) and "ref-nb201-best" in set(report.summarize(df).method)

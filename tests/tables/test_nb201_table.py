import json
import logging
import math

import pytest

from e2nas.tables.nb201 import ENV_VAR, SHIPPED_TABLE, Nb201Table, TableError, table_path

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def table(nb201_table_path):
    return Nb201Table.load(nb201_table_path)


def test_best_cell_and_space_statistics(table):
    assert len(table) == 15625
    stats = table.stats("cifar10")
    assert round(stats["best"], 2) == 94.37
    assert round(stats["mean"], 2) == 87.06
    best_row = table.frame["cifar10"].idxmax()
    assert table.lookup(best_row)["cifar10"] == pytest.approx(94.37, abs=0.005)
    assert table.rank(stats["best"]) == 1
    assert table.percentile(stats["best"]) == 100.0


def test_lookup_known_cells(table):
    assert table.lookup(ALL_SKIP)["cifar10"] == pytest.approx(54.30, abs=0.005)
    assert set(table.lookup(BEST)) == {"cifar10", "cifar100", "imagenet16_120"}
    assert table.lookup((3, 3, 3, 1, 3, 3)) == table.lookup(BEST)
    assert 99 < table.percentile(table.lookup(BEST)["cifar10"]) <= 100


def test_no_table_is_a_logged_note(monkeypatch, caplog):
    monkeypatch.setenv(ENV_VAR, "none")
    with caplog.at_level(logging.WARNING):
        assert Nb201Table.from_env() is None
    assert ENV_VAR in caplog.text


def test_the_package_ships_the_whole_table_and_the_variable_overrides_it(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    shipped = Nb201Table.from_env()
    assert table_path() == SHIPPED_TABLE and len(shipped) == 15625 and shipped.frame.index.is_unique
    assert shipped.lookup(BEST)["cifar10"] == pytest.approx(94.3633, abs=1e-4)
    assert json.loads(SHIPPED_TABLE.with_suffix(".json").read_text())["rows"] == 15625  # its provenance beside it
    own = tmp_path / "own.csv"
    own.write_text("arch,cifar10,cifar100,imagenet16_120\n" + BEST + ",50,40,30\n")
    monkeypatch.setenv(ENV_VAR, str(own))
    assert Nb201Table.from_env().lookup(BEST)["cifar10"] == 50.0


def test_wrong_columns_name_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,c10\n" + BEST + ",94\n")
    with pytest.raises(TableError, match="lacks columns .*cifar100") as err:
        Nb201Table.load(bad)
    assert str(bad) in str(err.value)


def test_missing_file_names_the_variable(tmp_path):
    with pytest.raises(TableError, match=ENV_VAR):
        Nb201Table.load(tmp_path / "nope.csv")


HEADER = "arch,cifar10,cifar100,imagenet16_120\n"


@pytest.mark.parametrize("body, match", [
    (f"{BEST},94,,40\n", "row 2 .* empty or NaN accuracy"),
    (f"{BEST},nan,70,40\n", "row 2 .* empty or NaN accuracy"),
    (f"{BEST},94,70,40\n{ALL_SKIP},54,20,10\n{BEST},93,70,40\n", "appears more than once .rows 2, 4"),
    ("", "a header but no rows"),
])
def test_a_table_with_holes_repeats_or_no_rows_is_refused_naming_the_file(tmp_path, body, match):
    bad = tmp_path / "t.csv"
    bad.write_text(HEADER + body)
    with pytest.raises(TableError, match=match) as err:
        Nb201Table.load(bad)
    assert str(bad) in str(err.value)


def test_a_folder_given_as_the_table_is_named_as_a_folder(tmp_path):
    with pytest.raises(TableError, match="is a folder, not a CSV file"):
        Nb201Table.load(tmp_path)


@pytest.mark.parametrize("body, match", [
    (f"{BEST},inf,70,40\n", r"row 2 .* cifar10 = inf; every accuracy must be a finite percentage in \[0, 100\]"),
    (f"{BEST},94,70,40\n{ALL_SKIP},54,20,140\n", r"row 3 .* imagenet16_120 = 140.0; every accuracy must be a finite percentage"),
    (f"{BEST},94,-1,40\n", r"row 2 .* cifar100 = -1.0"),
    (f"{BEST},0.94,0.73,0.47\n{ALL_SKIP},0.54,0.2,0.1\n", "every accuracy is at most 1, so they are fractions, not percentages"),
])
def test_a_table_with_infinite_out_of_range_or_fractional_accuracies_is_refused(tmp_path, body, match):
    bad = tmp_path / "t.csv"
    bad.write_text(HEADER + body)
    with pytest.raises(TableError, match=match) as err:
        Nb201Table.load(bad)
    assert str(bad) in str(err.value)


def test_a_partial_table_loads_with_a_warning_and_gives_no_percentiles(tmp_path, caplog, table):
    part = tmp_path / "part.csv"
    part.write_text(HEADER + f"{BEST},94.37,73.5,47.3\n{ALL_SKIP},54.3,20.1,10.2\n" + "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,10,1,1\n")
    with caplog.at_level(logging.WARNING):
        small = Nb201Table.load(part)
    assert "partial table: 3 of 15,625 cells" in caplog.text and str(part) in caplog.text
    assert small.lookup(BEST)["cifar10"] == 94.37  # look-ups still work
    assert math.isnan(small.percentile(94.37)) and small.rank(94.37) is None  # not "the 100th percentile of 3 cells"
    assert table.complete and table.percentile(table.stats()["best"]) == 100.0  # the whole space still ranks

"""The config check the Snakefile runs before any job: one line per problem, naming key, value and fix."""

import copy
import re

import pytest
import yaml

from conftest import REPO
from e2nas.config_check import ConfigError, check, problems

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SMOKE = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())


def with_(**changes):
    cfg = copy.deepcopy(SMOKE)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[section] = value
    return cfg


def test_every_shipped_profile_passes():
    for path in sorted((REPO / "config").glob("*.yaml")):
        merged = {**yaml.safe_load((REPO / "config" / "config.yaml").read_text()), **yaml.safe_load(path.read_text())}
        assert problems(merged, SCHEMA) == [], path.name


@pytest.mark.parametrize("cfg, expected", [
    (with_(search__epoch=3), "unknown key 'epoch' in section `search` (did you mean 'epochs'?)"),
    (with_(seeds=[1.0]), "seeds: 1.0 is not an integer (write 1 without a decimal point)"),
    (with_(seeds=[2**63]), "seeds: 9223372036854775808 is too large"),
    (with_(run="abc\n"), "run = 'abc\\n': a run name is letters, digits"),
    (with_(run="mlflow.db"), "run = 'mlflow.db' is the name of a file the pipeline keeps in results/"),
    (with_(search__w_lr=0.01, search__w_lr_min=0.1), "search.w_lr_min = 0.1 is larger than search.w_lr = 0.01"),
    (with_(search__tau_min=40, search__tau_max=30), "search.tau_min = 40 is larger than search.tau_max = 30"),
    (with_(search__gdas_tau_min=11, search__gdas_tau_max=10), "search.gdas_tau_min = 11 is larger than search.gdas_tau_max = 10"),
    (with_(warmup__lr=0.01, warmup__lr_min=0.02), "warmup.lr_min = 0.02 is larger than warmup.lr = 0.01"),
    (with_(retrain__lr=0.01, retrain__lr_min=0.02), "retrain.lr_min = 0.02 is larger than retrain.lr = 0.01"),
    (with_(search__epochs=0), "search.epochs = 0 is out of range: it must be >= 1"),
    (with_(space="nb301"), "space = 'nb301' is not allowed; choose one of: darts, nb201"),
])
def test_each_bad_config_gets_one_line_naming_key_value_and_fix(cfg, expected):
    found = problems(cfg, SCHEMA)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_an_empty_or_comment_only_config_file_is_named(tmp_path):
    empty, comment = tmp_path / "empty.yaml", tmp_path / "comment.yaml"
    empty.write_text("")
    comment.write_text("# nothing set here\n")
    with pytest.raises(ConfigError) as err:
        check(SMOKE, SCHEMA, [empty, comment])
    text = str(err.value)
    assert f"config file {empty} is empty" in text and f"config file {comment} is empty" in text and len(text.splitlines()) == 4


# ---------------------------------------------------------------- issue 29: what a hostile or unlucky config does

import subprocess  # noqa: E402
import time  # noqa: E402

from conftest import SNAKEMAKE  # noqa: E402
from e2nas.config_check import (  # noqa: E402
    DEFAULT_BATCH_SIZES,
    MAX_CONFIG_NODES,
    coerce_numbers,
    composed_schema,
    load_config_file,
    merge,
)

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# 329 bytes of YAML that expand into 9^7 (4.8 million) strings: the alias bomb, in `notes`.
ALIAS_BOMB = """run: bomb
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
notes: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""
RANGE_BOMB = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
              "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
              "normal_concat=range(0, 200000000), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
              "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
              "reduce_concat=[2, 3, 4, 5])")


@pytest.mark.parametrize("name", ["mlflow.db-journal", "mlflow.db-wal", "mlflow.db-shm", "mlflow.db.broken", "mlartifacts-server",
                                  "mlflow-server.db"])
def test_sqlite_and_store_names_are_not_run_names(name):
    """Item 1: `run: mlflow.db-journal` made a folder where SQLite keeps its journal: no profile could write the store."""
    found = problems(with_(run=name), SCHEMA)
    assert len(found) == 1 and found[0].startswith(f"run = {name!r} is the name of a file the pipeline keeps in results/")


def test_an_alias_bomb_is_refused_in_a_line_before_anything_formats_it(tmp_path):
    """Item 6: 329 bytes of aliases in `notes` made a 580 MB error message."""
    assert len(ALIAS_BOMB.encode()) < 400
    cfg = merge(SMOKE, yaml.safe_load(ALIAS_BOMB))  # what Snakemake hands the Snakefile: shared lists, not copies
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        check(cfg, SCHEMA)
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert len(text) < 1000 and f"more than {MAX_CONFIG_NODES:,} values" in text and "MAX_CONFIG_NODES" in text
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    with pytest.raises(ConfigError, match=f"config file {bomb} holds more than"):
        load_config_file(bomb)


def test_an_alias_that_contains_itself_or_a_huge_string_is_refused(tmp_path):
    loop = tmp_path / "loop.yaml"
    loop.write_text("run: loop\nnotes: &x [*x]\n")
    with pytest.raises(ConfigError, match="nested more than 32 levels deep .or an alias contains itself"):
        load_config_file(loop)
    found = problems(with_(notes="x" * 1_000_000), SCHEMA)
    assert len(found) == 1 and "a string of 1,000,000 characters, over the limit of 20,000" in found[0]


def test_a_genotype_that_would_exhaust_memory_is_refused_in_any_profile():
    """Item 6: `normal_concat=range(0, 200000000)` exhausted 8 GB in common.smk; an NB201 profile must refuse a bad
    DARTS reference too (every space's references are checked, whichever space runs)."""
    for space in ("darts", "nb201"):
        cfg = with_(space=space, references={"nb201": ["nb201-best"], "darts": ["darts-v2", RANGE_BOMB]})
        start = time.monotonic()
        found = problems(cfg, SCHEMA)
        assert time.monotonic() - start < 10
        assert len(found) == 1 and found[0].startswith("references.darts[1]: ") and "normal_concat" in found[0], found
        assert len(found[0]) < 400


def test_an_invalid_reference_of_the_other_space_is_refused():
    found = problems(with_(references={"nb201": ["|nor_conv_3x3~0|+|bogus~0|"], "darts": ["darts-v2"]}, space="darts"), SCHEMA)
    assert len(found) == 1 and found[0].startswith("references.nb201[0]: ") and "bogus" in found[0]


def test_a_subset_smaller_than_a_batch_is_refused_naming_both_keys():
    """Item 10: `data: {subset_per_half: 10}` with the default batch of 64 passed, then no step ran."""
    # The retrain's own settings (the default profile's protocol takes its split from the ground-truth table).
    cfg = merge(DEFAULT, {"data": {"subset_per_half": 10}, "retrain": {"protocol": None, "batch_size": 64}})
    found = problems(cfg, SCHEMA)
    assert any(p.startswith("data.subset_per_half = 10 is smaller than warmup.batch_size = 64") for p in found), found
    assert any(p.startswith("data.subset_per_half = 10 is smaller than search.batch_size = 64") for p in found), found
    assert any(p.startswith("retrain trains on 20 images") for p in found), found
    bare = {k: v for k, v in copy.deepcopy(cfg).items()}
    for section in ("warmup", "search", "retrain"):
        bare[section].pop("batch_size", None)  # the dataclasses' default batch applies
    assert len(problems(bare, SCHEMA)) == 3
    assert len(problems(merge(DEFAULT, {"data": {"subset_per_half": 10}}), SCHEMA)) == 2  # under the protocol: its own split
    assert problems(merge(DEFAULT, {"data": {"subset_per_half": 64}}), SCHEMA) == []


def test_the_default_batch_sizes_are_the_dataclasses():
    from e2nas import spaces
    from e2nas.search import SearchConfig
    from e2nas.warmup import WarmupConfig

    assert DEFAULT_BATCH_SIZES == {"warmup": WarmupConfig().batch_size, "search": SearchConfig().batch_size,
                                   "retrain": spaces.get("nb201").config("retrain", {}).batch_size}


def test_numbers_snakemake_hands_over_as_text_are_read_as_numbers():
    """Item 11: `--config 'seeds=[0,1,2,3,4]'` gives seeds ['0', ..., '4'] (YAML's BaseLoader)."""
    cfg = with_(seeds=["0", "1", "2"], search={**SMOKE["search"], "epochs": "3", "arch_lr": "0.05"})
    check(cfg, SCHEMA)
    assert cfg["seeds"] == [0, 1, 2] and cfg["search"]["epochs"] == 3 and cfg["search"]["arch_lr"] == 0.05
    assert all(type(s) is int for s in cfg["seeds"])
    found = problems(with_(seeds=["1.0"]), SCHEMA)  # text that is no integer is still named
    assert len(found) == 1 and found[0].startswith("seeds.0 = '1.0' has the wrong type: expected integer")
    assert coerce_numbers({"run": "7", "notes": "3"}, composed_schema(SCHEMA)) == {"run": "7", "notes": "3"}  # strings stay


def test_the_documented_way_to_add_seeds_plans(tmp_path):
    """config/study-nb201.yaml: `--config 'seeds=[0,1,2,3,4,5,6,7]'` (was: seeds.0 = '0' has the wrong type)."""
    assert "--config 'seeds=[0,1,2,3,4,5,6,7]'" in (REPO / "config" / "study-nb201.yaml").read_text()
    out = subprocess.run([SNAKEMAKE, "-n", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"), "--configfile",
                          str(REPO / "config" / "study-nb201.yaml"), "--config", "seeds=[0,1,2,3,4,5,6,7]", "--cores", "1",
                          "--quiet", "rules"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, flags=re.M))
    assert stats["warmup_supernet"] == "8"  # one warm-up per seed: the seeds arrived as eight integers


@pytest.mark.parametrize("text, expected", [
    ("run: x\nsearch:\n  epochs: [3\n", r"config file .*bad.yaml, line 4, column 1: expected ',' or ']'"),
    ("run: x\nnotes: !!python/object/apply:os.system ['touch PWNED']\n",
     r"config file .*bad.yaml, line 2, column 8: the tag !!python/object/apply:os.system is not allowed"),
    ("run: x\n\tsearch: 1\n", r"config file .*bad.yaml, line 2, column 1: found character '\\t'"),
])
def test_a_config_file_that_is_not_plain_yaml_is_one_line_with_file_and_line(tmp_path, text, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config_file(bad)
    assert re.search(expected, str(err.value)) and len(str(err.value).splitlines()) == 2, str(err.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_folder_a_missing_or_a_huge_config_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a folder, not a YAML file"):
        load_config_file(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.yaml")
    huge = tmp_path / "huge.yaml"
    huge.write_text("run: x\nnotes: '" + "x" * (2 << 20) + "'\n")
    with pytest.raises(ConfigError, match=r"is 2,097,16\d bytes, over the limit of 1,048,576"):
        load_config_file(huge)

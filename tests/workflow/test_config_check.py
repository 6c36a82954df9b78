"""The config check the Snakefile runs before any job: one line per problem, naming key, value and fix."""

import copy

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

"""The config schema, the dataclasses that consume each section, and the shipped profiles agree."""

import dataclasses

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from e2nas import spaces
from e2nas.config_check import composed_schema, write_composed_schema
from e2nas.data import DataConfig
from e2nas.ranking import RankingConfig
from e2nas.search import SearchConfig
from e2nas.sections import GraphsConfig, RetrainConfig, SupernetConfig
from e2nas.vgae import VGAEConfig
from e2nas.warmup import WarmupConfig

SECTIONS = {
    "data": DataConfig,
    "graphs": GraphsConfig,
    "vgae": VGAEConfig,
    "supernet": SupernetConfig,
    "warmup": WarmupConfig,
    "search": SearchConfig,
    "retrain": RetrainConfig,
    "ranking": RankingConfig,
}
OPTIONAL = {"graphs", "ranking"}  # sections a profile may leave out (their dataclass defaults apply)
SPACE_SECTIONS = ("graphs", "supernet", "retrain")  # a space may add keys to these (its config.py)
BASE_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> str:
    """The composed schema (every space's keys) as the file Snakemake's validate reads."""
    return write_composed_schema(BASE_SCHEMA, tmp_path_factory.mktemp("schema") / "config.schema.yaml")
PROFILES = sorted((REPO / "config").glob("*.yaml"))
DARTS_PROFILES = [p for p in PROFILES if yaml.safe_load(p.read_text())["space"] == "darts"]


def test_schema_sections_match_dataclass_fields():
    """The shared keys are the shared dataclass's; a space's own keys are its dataclass's, in its config.schema.yaml."""
    base, composed = yaml.safe_load(BASE_SCHEMA.read_text()), composed_schema(BASE_SCHEMA)
    for name, cls in SECTIONS.items():
        assert set(base["properties"][name]["properties"]) == {f.name for f in dataclasses.fields(cls)}, name
        assert composed["properties"][name]["additionalProperties"] is False
        if name in SPACE_SECTIONS:
            union = set().union(*({f.name for f in dataclasses.fields(type(spaces.get(sp).config(name)))} for sp in spaces.NAMES))
            assert set(composed["properties"][name]["properties"]) == union, name


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_profiles_validate_and_build_every_section(profile, schema):
    config = yaml.safe_load(profile.read_text())
    validate(config, schema)
    space = spaces.get(config["space"])
    for name, cls in SECTIONS.items():
        values = config.get(name, {}) if name in OPTIONAL else config[name]
        space.config(name, values) if name in SPACE_SECTIONS else cls(**values)


def test_only_the_optional_sections_may_be_left_out():
    schema = yaml.safe_load(BASE_SCHEMA.read_text())
    assert set(SECTIONS) - set(schema["required"]) == OPTIONAL


@pytest.mark.parametrize("space, ok", [("nb201", True), ("darts", True), ("foo", False), ("DARTS", False)])
def test_schema_knows_the_space_packages(space, ok, schema):
    config = {**yaml.safe_load((REPO / "config" / "smoke.yaml").read_text()), "space": space}
    if ok:
        validate(config, schema)
    else:
        with pytest.raises(Exception, match=rf"'{space}' is not one of \['darts', 'nb201'\]"):
            validate(config, schema)


@pytest.mark.parametrize("section, bad", [
    ("graphs", {"num_archs": 0}), ("graphs", {"seed": -1}), ("graphs", {"num_arch": 5}),
    ("retrain", {"drop_path_prob": 1.0}), ("retrain", {"cutout": -1}), ("retrain", {"auxiliary_weight": -0.4}),
    ("supernet", {"layers": 0}),
])
def test_darts_keys_out_of_range_are_refused(section, bad, schema):
    config = yaml.safe_load((REPO / "config" / "smoke-darts.yaml").read_text())
    config[section] = {**config[section], **bad}
    with pytest.raises(Exception, match=rf"On instance\['{section}'\]"):
        validate(config, schema)


@pytest.mark.parametrize("profile", DARTS_PROFILES, ids=[p.name for p in DARTS_PROFILES])
def test_darts_profiles_use_the_vgae_layout_that_reconstructs_darts_genotypes(profile):
    """benchmarks/vgae.py --space darts: a sum readout or a narrow decoder cannot decode 32 choices."""
    config = yaml.safe_load(profile.read_text())
    assert config["vgae"]["readout"] == "concat" and config["vgae"]["decoder_dim"] >= 2 * config["vgae"].get("hidden_dim", 16)
    assert config["graphs"]["num_archs"] >= 1
    if "cifar" not in " ".join(config["datasets"]):  # DARTS's auxiliary head needs 32x32 images
        assert config["retrain"].get("auxiliary_weight", 0.0) == 0.0


def test_default_profile_runs_the_four_methods_over_two_seeds():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["run"] == "default" and config["datasets"] == ["fashion-mnist"] and config["space"] == "nb201"
    assert set(config["methods"]) == {"e2nas", "gdas", "darts", "rsps"} and len(config["seeds"]) == 2


def merged_with_default(profile) -> dict:
    """The config a run of `--configfile profile` sees: Snakemake deep-merges it over config/config.yaml."""
    def merge(base, extra):
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        return out

    return merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), yaml.safe_load(profile.read_text()))


PAPER_PROFILES = [p for p in PROFILES if p.name.startswith("paper-")]


@pytest.mark.parametrize("profile", PAPER_PROFILES, ids=[p.name for p in PAPER_PROFILES])
def test_paper_profiles_use_all_data_after_the_merge_with_the_default_profile(profile):
    config = merged_with_default(profile)
    assert config["data"]["subset_per_half"] is None
    assert config["retrain"].get("train_subset") is None and config["retrain"].get("test_subset") is None

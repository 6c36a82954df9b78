"""The config schema, the dataclasses that consume each section, and the shipped profiles agree."""

import dataclasses

import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from e2nas.data import DataConfig
from e2nas.report import ReportConfig
from e2nas.retrain import RetrainConfig
from e2nas.search import SearchConfig
from e2nas.supernet.warmup import SupernetConfig, WarmupConfig
from e2nas.vgae import VGAEConfig

SECTIONS = {
    "data": DataConfig,
    "vgae": VGAEConfig,
    "supernet": SupernetConfig,
    "warmup": WarmupConfig,
    "search": SearchConfig,
    "retrain": RetrainConfig,
    "report": ReportConfig,
}
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PROFILES = sorted((REPO / "config").glob("*.yaml"))


def test_schema_sections_match_dataclass_fields():
    schema = yaml.safe_load(SCHEMA.read_text())
    for name, cls in SECTIONS.items():
        assert set(schema["properties"][name]["properties"]) == {f.name for f in dataclasses.fields(cls)}, name
        assert schema["properties"][name]["additionalProperties"] is False


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_profiles_validate_and_build_every_section(profile):
    config = yaml.safe_load(profile.read_text())
    validate(config, str(SCHEMA))
    for name, cls in SECTIONS.items():
        cls(**config[name])


def test_default_profile_runs_the_four_methods_over_two_seeds():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["run"] == "default" and config["datasets"] == ["fashion-mnist"] and config["space"] == "nb201"
    assert set(config["methods"]) == {"e2nas", "gdas", "darts", "rsps"} and len(config["seeds"]) == 2

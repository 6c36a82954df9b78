"""The default profile's search settings really move the architecture in so few steps."""

import pytest
import yaml

from conftest import REPO
from e2nas import spaces
from e2nas.data import DataConfig, load_dataset, split_for
from e2nas.graphs import build_graph_set
from e2nas.search import SearchConfig, run_search
from e2nas.vgae import VGAEConfig, run_pretraining
from e2nas.warmup import WarmupConfig, run_warmup

pytestmark = pytest.mark.slow


def test_decoded_cell_changes_during_the_default_search(tmp_path):
    """With config.yaml's own search section (raised arch lr, 5 epochs), μ moves far enough
    that the decoded cell changes between epochs, on the default data sizes."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    data = load_dataset("fashion-mnist", cache_dir=str(tmp_path / "cache"))
    split = split_for(data, DataConfig(**cfg["data"]))
    # A shorter warm-up and VGAE training than the profile's, to keep the test short; the
    # search itself runs exactly as configured.
    run_warmup(
        data, split, spaces.get(cfg["space"]).config("supernet", cfg["supernet"]), WarmupConfig(**{**cfg["warmup"], "epochs": 1}),
        0, tmp_path / "warmup.pt", tmp_path / "warmup.ckpt", progress=False, space="nb201",
    )
    build_graph_set("nb201").save(tmp_path / "graphs.pt")
    metrics, _ = run_pretraining(
        tmp_path / "graphs.pt", tmp_path / "vgae.pt", tmp_path / "vgae.json",
        VGAEConfig(**{**cfg["vgae"], "epochs": 8}), progress=False,
    )
    assert metrics["reconstruction_accuracy"] > 0.95
    result = run_search(
        "e2nas", data, tmp_path / "warmup.pt", tmp_path / "vgae.pt", SearchConfig(**cfg["search"]), 0,
        tmp_path / "result.json", tmp_path / "search.ckpt", progress=False, graphs_path=tmp_path / "graphs.pt",
    )
    cells = [record["arch"] for record in result["trajectory"]]
    assert len(result["trajectory"]) == cfg["search"]["epochs"]
    assert len({result["start_arch"], *cells}) > 1, cells

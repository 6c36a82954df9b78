import json

import pytest
import torch
from torch_geometric.nn import GINConv, WLConv, global_add_pool

from e2nas import spaces
from e2nas.graphs import GraphsConfig, GraphSet, build_graph_set, summary, write_stage
from e2nas.spaces import darts, nb201
from e2nas.spaces.darts.config import DartsGraphsConfig


def test_wl_colour_refinement_tells_all_cells_apart():
    """1-WL refinement (what a GIN can at most distinguish) gives 15,625 distinct colourings."""
    graphs = build_graph_set("nb201")
    batch = graphs.batch()
    colours = torch.unique(batch.x, dim=0, return_inverse=True)[1]
    conv = WLConv()
    for _ in range(3):
        colours = conv(colours, batch.edge_index)
    histograms = conv.histogram(colours, batch.batch)
    assert torch.unique(histograms, dim=0).shape[0] == 15625


def test_untrained_gin_embeds_every_cell_differently():
    torch.manual_seed(0)
    graphs = build_graph_set("nb201")
    batch = graphs.batch()
    h = batch.x
    for _ in range(2):
        mlp = torch.nn.Sequential(torch.nn.Linear(h.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 32))
        h = GINConv(mlp)(h, batch.edge_index)
    emb = global_add_pool(h, batch.batch)
    assert torch.cdist(emb, emb).add(torch.eye(len(graphs)) * 1e9).min() > 1e-5


def test_edge_position_matters():
    """Two cells with the same ops on different edges are different graphs."""
    a = build_graph_set("nb201", torch.tensor([[3, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3]]))
    assert not torch.equal(a.x[0], a.x[1])
    assert torch.equal(a.edge_index, build_graph_set("nb201", torch.zeros(1, 6, dtype=torch.long)).edge_index)


def test_batch_offsets_edges_per_graph():
    graphs = build_graph_set("nb201", nb201.all_archs()[:3])
    batch = graphs.batch(torch.tensor([2, 0]))
    assert batch.num_graphs == 2
    assert torch.equal(batch.x[:10], graphs.x[2])
    assert int(batch.edge_index[:, 12:].min()) == 10


def test_stage_writes_graphs_and_summary(tmp_path):
    info = write_stage("nb201", tmp_path / "nb201.pt", tmp_path / "nb201.json")
    assert info["num_archs"] == info["num_unique"] == 15625
    assert json.loads((tmp_path / "nb201.json").read_text())["op_counts"]["none"] == 15625 * 6 // 5
    loaded = GraphSet.load(tmp_path / "nb201.pt")
    assert torch.equal(loaded.archs, nb201.all_archs())
    assert summary(loaded) == info


def test_darts_stage_samples_num_archs_graphs_deterministic_in_the_seed(tmp_path):
    cfg = GraphsConfig(num_archs=300, seed=5)
    info = write_stage("darts", tmp_path / "a.pt", tmp_path / "a.json", cfg)
    again = write_stage("darts", tmp_path / "b.pt", tmp_path / "b.json", GraphsConfig(num_archs=300, seed=5))
    write_stage("darts", tmp_path / "c.pt", tmp_path / "c.json", GraphsConfig(num_archs=300, seed=6))
    a, b, c = (GraphSet.load(tmp_path / f"{n}.pt") for n in "abc")
    assert len(a) == info["num_archs"] == 300 and a.space == "darts"
    assert torch.equal(a.archs, b.archs) and torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert info == again and not torch.equal(a.archs, c.archs)
    # The sample is darts.sample_archs with the seed, degenerate draws kept; the summary counts the valid ones.
    assert torch.equal(a.archs, darts.sample_archs(300, torch.Generator().manual_seed(5)))
    assert info["sample_seed"] == 5 and info["num_valid"] == int(darts.valid_mask(a.archs).sum())
    assert json.loads((tmp_path / "a.json").read_text()) == info
    assert info["distinct_inputs"] is True and a.options == {"distinct_inputs": True}
    assert summary(a) == {k: v for k, v in info.items() if k not in ("sample_seed", "distinct_inputs", "num_valid")}


def test_distinct_inputs_false_draws_nodes_that_read_one_input_twice_and_the_graphs_record_it(tmp_path):
    def repeated_nodes(archs):  # nodes whose two input choices are equal
        inputs = archs[:, list(darts.INPUT_POSITIONS)]
        return int((inputs[:, 0::2] == inputs[:, 1::2]).sum())

    distinct = write_stage("darts", tmp_path / "d.pt", tmp_path / "d.json", GraphsConfig(num_archs=400, seed=1))
    repeats = write_stage(darts.SPACE.configured(distinct_inputs=False), tmp_path / "r.pt", tmp_path / "r.json",
                          DartsGraphsConfig(num_archs=400, seed=1, distinct_inputs=False))
    d, r = GraphSet.load(tmp_path / "d.pt"), GraphSet.load(tmp_path / "r.pt")
    assert repeated_nodes(d.archs) == 0 and repeated_nodes(r.archs) > 100
    assert distinct["distinct_inputs"] is True and repeats["distinct_inputs"] is False
    # The space the cells came from, options included, is what E2NAS decodes under.
    assert d.configured_space.distinct_inputs and not r.configured_space.distinct_inputs
    assert GraphSet(r.space, r.archs, r.x, r.edge_index).options == {}  # files written before the option: DARTS's default
    nb = write_stage(spaces.from_config("nb201", {"graphs": {"distinct_inputs": False}}), tmp_path / "n.pt", tmp_path / "n.json")
    assert GraphSet.load(tmp_path / "n.pt").options == {} and "distinct_inputs" not in nb


def test_darts_sample_keeps_degenerate_genotypes(tmp_path):
    info = write_stage("darts", tmp_path / "d.pt", tmp_path / "d.json", GraphsConfig(num_archs=20000, seed=0))
    assert info["num_archs"] == 20000 and 19900 < info["num_valid"] < 20000


def test_nb201_stage_ignores_the_graphs_section(tmp_path):
    info = write_stage("nb201", tmp_path / "n.pt", tmp_path / "n.json", GraphsConfig(num_archs=5, seed=3))
    assert info["num_archs"] == 15625 and "num_valid" not in info and "sample_seed" not in info


@pytest.mark.parametrize("bad", [{"num_archs": 0}, {"seed": -1}])
def test_graphs_config_refuses_bad_values_naming_the_key(bad):
    with pytest.raises(ValueError, match=f"graphs.{next(iter(bad))}"):
        GraphsConfig(**bad)

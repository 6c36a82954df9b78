import math
from collections import namedtuple

import pytest
import torch
from torch_geometric.nn import GINConv, WLConv, global_add_pool

from e2nas import spaces
from e2nas.graphs import GraphSet, build_graph_set, summary
from e2nas.spaces import darts

V2 = darts.DARTS_V2
# DARTS-V2 with each node's pairs by ascending input: only normal node 4 and reduce nodes 3, 5 change order.
V2_CANONICAL = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('max_pool_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])"
)
SEP3, SKIP, DIL3, MAX, NONE = (
    darts.OPS.index(o) for o in ("sep_conv_3x3", "skip_connect", "dil_conv_3x3", "max_pool_3x3", "none")
)


def sample(n, seed=0):
    return darts.sample_archs(n, torch.Generator().manual_seed(seed))


def test_registered_and_choice_sizes():
    assert "darts" in spaces.NAMES and spaces.get("darts") is darts.SPACE
    assert darts.CHOICE_SIZES == (2, 8, 2, 8, 3, 8, 3, 8, 4, 8, 4, 8, 5, 8, 5, 8) * 2
    assert darts.NUM_ARCHS == (1 * 3 * 6 * 10 * 8**8) ** 2


def test_darts_v2_parses_to_its_canonical_encoding():
    arch = darts.parse_arch(V2)
    normal = (0, SEP3, 1, SEP3, 0, SEP3, 1, SEP3, 0, SKIP, 1, SEP3, 0, SKIP, 2, DIL3)
    reduce = (0, MAX, 1, MAX, 1, MAX, 2, SKIP, 0, MAX, 2, SKIP, 1, MAX, 2, SKIP)
    assert arch == normal + reduce
    assert darts.format_arch(arch) == V2_CANONICAL
    assert darts.parse_arch(V2_CANONICAL) == arch
    assert darts.is_valid(arch)


def test_text_round_trip_on_10000_samples():
    archs = sample(10000)
    texts = set()
    for arch in archs.tolist():
        text = darts.format_arch(arch)
        assert darts.parse_arch(text) == tuple(arch)
        assert darts.format_arch(darts.parse_arch(text)) == text
        texts.add(text)
    assert len(texts) == torch.unique(archs, dim=0).shape[0]


def test_sampling_is_seeded_canonical_and_uniform():
    archs = sample(20000)
    assert torch.equal(archs, sample(20000)) and not torch.equal(archs, sample(20000, seed=1))
    assert archs.shape == (20000, 32)
    inputs = archs[:, darts.INPUT_POSITIONS].view(-1, 8, 2)
    assert bool((inputs[..., 0] < inputs[..., 1]).all())
    # Node 5 (i = 3) of the normal cell: 10 input pairs, each drawn ~2,000 times.
    pair = archs[:, darts.position(0, 3, 0)] * 5 + archs[:, darts.position(0, 3, 1)]
    counts = torch.bincount(pair, minlength=25)
    assert int((counts > 0).sum()) == math.comb(5, 2)
    assert counts[counts > 0].min() > 1800 and counts.max() < 2200
    ops = torch.bincount(darts.op_choices(archs).flatten(), minlength=8).float()
    assert (ops / ops.mean() - 1).abs().max() < 0.03


def test_canonicalize_and_genotype_ignore_slot_order():
    arch = sample(1)[0]
    swapped = arch.view(8, 2, 2).flip(1).reshape(32)
    assert not torch.equal(swapped, arch)
    assert torch.equal(darts.canonicalize(swapped), arch)
    assert torch.equal(darts.canonicalize(torch.stack([swapped, arch])), torch.stack([arch, arch]))
    assert darts.format_arch(swapped.tolist()) == darts.format_arch(arch.tolist())
    assert not darts.is_valid(swapped.tolist()) and darts.is_valid(arch.tolist())


def test_genotype_objects_and_range_concat():
    genotype = darts.to_genotype(darts.parse_arch(V2))
    assert genotype.normal_concat == [2, 3, 4, 5] and len(genotype.reduce) == 8
    theirs = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")(
        genotype.normal, range(2, 6), genotype.reduce, range(2, 6)
    )
    assert darts.from_genotype(theirs) == darts.parse_arch(V2)
    logged = V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)")
    assert darts.parse_arch(logged) == darts.parse_arch(V2)


def _cell(*nodes):
    """Encoding of one cell from 4 nodes, each ((input, op), (input, op))."""
    return tuple(c for node in nodes for pair in node for c in pair)


GOOD = _cell(((0, SEP3), (1, SEP3)), ((0, SEP3), (1, SEP3)), ((0, SEP3), (1, SEP3)), ((0, SEP3), (1, SEP3)))


def test_validity_rules():
    dead = _cell(((0, NONE), (1, NONE)), ((0, NONE), (2, SKIP)), ((2, SKIP), (3, SEP3)), ((2, MAX), (4, DIL3)))
    revived = _cell(((0, NONE), (1, NONE)), ((0, NONE), (2, SKIP)), ((2, SKIP), (3, SEP3)), ((1, MAX), (4, DIL3)))
    through_none = _cell(((0, NONE), (1, SKIP)), ((0, NONE), (1, NONE)), ((0, NONE), (1, NONE)), ((0, NONE), (1, NONE)))
    assert not darts.is_valid(GOOD + dead) and not darts.is_valid(dead + GOOD)
    assert darts.is_valid(GOOD + revived) and darts.is_valid(through_none + GOOD)
    descending = _cell(((1, SEP3), (0, SEP3)), *[((0, SEP3), (1, SEP3))] * 3)
    duplicate = _cell(((0, SEP3), (0, SEP3)), *[((0, SEP3), (1, SEP3))] * 3)
    out_of_range = GOOD[:-2] + (5, SEP3)
    for bad in (descending, duplicate, out_of_range):
        assert not darts.is_valid(GOOD + bad)
    archs = torch.cat([sample(500), torch.tensor([GOOD + dead, GOOD + revived, GOOD + descending, GOOD + out_of_range])])
    assert darts.valid_mask(archs).tolist() == [darts.is_valid(a) for a in archs.tolist()]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("normal=[]", "not of the form"),
        ("Genotype(normal=[('sep_conv_3x3', 0)", "not of the form"),
        (V2.replace("Genotype(", "Gen("), "not of the form"),
        (V2.replace("'dil_conv_3x3', 2", "'conv_7x7', 2"), "unknown op 'conv_7x7'"),
        (V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "node 5 takes input 5"),
        ("Genotype([], [], [], [], [])", "5 positional"),
        (V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)]", "('skip_connect', 0)]"), "must list 8"),
        (V2.replace("('skip_connect', 0), ('dil_conv_3x3', 2)]", "('skip_connect', 0), ('dil_conv_3x3', 0)]"), "input 0 twice"),
        (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=[4, 5]"), "normal_concat"),
        (V2.replace(", reduce_concat=[2, 3, 4, 5]", ""), "missing field"),
        (V2.replace("reduce_concat=", "concat="), "unknown field 'concat'"),
        (V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os').getcwd()"), "not a literal"),
        (V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', True)"), "takes input True"),
        (V2.replace("('dil_conv_3x3', 2)", "'dil_conv_3x3'"), "item 7"),
    ],
)
def test_malformed_text_raises_clear_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        darts.parse_arch(text)


def test_format_rejects_bad_encodings():
    with pytest.raises(ValueError, match="32 choices"):
        darts.format_arch((0,) * 31)
    with pytest.raises(ValueError, match="input 0 twice"):
        darts.format_arch(_cell(((0, SEP3), (0, SEP3)), *[((0, SEP3), (1, SEP3))] * 3) + GOOD)
    with pytest.raises(ValueError, match="outside"):
        darts.format_arch(GOOD + GOOD[:-1] + (8,))


# -- graphs


def wl_histograms(graphs: GraphSet) -> torch.Tensor:
    """1-WL colour histograms after 3 refinements (what a GIN can at most tell apart)."""
    batch = graphs.batch()
    colours = torch.unique(batch.x, dim=0, return_inverse=True)[1]
    conv = WLConv()
    for _ in range(3):
        colours = conv(colours, batch.edge_index)
    return conv.histogram(colours, batch.batch)


def test_2000_sampled_genotypes_give_distinct_graphs():
    archs = sample(2000)
    assert torch.unique(archs, dim=0).shape[0] == 2000
    graphs = build_graph_set("darts", archs)
    assert graphs.x.shape == (2000, 30, 25) and graphs.edge_index.shape == (2000, 2, 40)
    assert torch.unique(wl_histograms(graphs), dim=0).shape[0] == 2000

    torch.manual_seed(0)
    batch = graphs.batch()
    h = batch.x
    for _ in range(3):
        mlp = torch.nn.Sequential(torch.nn.Linear(h.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 32))
        h = GINConv(mlp)(h, batch.edge_index)
    emb = global_add_pool(h, batch.batch)
    assert torch.cdist(emb, emb).add(torch.eye(2000) * 1e9).min() > 1e-5


def test_graphs_tell_apart_near_twins_and_ignore_slot_order():
    base = torch.tensor(GOOD + GOOD)
    ops_swapped = base.clone()
    ops_swapped[1], ops_swapped[3] = SKIP, SEP3  # node 2: (sep from 0, sep from 1) → (skip from 0, sep from 1)
    ops_crossed = base.clone()
    ops_crossed[1], ops_crossed[3] = SEP3, SKIP  # ... vs (sep from 0, skip from 1): same ops, other inputs
    cells_swapped = torch.cat([ops_swapped[16:], ops_swapped[:16]])  # the change moved to the reduce cell
    rewired = base.clone()
    rewired[darts.position(0, 3, 1)] = 3  # node 5 reads node 3 instead of node 1
    archs = torch.stack([base, ops_swapped, ops_crossed, cells_swapped, rewired])
    assert torch.unique(wl_histograms(build_graph_set("darts", archs)), dim=0).shape[0] == 5

    arch = sample(1)[0]
    slot_swapped = arch.view(8, 2, 2).flip(1).reshape(1, 32)
    graphs = build_graph_set("darts", torch.cat([arch.view(1, 32), slot_swapped]))
    assert torch.equal(graphs.x[0], graphs.x[1]) and torch.equal(graphs.edge_index[0], graphs.edge_index[1])
    assert torch.equal(graphs.archs[1], arch)  # stored canonical, as the graph encodes it


def test_graph_wiring_and_batching():
    archs = sample(3)
    graphs = build_graph_set("darts", archs)
    ei = graphs.edge_index[1]
    x = graphs.x[1]
    # The op node of (normal, node 2, slot 0) reads the chosen input and feeds node 2.
    op_node = 7
    assert int(ei[0][ei[1] == op_node]) == int(archs[1, 0]) and int(ei[1][ei[0] == op_node]) == 2
    assert int(x[op_node, 7 + int(archs[1, 1])]) == 1 and x[op_node, 7:15].sum() == 1
    assert x[op_node, 15] == 1 and x[op_node + 15, 15] == 1 and x[op_node, 16:23].sum() == 0  # op position 0
    assert x[:15, 23].sum() == 15 and x[15:, 24].sum() == 15  # cell-type bits
    batch = graphs.batch(torch.tensor([2, 0]))
    assert batch.num_graphs == 2 and torch.equal(batch.x[:30], graphs.x[2])
    assert torch.equal(batch.edge_index[:, :40], graphs.edge_index[2])
    assert torch.equal(batch.edge_index[:, 40:], graphs.edge_index[0] + 30)
    assert torch.equal(graphs.data(1).edge_index, graphs.edge_index[1])


def test_summary_and_save_load(tmp_path):
    graphs = build_graph_set("darts", sample(100))
    info = summary(graphs)
    assert info["num_archs"] == info["num_unique"] == 100 and info["num_edges"] == 40
    assert sum(info["op_counts"].values()) == 100 * 16
    graphs.save(tmp_path / "darts.pt")
    loaded = GraphSet.load(tmp_path / "darts.pt")
    assert torch.equal(loaded.edge_index, graphs.edge_index) and summary(loaded) == info


def test_sampled_space_needs_archs():
    with pytest.raises(ValueError, match="sampled, not enumerated"):
        build_graph_set("darts")


def test_sampling_without_none_gives_valid_genotypes_over_the_other_seven_ops():
    archs = darts.sample_archs(2000, torch.Generator().manual_seed(3), with_none=False)
    assert darts.valid_mask(archs).all()
    assert set(darts.op_choices(archs).unique().tolist()) == set(range(len(darts.OPS))) - {darts.NONE}
    # The inputs are drawn as with `none`: the same generator gives the same input pairs.
    with_none = darts.sample_archs(2000, torch.Generator().manual_seed(3))
    assert torch.equal(archs[:, 0::2], with_none[:, 0::2])

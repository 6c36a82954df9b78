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
    out_of_range = GOOD[:-2] + (5, SEP3)
    # A repeated input is a valid cell (DARTS's network builds it), its pairs ascending by (input, op).
    repeated = _cell(((0, SEP3), (0, SEP3)), *[((0, SEP3), (1, SEP3))] * 3)
    repeated_two_ops = _cell(((1, SKIP), (1, SEP3)), *[((0, SEP3), (1, SEP3))] * 3)
    descending_ops = _cell(((1, SEP3), (1, SKIP)), *[((0, SEP3), (1, SEP3))] * 3)
    for bad in (descending, out_of_range, descending_ops):
        assert not darts.is_valid(GOOD + bad)
    for ok in (repeated, repeated_two_ops):
        assert darts.is_valid(GOOD + ok) and not darts.is_valid(GOOD + ok, distinct_inputs=True)
    assert darts.is_valid(GOOD + revived, distinct_inputs=True)
    only_none_twice = _cell(((0, NONE), (0, NONE)), ((0, NONE), (1, NONE)), ((0, NONE), (1, NONE)), ((0, NONE), (1, NONE)))
    assert not darts.is_valid(GOOD + only_none_twice)
    rows = [GOOD + dead, GOOD + revived, GOOD + descending, GOOD + out_of_range, GOOD + repeated, GOOD + descending_ops]
    archs = torch.cat([sample(500), torch.tensor(rows)])
    for distinct in (False, True):
        assert darts.valid_mask(archs, distinct).tolist() == [darts.is_valid(a, distinct) for a in archs.tolist()]
    assert darts.SPACE.valid_mask(archs).tolist() == darts.valid_mask(archs).tolist()


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


# -- repeated inputs (a node reading one input twice: DARTS's network builds it, published cells use it)

# Normal node 2 reads input 0 twice with the same op, node 3 input 1 twice with two ops (listed sep before
# skip, so the canonical text swaps them: skip is op 3, sep op 4).
REPEATED = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1), "
    "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def sample_repeated(n, seed=0, with_none=True):
    return darts.sample_archs(n, torch.Generator().manual_seed(seed), with_none=with_none, distinct_inputs=False)


def test_repeated_inputs_parse_format_and_round_trip():
    arch = darts.parse_arch(REPEATED)
    assert arch[:8] == (0, SEP3, 0, SEP3, 1, SKIP, 1, SEP3)  # node 3's pairs by (input, op): skip first
    text = darts.format_arch(arch)
    assert "('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 1)" in text
    assert darts.parse_arch(text) == arch and darts.format_arch(darts.parse_arch(text)) == text
    assert darts.from_genotype(darts.to_genotype(arch)) == arch
    assert darts.is_valid(arch) and not darts.is_valid(arch, distinct_inputs=True)
    assert darts.SPACE.canonical_text(REPEATED) == text == darts.SPACE.canonical_text(darts.to_genotype(arch))


def test_canonical_order_is_by_input_then_op_and_ignores_slot_order():
    archs = torch.cat([sample_repeated(3000), sample(1000)])
    assert torch.equal(darts.canonicalize(archs), archs)
    pairs = archs.view(-1, 8, 2, 2)
    first, second = pairs[..., 0, :], pairs[..., 1, :]
    assert bool(((first[..., 0] < second[..., 0]) | ((first[..., 0] == second[..., 0]) & (first[..., 1] <= second[..., 1]))).all())
    # Any slot order of any node maps back, in the tensor and the text form alike.
    flips = torch.rand(archs.shape[0], 8, generator=torch.Generator().manual_seed(1)) < 0.5
    shuffled = torch.where(flips[..., None, None], pairs.flip(2), pairs).reshape(archs.shape)
    assert not torch.equal(shuffled, archs)
    assert torch.equal(darts.canonicalize(shuffled), archs)
    for a, s in zip(archs[:300].tolist(), shuffled[:300].tolist()):
        assert darts.format_arch(s) == darts.format_arch(a) and darts.parse_arch(darts.format_arch(s)) == tuple(a)


def test_text_round_trip_on_samples_with_repeated_inputs():
    archs = sample_repeated(5000)
    texts = {darts.format_arch(a) for a in archs.tolist()}
    for arch in archs[:2000].tolist():
        assert darts.parse_arch(darts.format_arch(arch)) == tuple(arch)
    assert len(texts) == torch.unique(archs, dim=0).shape[0]


def test_sampling_with_repeated_inputs_is_seeded_canonical_and_uniform():
    archs = sample_repeated(20000)
    assert torch.equal(archs, sample_repeated(20000)) and not torch.equal(archs, sample_repeated(20000, seed=1))
    assert darts.valid_mask(archs).float().mean() > 0.99  # canonical; a few degenerate (`none`) cells
    # Normal node 2: 2 inputs x 8 ops = 16 (input, op) choices, C(17, 2) = 136 unordered pairs, ~147 draws each.
    p = darts.position(0, 0, 0)
    item = lambda slot: archs[:, p + 2 * slot] * 8 + archs[:, p + 2 * slot + 1]
    counts = torch.bincount(item(0) * 16 + item(1), minlength=256)
    assert int((counts > 0).sum()) == math.comb(17, 2)
    assert counts[counts > 0].min() > 90 and counts.max() < 210
    repeated = archs[:, darts.INPUT_POSITIONS].view(-1, 8, 2)
    same = (repeated[..., 0] == repeated[..., 1]).float().mean(0)
    # Node i: (i+2) inputs; the share of its pairs that repeat an input is (i+2)·C(9, 2) / C(8(i+2) + 1, 2).
    want = torch.tensor([(m * math.comb(9, 2)) / math.comb(8 * m + 1, 2) for m in (2, 3, 4, 5)] * 2)
    assert (same - want).abs().max() < 0.02
    # The default draw is DARTS's (distinct inputs), unchanged: the same seed gives the same cells.
    assert torch.equal(darts.sample_archs(500, torch.Generator().manual_seed(4)),
                       darts.sample_archs(500, torch.Generator().manual_seed(4), distinct_inputs=True))
    without_none = sample_repeated(2000, with_none=False)
    assert darts.valid_mask(without_none).all() and not (darts.op_choices(without_none) == NONE).any()


def test_num_archs_counts_the_canonical_cells():
    assert darts.num_archs() == darts.NUM_ARCHS == darts.SPACE.num_cells()
    assert darts.num_archs(distinct_inputs=False) == math.prod(math.comb(8 * m + 1, 2) for m in (2, 3, 4, 5)) ** 2
    assert darts.num_archs(True, with_none=False) == math.prod(math.comb(m, 2) * 49 for m in (2, 3, 4, 5)) ** 2
    space = darts.SPACE.configured(distinct_inputs=False)
    assert space.num_cells() == darts.num_archs(False) and not space.distinct_inputs
    assert darts.SPACE.configured() is darts.SPACE and darts.SPACE.configured(distinct_inputs=True) is darts.SPACE


def test_space_option_decides_what_is_sampled():
    g = lambda: torch.Generator().manual_seed(2)
    default = darts.SPACE.sample_tensor(2000, g())
    assert torch.equal(default, darts.sample_archs(2000, g()))
    assert darts.valid_mask(default, distinct_inputs=True).float().mean() > 0.95  # never a repeat
    space = darts.SPACE.configured(distinct_inputs=False)
    drawn = space.sample_tensor(2000, g())
    assert torch.equal(drawn, darts.sample_archs(2000, g(), distinct_inputs=False))
    inputs = drawn[:, darts.INPUT_POSITIONS].view(-1, 8, 2)
    assert (inputs[..., 0] == inputs[..., 1]).any(dim=1).float().mean() > 0.5
    searched = space.sample_tensor(500, g(), valid=True)  # the genotypes a search returns: no `none`
    assert space.valid_mask(searched).all() and not (darts.op_choices(searched) == NONE).any()


def _best_pairs(probs, distinct):
    """Brute force: per (cell, node) the input pair of highest joint probability, each slot's best op."""
    out = []
    for cell in range(2):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            m = darts.NUM_INPUTS + node
            _, i, j = max(((probs[p0, i] * probs[p1, j]).item(), i, j) for i in range(m) for j in range(m) if i != j or not distinct)
            out.append(sorted([(i, int(probs[p0 + 1].argmax())), (j, int(probs[p1 + 1].argmax()))]))
    return out


@pytest.mark.parametrize("distinct", [True, False])
def test_decode_follows_the_option(distinct):
    space = darts.SPACE.configured(distinct_inputs=distinct)
    width = max(darts.CHOICE_SIZES)
    g = torch.Generator().manual_seed(0)
    repeats = 0
    for _ in range(60):
        probs = space.path_probs(3 * torch.randn(darts.NUM_POSITIONS, width, generator=g), 1.0)
        index, rows = space.decode(probs)
        cell = tuple(index.tolist())
        assert darts.is_valid(cell, distinct_inputs=distinct) and darts.parse_arch(darts.format_arch(cell)) == cell
        got = [sorted([tuple(cell[p : p + 2]), tuple(cell[p + 2 : p + 4])]) for p in range(0, darts.NUM_POSITIONS, 4)]
        assert got == _best_pairs(probs, distinct)
        repeats += sum(cell[p] == cell[p + 2] for p in range(0, darts.NUM_POSITIONS, 4))
        for p in range(darts.NUM_POSITIONS):  # each row is a row of P whose choice is the one made from it
            source = [q for q in range(darts.NUM_POSITIONS) if torch.equal(probs[q], rows[p])]
            assert source and p // 4 == source[0] // 4 and p % 2 == source[0] % 2
            if p % 2:
                assert cell[p] == int(rows[p].argmax())
    assert (repeats == 0) == distinct


def test_decode_of_a_repeated_input_orders_the_pairs_by_op_with_their_rows():
    width = max(darts.CHOICE_SIZES)
    logits = torch.full((darts.NUM_POSITIONS, width), -5.0)
    for cell in range(2):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            logits[p0, 1], logits[p1, 1] = 5.0, 5.0  # both slots prefer input 1
            logits[p1, 0] = 4.0  # slot 1's second choice: input 0
            logits[p0 + 1, SEP3], logits[p1 + 1, SKIP] = 5.0, 5.0  # sep_conv_3x3 on slot 0, skip on slot 1
    space = darts.SPACE.configured(distinct_inputs=False)
    probs = space.path_probs(logits, 1.0)
    index, rows = space.decode(probs)
    assert tuple(index[:4].tolist()) == (1, SKIP, 1, SEP3)  # input 1 twice, skip (op 3) first: slot 1's pair
    assert torch.equal(rows[0], probs[2]) and torch.equal(rows[1], probs[3]) and torch.equal(rows[2], probs[0])
    distinct, _ = darts.SPACE.decode(darts.SPACE.path_probs(logits, 1.0))
    assert tuple(distinct[:4].tolist()) == (0, SKIP, 1, SEP3)  # DARTS's space: the best distinct pair


def test_complement_on_repeated_inputs_avoids_every_op_the_previous_path_runs_on_the_edge():
    space = darts.SPACE.configured(distinct_inputs=False)
    g, choice = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
    node_pairs = lambda a: [((p // 4), a[p], a[p + 1]) for p in darts.INPUT_POSITIONS]
    for _ in range(200):
        prev, cur = (tuple(a) for a in darts.sample_archs(2, g, with_none=False, distinct_inputs=False).tolist())
        prev = cur[:16] + prev[16:]  # many shared edges
        comp = space.complement(prev, cur, choice)
        assert torch.equal(darts.canonicalize(torch.tensor(comp)), torch.tensor(comp))
        shared = set(node_pairs(prev))
        assert not shared & set(node_pairs(comp)) and NONE not in comp[1::2]
        for node in range(8):  # inputs kept; the pairs not shared kept
            assert sorted(comp[4 * node : 4 * node + 4 : 2]) == sorted(cur[4 * node : 4 * node + 4 : 2])
        kept = [q for q in node_pairs(cur) if q not in shared]
        assert all(kept.count(q) <= node_pairs(comp).count(q) for q in kept)


def test_graphs_of_a_repeated_input_differ_from_the_distinct_cell_and_ignore_slot_order():
    distinct = darts.parse_arch(V2)
    repeated = list(distinct)
    repeated[darts.position(0, 0, 1)] = 0  # normal node 2: sep_conv_3x3 on input 0 twice instead of 0 and 1
    two_ops = list(distinct)
    two_ops[darts.position(0, 0, 1)], two_ops[darts.position(0, 0, 1) + 1] = 0, SKIP  # (0, sep3), (0, skip)
    swapped = list(two_ops)
    swapped[0:4] = two_ops[2:4] + two_ops[0:2]
    archs = torch.tensor([distinct, repeated, two_ops, swapped])
    graphs = build_graph_set("darts", archs)
    assert graphs.edge_index.shape == (4, 2, 40) and graphs.x.shape == (4, 30, 25)
    assert not torch.equal(graphs.edge_index[0], graphs.edge_index[1])
    hist = wl_histograms(graphs)
    assert torch.unique(hist[:3], dim=0).shape[0] == 3  # a GIN can tell the three apart
    assert torch.equal(graphs.x[2], graphs.x[3]) and torch.equal(graphs.edge_index[2], graphs.edge_index[3])
    # Both op nodes of the repeated input read cell node 0 (no merged or parallel edge: each op is its own node).
    ei = graphs.edge_index[1]
    assert [int(ei[0][ei[1] == op_node]) for op_node in (7, 8)] == [0, 0]


def test_sampled_genotypes_with_repeated_inputs_give_distinct_graphs():
    archs = sample_repeated(1000)
    assert torch.unique(archs, dim=0).shape[0] == 1000
    graphs = build_graph_set("darts", archs)
    assert torch.unique(wl_histograms(graphs), dim=0).shape[0] == 1000


def test_drawing_a_repeated_input():
    from e2nas.spaces.darts.drawing import draw_genotype

    fig = darts.SPACE.draw(REPEATED, title="repeated")
    cells = [child for ax in fig.axes for child in ax.child_axes]  # the two cells, insets of the axes
    normal = [t.get_text() for t in cells[0].texts]
    assert len(cells) == 2 and len(cells[0].patches) == 7 + 8  # 7 boxes, an arc per (input, op) pair
    assert normal.count("sep3") == 5 and normal.count("skip") == 2
    assert draw_genotype(darts.parse_arch(REPEATED)).axes

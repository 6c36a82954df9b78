"""Stage 4 in the DARTS space: decoding, complementation, GDAS's per-edge sample, every method end to end.

Tiny sizes (C=4, 3 cells, 8x8 images). The decoder tests are built to fail on shortcuts: a
decoded path that repeats an input, decodes `none`, or whose straight-through rows are not
those of the slot that chose; an input choice that gets no gradient.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas import spaces
from e2nas.search import Harness, SearchConfig
from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search.e2nas import E2NAS
from e2nas.search.harness import straight_through
from e2nas.spaces import darts
from e2nas.spaces.darts.supernet import NUM_EDGES, DartsSuperNet, edge_index

torch.set_num_threads(1)

SPACE = spaces.get("darts")
LATENT = 4
WIDTH = max(darts.CHOICE_SIZES)


class LinearDecoder(nn.Module):
    """logits(z) = W z, (B, d) -> (B, 32, 8), invalid options masked as the VGAE's decoder does."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.lin = nn.Linear(LATENT, darts.NUM_POSITIONS * WIDTH, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(self.lin.weight.shape, generator=torch.Generator().manual_seed(seed)))
        self.register_buffer("valid", torch.arange(WIDTH).unsqueeze(0) < torch.tensor(darts.CHOICE_SIZES).unsqueeze(1))

    def decode_logits(self, z):
        return self.lin(z).view(-1, darts.NUM_POSITIONS, WIDTH).masked_fill(~self.valid, -1e9)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return DartsSuperNet(C=4, layers=3, num_classes=10, in_channels=1)


def images(n, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(10, (n,), generator=g)


def tiny_cfg(**kw):
    base = dict(epochs=2, batch_size=8, archive_size=4, rsps_num_candidates=3, rsps_eval_images=16, eval_batch_size=16)
    return SearchConfig(**{**base, **kw})


def harness(net=None, seed=0, space="darts", **cfg):
    return Harness(tiny_net() if net is None else net, tiny_cfg(**cfg), "cpu", seed, *images(16, seed=99), space=space)


# ---------------------------------------------------------------- decoding


def best_pairs(probs):
    """Brute force: per (cell, node) the distinct input pair of highest joint probability, each slot's best op."""
    out = []
    for cell in range(2):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            m = darts.NUM_INPUTS + node
            _, i, j = max(((probs[p0, i] * probs[p1, j]).item(), i, j) for i in range(m) for j in range(m) if i != j)
            out.append(sorted([(i, int(probs[p0 + 1].argmax())), (j, int(probs[p1 + 1].argmax()))]))
    return out


def test_decode_is_the_best_valid_canonical_path_and_its_rows_follow_the_slots():
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        probs = SPACE.path_probs(3 * torch.randn(darts.NUM_POSITIONS, WIDTH, generator=g), 1.0)
        assert float(probs[list(darts.OP_POSITIONS), darts.NONE].max()) == 0.0  # `none` is never a choice
        index, rows = SPACE.decode(probs)
        cell = tuple(index.tolist())
        assert darts.is_valid(cell) and darts.parse_arch(darts.format_arch(cell)) == cell
        got = [sorted([tuple(cell[p : p + 2]), tuple(cell[p + 2 : p + 4])]) for p in range(0, darts.NUM_POSITIONS, 4)]
        assert got == best_pairs(probs)
        # Each aligned row is a row of P whose choice is the one made from it.
        for p in range(darts.NUM_POSITIONS):
            source = [q for q in range(darts.NUM_POSITIONS) if torch.equal(probs[q], rows[p])]
            assert source and (p // 4 == source[0] // 4) and (p % 2 == source[0] % 2)
            if p % 2:  # an op position: its choice is that row's argmax
                assert cell[p] == int(rows[p].argmax())


def test_decode_swaps_a_descending_pair_with_its_rows():
    logits = torch.full((darts.NUM_POSITIONS, WIDTH), -5.0)
    for cell in range(2):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            logits[p0, 1], logits[p1, 0] = 5.0, 5.0  # slot 0 prefers input 1, slot 1 input 0
            logits[p0 + 1, 4], logits[p1 + 1, 3] = 5.0, 5.0  # with sep_conv_3x3 and skip_connect
    probs = SPACE.path_probs(logits, 1.0)
    index, rows = SPACE.decode(probs)
    assert tuple(index[:4].tolist()) == (0, 3, 1, 4)  # (input 0, skip), (input 1, sep3): slot 1's pair first
    assert torch.equal(rows[0], probs[2]) and torch.equal(rows[2], probs[0])
    assert torch.equal(rows[1], probs[3]) and torch.equal(rows[3], probs[1])


# ---------------------------------------------------------------- complementation


def test_complement_changes_exactly_the_shared_edges_to_another_real_op():
    g = torch.Generator().manual_seed(1)
    choice = torch.Generator().manual_seed(2)
    changed_to = set()
    for _ in range(300):
        prev, cur = (tuple(a) for a in darts.sample_archs(2, g).tolist())
        if torch.rand(1, generator=g) < 0.5:  # make many edges shared
            prev = cur[:16] + prev[16:]
        comp = SPACE.complement(prev, cur, choice)
        shared = {(p // 4, prev[p - 1], prev[p]) for p in darts.OP_POSITIONS}
        for p in range(darts.NUM_POSITIONS):
            if p % 2 == 0:
                assert comp[p] == cur[p]  # inputs are kept
            elif (p // 4, cur[p - 1], cur[p]) in shared:
                assert comp[p] not in (cur[p], darts.NONE)
                changed_to.add(comp[p])
            else:
                assert comp[p] == cur[p]
    assert changed_to == set(range(1, len(darts.OPS)))  # every real op is reachable


# ---------------------------------------------------------------- GDAS's per-edge sample


def test_edge_forward_value_and_gradient_reach_every_edge_of_both_cell_types():
    net = tiny_net()
    x, y = images(4, seed=3)
    alpha = (1e-3 * torch.randn(2, NUM_EDGES, len(darts.OPS))).requires_grad_()
    probs = alpha.softmax(-1)
    index = torch.randint(1, len(darts.OPS), (2, NUM_EDGES), generator=torch.Generator().manual_seed(4))
    ops = tuple(index.flatten().tolist())
    plain = net(x, ops)
    routed = net(x, ops, straight_through(probs, index))
    torch.testing.assert_close(routed, plain, rtol=0, atol=1e-5)
    F.cross_entropy(routed, y).backward()
    assert (alpha.grad.abs() > 0).all()  # chosen ops through their output, the others through Σ g


def test_edge_forward_runs_every_edge_with_its_op():
    net = tiny_net()
    x, _ = images(2, seed=5)
    ops = [darts.OPS.index("sep_conv_3x3")] * (2 * NUM_EDGES)
    ops[edge_index(3, 4)] = darts.NONE
    net(x, ops).sum().backward()
    normal = net.search_cells("normal")[0]
    for e in range(NUM_EDGES):
        grads = [p.grad for p in normal.edges[e][ops[e]].parameters()] if ops[e] != darts.NONE else []
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
        other = normal.edges[e][darts.OPS.index("dil_conv_5x5")]
        assert all(p.grad is None for p in other.parameters())  # an op no edge chose is not run


# ---------------------------------------------------------------- the methods' steps


def test_e2nas_step_sends_the_validation_gradient_through_the_decoder_to_input_choices():
    h = harness()
    decoder = LinearDecoder()
    method = E2NAS(h, decoder, torch.randn(LATENT, generator=torch.Generator().manual_seed(1)))
    method.start_epoch(0, 2)
    method.eta = 0.0  # validation loss only
    z, _ = method._draw_latent()
    probs = method.path_probs(z[None], method.tau)[0]
    index, rows = h.space.decode(probs)
    cell = tuple(index.tolist())
    probs.retain_grad()
    loss = h.path_loss(*images(8, seed=7), cell, straight_through(rows, index))
    loss.backward()
    grad = probs.grad
    assert grad[list(darts.INPUT_POSITIONS)].abs().sum() > 0 and grad[list(darts.OP_POSITIONS)].abs().sum() > 0
    assert method.mu.grad is not None and method.mu.grad.abs().sum() > 0
    method.step(*images(8, seed=8), *images(8, seed=9))  # a whole step: the gradient that reaches μ is L_val's
    assert method.last["grad_val"].abs().sum() > 0


@pytest.mark.parametrize("cls", [GDAS, DARTS, RSPS])
def test_baseline_steps_move_weights_and_alpha_and_derive_a_darts_genotype(cls):
    net = tiny_net()
    h = harness(net)
    method = cls(h)
    method.start_epoch(0, 2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    alpha = method.alpha.detach().clone() if hasattr(method, "alpha") else None
    method.step(*images(8, seed=8), *images(8, seed=9))
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    if alpha is not None:
        assert alpha.shape == (2, NUM_EDGES, len(darts.OPS)) and not torch.equal(alpha, method.alpha.detach())
    cell, _ = method.epoch_arch()
    assert darts.is_valid(cell) and darts.parse_arch(h.space.format(cell)) == tuple(cell)
    if cls is RSPS:  # candidates are genotypes a search returns: valid, no `none`
        assert all(darts.is_valid(c) and darts.NONE not in c[1::2] for c in method.candidates)
    else:  # derived the DARTS way, never `none`
        assert darts.NONE not in cell[1::2]


def test_search_space_names():
    assert spaces.get("darts").name == "darts" and spaces.get("nb201").name == "nb201"
    with pytest.raises(ValueError, match="config key `space`"):
        spaces.get("nasbench101")


# ---------------------------------------------------------------- run_search end to end


@pytest.fixture(scope="module")
def darts_files(tmp_path_factory):
    from e2nas import spaces
    from e2nas.data import ImageData, make_split
    from e2nas.graphs import build_graph_set
    from e2nas.vgae import VGAEConfig, save_vgae
    from e2nas.vgae.train import build_model
    from e2nas.warmup import WarmupConfig, run_warmup

    root = tmp_path_factory.mktemp("darts-search")
    (x, y), (tx, ty) = images(96, seed=5), images(16, seed=6)
    data = ImageData("toy", 10, 1, 8, x, y, tx, ty, augment=True, pad=1)
    warmup = root / "warmup.pt"
    run_warmup(
        data, make_split(len(y), 0), spaces.get("darts").config("supernet", {"channels": 4, "layers": 3}), WarmupConfig(epochs=1, batch_size=16), 0,
        warmup, root / "w.ckpt", progress=False, space="darts",
    )
    files = {"data": data, "warmup": warmup}
    for space in ("darts", "nb201"):
        archs = spaces.get(space).sample_tensor(16, torch.Generator().manual_seed(0))
        graphs = build_graph_set(space, archs)
        graphs.save(root / f"{space}-graphs.pt")
        vcfg = VGAEConfig(latent_dim=LATENT, hidden_dim=8, num_layers=2, decoder_layers=1, readout="concat")
        save_vgae(build_model(graphs, vcfg, torch.device("cpu")), vcfg, space, root / f"{space}.pt")
        files[space] = root / f"{space}.pt"
        files[f"{space}-graphs"] = root / f"{space}-graphs.pt"
    return files


def search(files, method, out, **kw):
    from e2nas.search import run_search

    e2nas = method.startswith("e2nas")
    return run_search(method, files["data"], files["warmup"], files["darts"] if e2nas else None, tiny_cfg(batch_size=16, **kw),
                      0, out / "result.json", out / "search.ckpt", progress=False,
                      graphs_path=files["darts-graphs"] if e2nas else None)


def test_e2nas_decodes_under_the_graphs_option(darts_files, tmp_path):
    """graphs.distinct_inputs=False: the latent space holds cells that read one input twice, and E2NAS
    decodes (and starts, and complements) in the configured space the stage resolved; graphs drawn
    under other options than the search's space are refused, naming the fix."""
    from e2nas.graphs import GraphSet, build_graph_set

    default = GraphSet.load(darts_files["darts-graphs"])
    repeats_space = darts.SPACE.configured(distinct_inputs=False)
    build_graph_set(repeats_space, default.archs).save(tmp_path / "repeats.pt")
    for path, space in ((darts_files["darts-graphs"], darts.SPACE), (tmp_path / "repeats.pt", repeats_space)):
        h = harness(space=space)
        method = E2NAS.build("e2nas", h, {"vgae": darts_files["darts"], "graphs": path})
        assert method.harness.space is space and h.space.distinct_inputs is space.distinct_inputs
    with pytest.raises(ValueError, match="rerun stage 1"):
        E2NAS.build("e2nas", harness(), {"vgae": darts_files["darts"], "graphs": tmp_path / "repeats.pt"})


def test_warmup_file_records_the_darts_supernet(darts_files):
    from e2nas.warmup import load_warmup

    net, meta = load_warmup(darts_files["warmup"])
    assert isinstance(net, DartsSuperNet) and meta["space"] == "darts" and len(net.cells) == 3


@pytest.mark.parametrize("method", ["e2nas", "e2nas-paper", "gdas", "darts", "rsps"])
def test_every_method_searches_the_darts_space(darts_files, tmp_path, method):
    result = search(darts_files, method, tmp_path)
    assert result["space"] == "darts" and result["nb201"] is None
    cell = darts.parse_arch(result["arch"])
    assert darts.is_valid(cell)
    assert all(darts.is_valid(darts.parse_arch(r["arch"])) for r in result["trajectory"])
    assert json.loads((tmp_path / "result.json").read_text())["arch"] == result["arch"]
    if method.startswith("e2nas"):
        assert darts.is_valid(darts.parse_arch(result["start_arch"]))
        complement = result["trajectory"][0]["complement_same_fraction"]
        # The paper's step complements; the default's frozen weight half trains nothing, so has nothing to complement.
        assert 0.0 <= complement <= 1.0 if method == "e2nas-paper" else complement is None
        first = result["trajectory"][0]
        assert 0 <= first["sampled_decoded_fraction"] <= 1 and first["mu_nearest_distance"] >= 0
        assert 0 < first["decoder_confidence"] <= 1 and first["decoder_jacobian"] >= 0 and first["distinct_cells"] >= 1
    elif method in ("gdas", "darts"):
        assert 0 < result["trajectory"][0]["alpha_entropy"] <= torch.log(torch.tensor(8.0)).item() + 1e-6


def test_e2nas_darts_search_is_deterministic(darts_files, tmp_path):
    first, again = search(darts_files, "e2nas", tmp_path / "a"), search(darts_files, "e2nas", tmp_path / "b")
    strip = lambda r: [{k: v for k, v in t.items() if k != "seconds"} for t in r["trajectory"]]
    assert strip(first) == strip(again)


def test_a_vgae_of_the_other_space_is_refused_by_name(darts_files, tmp_path):
    files = {**darts_files, "darts": darts_files["nb201"]}
    with pytest.raises(ValueError, match="trained on the 'nb201' space.*'darts'"):
        search(files, "e2nas", tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on a CUDA device")
@pytest.mark.parametrize("name,want", [("e2nas", 1), ("gdas", 1), ("darts", 0), ("rsps", 0)])
def test_a_darts_space_step_syncs_with_the_host_at_most_once(name, want):
    """E2NAS copies the step's path to the host, GDAS both halves' draws in one transfer; nothing else waits."""
    from conftest import host_syncs_of_a_step

    device = torch.device("cuda")
    x, y = (t.to(device) for t in images(16, seed=1))
    h = Harness(tiny_net().to(device), tiny_cfg(), device, 0, x, y, space="darts")
    if name == "e2nas":
        method = E2NAS(h, LinearDecoder().to(device), torch.zeros(LATENT, device=device))
    else:
        method = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}[name](h)
    syncs = host_syncs_of_a_step(method, x, y)
    assert len(syncs) == want, syncs

"""The DARTS-space supernet: single path (plain and GDAS form), DARTS mixture, derivation, BN, size."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.spaces import darts
from e2nas.spaces.darts import CHOICE_SIZES, NONE, NUM_NODES, NUM_POSITIONS, OPS, SLOTS
from e2nas.spaces.darts.ops import FactorizedReduce
from e2nas.spaces.darts.supernet import (
    NUM_EDGES,
    DartsSuperNet,
    derive_genotype,
    edge_index,
)

torch.set_num_threads(1)

V2 = darts.parse_arch(darts.DARTS_V2)
SEP3 = OPS.index("sep_conv_3x3")


def with_ops(arch, changes):
    """`arch` with the op of (cell, node, slot) set, for each ((cell, node, slot), op) in changes."""
    arch = list(arch)
    for (cell, node, slot), op in changes.items():
        arch[darts.position(cell, node, slot) + 1] = op
    return tuple(arch)


# Normal node 3 fed only by `none` (a zero node), one `none` slot in the reduce cell.
WITH_NONE = with_ops(V2, {(0, 1, 0): NONE, (0, 1, 1): NONE, (1, 2, 1): NONE})
# A decoded cell may repeat an input (node 2 of the normal cell takes input 1 twice, same op).
REPEATED = tuple(1 if p == darts.position(0, 0, 0) else a for p, a in enumerate(V2))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DartsSuperNet(C=4, layers=5, num_classes=5, in_channels=3)


def images(n=2, size=16, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def straight_through(arch, seed):
    """(logits, h): decoder-style masked logits (32, 8) and h = onehot(arch) − sg(P) + P."""
    logits = torch.randn(NUM_POSITIONS, 8, generator=torch.Generator().manual_seed(seed))
    valid = torch.arange(8).unsqueeze(0) < torch.tensor(CHOICE_SIZES).unsqueeze(1)
    logits = logits.masked_fill(~valid, -1e4).requires_grad_()
    probs = logits.softmax(-1)
    h = F.one_hot(torch.tensor(arch), 8).float() - probs.detach() + probs
    return logits, h


def test_layout(net):
    assert [c.reduction for c in net.cells] == [False, True, False, True, False]
    assert isinstance(net.cells[2].preprocess0, FactorizedReduce)
    assert all(len(c.edges) == NUM_EDGES == 14 and all(len(e) == len(OPS) for e in c.edges) for c in net.cells)
    # Reduction cells stride only the edges from the two cell inputs.
    reduce = net.cells[1]
    assert reduce.edges[edge_index(0, 1)][OPS.index("max_pool_3x3")][0].stride == 2
    assert reduce.edges[edge_index(1, 2)][OPS.index("max_pool_3x3")][0].stride == 1
    assert net.classifier.in_features == 4 * 16
    assert net(images(), V2).shape == (2, 5)
    assert net.forward_mixture(images(), torch.rand(14, 8), torch.rand(14, 8)).shape == (2, 5)
    # Odd maps (28 → 14 → 7) and one input channel.
    assert DartsSuperNet(C=4, layers=3, num_classes=10, in_channels=1)(torch.randn(2, 1, 28, 28), V2).shape == (2, 10)


def test_single_path_runs_only_the_chosen_ops(net):
    calls = Counter()
    hooks = [
        op.register_forward_hook(lambda m, i, o, key=(ci, e, k): calls.update([key]))
        for ci, cell in enumerate(net.cells)
        for e, ops in enumerate(cell.edges)
        for k, op in enumerate(ops)
    ]
    try:
        for arch in (V2, WITH_NONE, REPEATED):
            calls.clear()
            net(images(), arch)
            expected = Counter()
            for ci, cell in enumerate(net.cells):
                t = int(cell.reduction)
                for node in range(NUM_NODES):
                    for slot in range(SLOTS):
                        src, op = arch[darts.position(t, node, slot)], arch[darts.position(t, node, slot) + 1]
                        if op != NONE:
                            expected[(ci, edge_index(node, src), op)] += 1
            assert calls == expected, arch
    finally:
        for h in hooks:
            h.remove()


def test_straight_through_keeps_the_value_and_reaches_every_h(net):
    x, y = images(), torch.tensor([0, 3])
    for arch, seed in ((V2, 3), (WITH_NONE, 4)):
        logits, h = straight_through(arch, seed)
        h.retain_grad()
        out = net(x, arch, h)
        torch.testing.assert_close(out, net(x, arch), rtol=1e-5, atol=1e-6)
        F.cross_entropy(out, y).backward()
        # The list form (each position's own options) is the same forward.
        h_list = [h.detach()[p, :size].clone().requires_grad_() for p, size in enumerate(CHOICE_SIZES)]
        F.cross_entropy(net(x, arch, h_list), y).backward()
        for p, size in enumerate(CHOICE_SIZES):
            torch.testing.assert_close(h_list[p].grad, h.grad[p, :size])
            assert (h.grad[p, size:] == 0).all()  # padding is ignored
        for t in range(2):
            for node in range(NUM_NODES):
                for slot in range(SLOTS):
                    pin = darts.position(t, node, slot)
                    pop, j, o = pin + 1, arch[pin], arch[pin + 1]
                    others_in = [h.grad[pin, k] for k in range(CHOICE_SIZES[pin]) if k != j]
                    others_op = [h.grad[pop, k] for k in range(8) if k != o]
                    # Every unchosen input and op of a slot gets the same ⟨g, 1⟩ of its node, non-zero.
                    assert all(g != 0 for g in others_in + others_op)
                    torch.testing.assert_close(torch.stack(others_in + others_op), others_op[0].expand(len(others_in) + 7))
                    if o == NONE:  # nothing ran: the chosen pair's h has zero gradient
                        assert h.grad[pin, j] == 0 and h.grad[pop, o] == 0
                    else:  # both get ⟨g, op_o(x_j)⟩ (times the other h, 1 in value)
                        torch.testing.assert_close(h.grad[pin, j], h.grad[pop, o], rtol=1e-4, atol=1e-7)
        valid = torch.arange(8) < torch.tensor(CHOICE_SIZES).unsqueeze(1)
        assert (logits.grad[valid] != 0).all() and torch.isfinite(logits.grad).all()


def test_path_gradient_reaches_only_the_path(net):
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(images(), V2), torch.tensor([1, 2])).backward()
    for t in range(2):
        chosen = {
            (node, V2[darts.position(t, node, slot)], V2[darts.position(t, node, slot) + 1])
            for node in range(NUM_NODES)
            for slot in range(SLOTS)
        }
        for node in range(NUM_NODES):
            for src in range(2 + node):
                for op in range(len(OPS)):
                    grads = [p.grad for p in net.op_parameters(t, node, src, op)]
                    if (node, src, op) in chosen:
                        assert all(g is not None and g.abs().sum() > 0 for g in grads)
                    else:
                        assert all(g is None for g in grads)
    net.zero_grad(set_to_none=True)


def path_probs(arch, cell):
    """(14, 8) probabilities: one-hot on the cell's chosen edges, zero on every other edge."""
    probs = torch.zeros(NUM_EDGES, len(OPS))
    for node in range(NUM_NODES):
        for slot in range(SLOTS):
            pin = darts.position(cell, node, slot)
            probs[edge_index(node, arch[pin]), arch[pin + 1]] = 1.0
    return probs


def test_mixture_of_the_paths_probs_is_the_single_path(net):
    x = images()
    for arch in (V2, WITH_NONE):
        torch.testing.assert_close(net.forward_mixture(x, path_probs(arch, 0), path_probs(arch, 1)), net(x, arch), rtol=0, atol=1e-6)


def test_mixture_gradient_reaches_every_op_but_none(net):
    alphas = [torch.zeros(NUM_EDGES, len(OPS), requires_grad=True) for _ in range(2)]
    loss = F.cross_entropy(net.forward_mixture(images(), *(a.softmax(-1) for a in alphas)), torch.tensor([0, 1]))
    loss.backward()
    for a in alphas:
        assert (a.grad != 0).all()  # through the softmax every logit moves, `none`'s too
    net.zero_grad(set_to_none=True)


def probs_for(arch, seed):
    """Softmax-like edge probabilities from which DARTS derives `arch`: `none` leads every row,
    the chosen edges' ops come next, and within a node the later input is the stronger edge."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for cell in range(2):
        probs = torch.rand(NUM_EDGES, len(OPS), generator=g) * 0.05
        probs[:, NONE] = 0.6
        for node in range(NUM_NODES):
            for slot in range(SLOTS):
                pin = darts.position(cell, node, slot)
                probs[edge_index(node, arch[pin]), arch[pin + 1]] = 0.2 + 0.1 * slot
        out.append(probs / probs.sum(-1, keepdim=True))
    return out


def test_derive_genotype_round_trips_darts_v2_and_samples():
    assert DartsSuperNet.derive_genotype(*probs_for(V2, 0)) == V2
    assert darts.format_arch(derive_genotype(*probs_for(V2, 1))) == darts.format_arch(V2)
    samples = darts.sample_archs(20, torch.Generator().manual_seed(5))
    ops = samples[:, 1::2]
    samples[:, 1::2] = torch.where(ops == NONE, SEP3, ops)  # a DARTS derivation never picks `none`
    for i, arch in enumerate(samples.tolist()):
        assert derive_genotype(*probs_for(arch, i)) == tuple(arch)


def test_derive_genotype_follows_darts_rule_on_a_hand_case():
    probs = torch.full((NUM_EDGES, len(OPS)), 0.01)
    reduce = probs.clone()
    # Node 1 of the normal cell: input 2's best non-none op (0.5) beats input 0's (0.4) and input 1's
    # (0.3, though its `none` is 0.9): edges 2 and 0, with ops dil_conv_5x5 and avg_pool_3x3.
    probs[edge_index(1, 2), OPS.index("dil_conv_5x5")] = 0.5
    probs[edge_index(1, 0), OPS.index("avg_pool_3x3")] = 0.4
    probs[edge_index(1, 1), OPS.index("sep_conv_5x5")] = 0.3
    probs[edge_index(1, 1), NONE] = 0.9
    arch = derive_genotype(probs, reduce)
    node1 = arch[darts.position(0, 1, 0) : darts.position(0, 1, 0) + 4]
    assert node1 == (0, OPS.index("avg_pool_3x3"), 2, OPS.index("dil_conv_5x5"))
    # All ties elsewhere: the first two inputs, the first non-none op (max_pool_3x3).
    assert arch[:4] == (0, 1, 1, 1)
    with pytest.raises(ValueError):
        derive_genotype(probs[:10], reduce)


def test_search_batchnorm_has_no_running_stats_and_cells_no_affine(net):
    cell_bns = [m for c in net.cells for m in c.modules() if isinstance(m, nn.BatchNorm2d)]
    # Per cell 2 preprocessing BNs; per edge 2 after pools, 4 in the sep convs, 2 in the dil convs,
    # and 1 in the skip's FactorizedReduce on the 8 strided edges of a reduction cell.
    assert len(cell_bns) == 3 * (2 + 14 * 8) + 2 * (2 + 14 * 8 + 8)
    for bn in cell_bns:
        assert not bn.affine and not bn.track_running_stats and bn.running_mean is None
    assert net.stem[1].affine and not net.stem[1].track_running_stats
    x = images()
    net.train()
    train_out = net(x, V2)
    net.eval()
    torch.testing.assert_close(net(x, V2), train_out)
    net.train()
    assert not [n for n, _ in net.named_buffers() if "running" in n]


def darts_search_params(C, layers, num_classes, in_channels=3):
    """DARTS's model_search.Network parameter count, in closed form (BN in cells has no affine)."""

    def mixed(c):  # sep 3x3, sep 5x5 (two depthwise + pointwise each), dil 3x3, dil 5x5; pools and skip: none
        return 2 * (9 * c + c * c) + 2 * (25 * c + c * c) + (9 * c + c * c) + (25 * c + c * c)

    stem = 3 * C
    total = in_channels * stem * 9 + 2 * stem  # stem conv + affine BN
    c_pp, c_p, c = stem, stem, C
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        c = 2 * c if reduction else c
        total += (c_pp + c_p) * c  # preprocessing: ReLUConvBN or FactorizedReduce, both c_in·c
        total += 14 * mixed(c) + (8 * c * c if reduction else 0)  # 8 strided skips are FactorizedReduce
        c_pp, c_p = c_p, 4 * c
    return total + c_p * num_classes + num_classes


def test_parameter_count_is_darts_search_models():
    net = DartsSuperNet(C=16, layers=8, num_classes=10, in_channels=3)
    params = sum(p.numel() for p in net.parameters())
    assert params == darts_search_params(16, 8, 10) == 1_930_618  # DARTS logs "param size = 1.930618MB"
    # One op, closed form: sep_conv_3x3 on edge 0 → node 2 of the normal cells (C = 4, 8, 16 at layers=5).
    small = DartsSuperNet(C=4, layers=5, num_classes=5)
    assert sum(p.numel() for p in small.op_parameters("normal", 0, 0, SEP3)) == sum(2 * (9 * c + c * c) for c in (4, 8, 16))
    assert small.op_parameters(0, 1, 2, OPS.index("max_pool_3x3")) == []


def test_bad_inputs():
    net = DartsSuperNet(C=4, layers=3, num_classes=2)
    with pytest.raises(ValueError):
        net(images(), V2[:-1])
    with pytest.raises(ValueError):
        net(images(), (5,) + V2[1:])  # node 2 has only inputs 0, 1
    with pytest.raises(ValueError):
        net(images(), V2, torch.zeros(32, 5))
    with pytest.raises(ValueError):
        net.forward_mixture(images(), torch.zeros(14, 8), torch.zeros(13, 8))
    with pytest.raises(ValueError):
        DartsSuperNet(C=4, layers=3, num_classes=2, steps=5)

"""The NB201 supernet (single path, GDAS form, DARTS mixture), the fixed-cell net, params and FLOPs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.layers import count_flops, count_params
from e2nas.spaces.nb201 import NUM_EDGES, OPS, FixedNet, SuperNet, format_arch
from e2nas.spaces.nb201.supernet import SearchCell

torch.set_num_threads(1)

NONE, SKIP, C1, C3, POOL = range(5)
CELL = (C3, C1, POOL, SKIP, C3, C1)  # every op kind but none
CELL_WITH_NONE = (C3, NONE, POOL, NONE, NONE, C1)


@pytest.fixture
def net():
    torch.manual_seed(0)
    return SuperNet(C=4, N=2, num_classes=5, in_channels=3)


def images(n=6, c=3, size=8, seed=1):
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def straight_through(logits, cell):
    probs = logits.softmax(-1)
    return F.one_hot(torch.tensor(cell), len(OPS)).float() - probs.detach() + probs


def test_skeleton_shape(net):
    assert net(images(), CELL).shape == (6, 5)
    assert len(net.search_cells()) == 3 * 2
    # Stage channels C, 2C, 4C; reduction blocks halve the resolution twice.
    feats = []
    net.cells[-1].register_forward_hook(lambda m, i, o: feats.append(o))
    net(images(size=8), CELL)
    assert feats[0].shape == (6, 16, 2, 2)


def test_single_path_runs_only_the_chosen_ops(net):
    calls = {}
    for ci, cell in enumerate(net.search_cells()):
        for e, ops in enumerate(cell.edges):
            for k, op in enumerate(ops):
                op.register_forward_hook(lambda m, i, o, key=(ci, e, k): calls.__setitem__(key, calls.get(key, 0) + 1))
    for cell in (CELL, CELL_WITH_NONE):
        calls.clear()
        net(images(), cell)
        expected = {(ci, e, cell[e]): 1 for ci in range(6) for e in range(NUM_EDGES) if cell[e] != NONE}
        assert calls == expected


def test_straight_through_weights_keep_the_value_and_carry_gradient(net):
    x, y = images(), torch.tensor([0, 1, 2, 3, 4, 0])
    for cell in (CELL, CELL_WITH_NONE):
        logits = torch.randn(NUM_EDGES, len(OPS), generator=torch.Generator().manual_seed(3), requires_grad=True)
        h = straight_through(logits, cell)
        h.retain_grad()
        out = net(x, cell, h)
        torch.testing.assert_close(out, net(x, cell), rtol=1e-5, atol=1e-6)
        F.cross_entropy(out, y).backward()
        for e in range(NUM_EDGES):
            for k in range(len(OPS)):
                if k != cell[e]:
                    assert h.grad[e, k] != 0, (cell, e, k)
        assert (logits.grad != 0).all()


def test_path_gradient_reaches_only_the_path(net):
    F.cross_entropy(net(images(), CELL), torch.zeros(6, dtype=torch.long)).backward()
    for e in range(NUM_EDGES):
        for k in (C1, C3):
            grads = [p.grad for p in net.op_parameters(e, k)]
            if k == CELL[e]:
                assert all(g is not None and g.abs().sum() > 0 for g in grads)
            else:
                assert all(g is None for g in grads)


def test_op_parameters():
    net = SuperNet(C=4, N=2, num_classes=5, in_channels=3)
    for e in range(NUM_EDGES):
        for k in (NONE, SKIP, POOL):
            assert net.op_parameters(e, k) == []
        # One conv weight per search cell; cell BatchNorm has no parameters.
        assert [tuple(p.shape) for p in net.op_parameters(e, C3)][:2] == [(4, 4, 3, 3)] * 2
        assert len(net.op_parameters(e, C1)) == 6
        assert sum(p.numel() for p in net.op_parameters(e, C1)) == 2 * (16 + 64 + 256)


def test_search_cell_batchnorm_has_no_running_stats_or_affine(net):
    bns = [m for cell in net.search_cells() for m in cell.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 * NUM_EDGES * 2
    for bn in bns:
        assert not bn.affine and not bn.track_running_stats
        assert bn.running_mean is None and bn.weight is None
    # Batch statistics also in eval mode: the output does not depend on the mode.
    x = images()
    train_out = net(x, CELL)
    net.eval()
    torch.testing.assert_close(net(x, CELL), train_out)
    assert not any(isinstance(b, torch.Tensor) and b.numel() > 0 for n, b in net.named_buffers() if "running" in n)


def test_mixture_of_one_hot_probs_is_the_single_path(net):
    x = images()
    for cell in (CELL, CELL_WITH_NONE):
        probs = F.one_hot(torch.tensor(cell), len(OPS)).float()
        torch.testing.assert_close(net.forward_mixture(x, probs), net(x, cell))


def test_mixture_gradient_reaches_every_op_and_probability(net):
    alpha = torch.zeros(NUM_EDGES, len(OPS), requires_grad=True)
    F.cross_entropy(net.forward_mixture(images(), alpha.softmax(-1)), torch.zeros(6, dtype=torch.long)).backward()
    assert (alpha.grad != 0).all()
    for e in range(NUM_EDGES):
        for k in (C1, C3):
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.op_parameters(e, k))


def test_empty_cell_outputs_zeros():
    cell = SearchCell(4)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(cell(x, (NONE,) * 6), torch.zeros_like(x))
    h = straight_through(torch.zeros(6, 5, requires_grad=True), (NONE,) * 6)
    assert torch.equal(cell(x, (NONE,) * 6, h), torch.zeros_like(x))


def test_fixed_net_drops_none_and_uses_running_stats():
    net = FixedNet(format_arch(CELL_WITH_NONE), C=4, N=1, num_classes=5, in_channels=3)
    first = net.cells[0]
    assert len(first.layers) == 3 and first.links == [(1, 0), (2, 1), (3, 2)]
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        assert bn.affine and bn.track_running_stats
    assert net(images()).shape == (6, 5)
    with pytest.raises(ValueError, match="unknown op"):
        FixedNet("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", 4, 1, 5, 3)


# ---------------------------------------------------------------- params and FLOPs, by hand


def conv(c_in, c_out, k):
    return k * k * c_in * c_out  # multiply-accumulates per output pixel = weights (no bias)


def hand_count(cell_op, C, N, num_classes, in_channels, size):
    """(params, FLOPs) of the NB201 skeleton from its layer shapes; FLOPs = 2 per conv/linear MAC."""
    per_cell_w = {"nor_conv_3x3": conv(C, C, 3), "none": 0}[cell_op]  # per edge, at C channels
    per_cell_bn = {"nor_conv_3x3": 2, "none": 0}[cell_op]  # affine BN: 2 params per channel
    params = conv(in_channels, C, 3) + 2 * C
    macs = conv(in_channels, C, 3) * size * size
    c, s = C, size
    for stage in range(3):
        if stage:  # reduction block c -> 2c: conv_a (stride 2), conv_b, 1x1 shortcut; BN after conv_a/b
            s //= 2
            block = conv(c, 2 * c, 3) + conv(2 * c, 2 * c, 3) + conv(c, 2 * c, 1)
            params += block + 2 * (2 * 2 * c)
            macs += block * s * s
            c *= 2
        scale = (c // C) ** 2  # edge conv weights grow with the square of the channels
        params += N * 6 * (per_cell_w * scale + per_cell_bn * c)
        macs += N * 6 * per_cell_w * scale * s * s
    params += 2 * c + c * num_classes + num_classes  # last BN, classifier
    macs += c * num_classes
    return params, 2 * macs


@pytest.mark.parametrize("op", ["nor_conv_3x3", "none"])
@pytest.mark.parametrize("C,N,in_channels,size,classes", [(4, 1, 1, 28, 10), (6, 2, 3, 16, 7)])
def test_params_and_flops_match_a_hand_count(op, C, N, in_channels, size, classes):
    arch = f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"
    net = FixedNet(arch, C, N, classes, in_channels)
    params, flops = hand_count(op, C, N, classes, in_channels, size)
    assert count_params(net) == params
    assert count_flops(net, (in_channels, size, size)) == flops
    assert count_flops(net, (1, in_channels, size, size)) == flops


def test_paper_size_counts_match_nas_bench_201():
    """NB201 lists 0.0733 MB / 7.78 MFLOPs (all none) and 1.5315 MB / 220.12 MFLOPs (all 3x3) on CIFAR-10."""
    none = FixedNet("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 16, 5, 10, 3)
    conv3 = FixedNet("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 16, 5, 10, 3)
    assert round(count_params(none) / 1e6, 4) == 0.0733 and round(count_flops(none, (3, 32, 32)) / 2e6, 2) == 7.78
    assert round(count_params(conv3) / 1e6, 4) == 1.5315 and round(count_flops(conv3, (3, 32, 32)) / 2e6, 2) == 220.12


def test_supernet_flops_follow_the_path():
    net = SuperNet(4, 1, 10, 1)
    assert count_flops(net, (1, 28, 28), (C3,) * 6) > count_flops(net, (1, 28, 28), (SKIP,) * 6)
    assert net.training  # count_flops restores the mode

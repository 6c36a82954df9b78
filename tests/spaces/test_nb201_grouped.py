"""The grouped pass (e2nas.spaces.nb201.grouped) gives what the separate single-path passes give.

Compared in float64 so that equality is tight: the losses, the gradient of Σ c_g L_g and one
whole SGD step of the search harness. A grouped pass with one BatchNorm over all segments
(mixing the paths' batch statistics) or a stem gradient taken from one segment only would
fail these.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.search import Harness, SearchConfig
from e2nas.spaces import nb201
from e2nas.spaces.nb201 import complement_cell
from e2nas.spaces.nb201.grouped import _runs, contiguous_order, grouped_losses, run_module, segment_batch_norm
from e2nas.spaces.nb201.supernet import SuperNet


def net_and_batch(seed=0, batch=6, size=8):
    torch.manual_seed(seed)
    net = SuperNet(3, 1, 5, 1).double()
    x = torch.randn(batch, 1, size, size, dtype=torch.double)
    y = torch.randint(0, 5, (batch,))
    return net, x, y


def complement_triples(n, seed=0):
    """(a_{t−1}, a_t, a_c) as E2NAS builds them, with some edges shared between a_{t−1} and a_t."""
    gen = torch.Generator().manual_seed(seed)
    triples = []
    for _ in range(n):
        prev, cur = (tuple(c) for c in nb201.sample_archs(2, gen).tolist())
        cur = tuple(p if torch.rand(1, generator=gen).item() < 0.5 else c for p, c in zip(prev, cur))
        triples.append([cur, prev, complement_cell(prev, cur, gen)])
    return triples


def separate(net, x, y, cells, coefs):
    net.zero_grad(set_to_none=True)
    losses = []
    for cell, coef in zip(cells, coefs):
        loss = F.cross_entropy(net(x, cell), y)
        (coef * loss).backward()
        losses.append(loss.detach())
    return torch.stack(losses), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


def grouped(net, x, y, cells, coefs):
    net.zero_grad(set_to_none=True)
    losses = grouped_losses(net, x, y, cells)
    sum(c * loss for c, loss in zip(coefs, losses)).backward()
    return losses.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in net.parameters()]


@pytest.mark.parametrize("cells", complement_triples(4) + [[(0, 0, 0, 0, 0, 0), (1, 2, 3, 4, 0, 1)], [(3, 3, 3, 3, 3, 3)] * 2])
def test_losses_and_gradients_equal_separate_passes(cells):
    net, x, y = net_and_batch()
    coefs = [0.5, 0.3, 0.2][: len(cells)]
    want_loss, want_grad = separate(net, x, y, cells, coefs)
    got_loss, got_grad = grouped(net, x, y, cells, coefs)
    torch.testing.assert_close(got_loss, want_loss, rtol=0, atol=1e-12)
    for got, want in zip(got_grad, want_grad):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_losses_come_back_in_the_callers_order():
    net, x, y = net_and_batch(seed=1)
    cells = complement_triples(1, seed=3)[0]
    for perm in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        chosen = [cells[i] for i in perm]
        want = torch.stack([F.cross_entropy(net(x, c), y) for c in chosen])
        torch.testing.assert_close(grouped_losses(net, x, y, chosen), want, rtol=0, atol=1e-12)


def test_channels_last_matches_too():
    net, x, y = net_and_batch(seed=2)
    net = net.float().to(memory_format=torch.channels_last)
    x = x.float().contiguous(memory_format=torch.channels_last)
    cells = complement_triples(1, seed=5)[0]
    want = torch.stack([F.cross_entropy(net(x, c), y) for c in cells])
    torch.testing.assert_close(grouped_losses(net, x, y, cells), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("affine", [False, True])
def test_segment_batch_norm_normalises_each_segment_alone(affine):
    bn = nn.BatchNorm2d(4, affine=affine, track_running_stats=False).double()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.uniform_(-1.0, 1.0)
    x = torch.randn(3 * 5, 4, 6, 6, dtype=torch.double) * torch.tensor([1.0, 3.0, 0.2]).repeat_interleave(5).view(-1, 1, 1, 1).double()
    got = segment_batch_norm(bn, x, 3)
    want = torch.cat([bn(x[i * 5 : (i + 1) * 5]) for i in range(3)])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(bn(x), want)  # one BatchNorm over the stack would differ


def test_complementation_triples_split_every_edge_into_at_most_two_runs():
    for cells in complement_triples(50, seed=7):
        ordered = [cells[g] for g in contiguous_order(cells)]
        assert all(len(_runs([c[e] for c in ordered])) <= 2 for e in range(nb201.NUM_EDGES))


def test_run_module_refuses_a_module_it_cannot_split():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(x)

    with pytest.raises(TypeError, match="Odd"):
        run_module(Odd(), torch.randn(4, 2, 3, 3), 2)


def test_harness_step_is_the_same_grouped_or_separate():
    net, x, y = net_and_batch(seed=4)
    cells = complement_triples(1, seed=9)[0]
    terms = [(cells[0], 0.5), (cells[1], 0.25), (cells[2], 0.25)]
    after = {}
    for mode in (False, True):
        harness = Harness(copy.deepcopy(net), SearchConfig(epochs=2), "cpu", seed=0, space="nb201")
        harness.grouped_paths = mode
        first = harness.train_paths(x, y, terms)
        after[mode] = (first, [p.detach().clone() for p in harness.net.parameters()])
    torch.testing.assert_close(after[True][0], after[False][0], rtol=0, atol=1e-12)
    for got, want in zip(after[True][1], after[False][1]):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert any(not torch.equal(p, q) for p, q in zip(after[True][1], net.parameters()))  # the step moved the weights

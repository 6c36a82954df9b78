"""Several single paths of the NB201 supernet on one batch, in one grouped pass.

E2NAS's weight half needs L(a_t), L(a_{t−1}) and L(a_c) on the same batch. On a GPU a single
path at batch 64 is launch-bound (DESIGN.md, speed notes): three passes cost three times the
kernel launches, while one pass at three times the batch costs little more than one. So the
G cells run together: the batch is repeated into G segments of B images, stacked on dim 0,
and on every edge each distinct op runs once, on the segments whose cell chose it (on every
edge the three cells of complementation use at most two distinct ops).

The result equals G separate `SuperNet.forward(x, cell)` calls, up to rounding:
  * every BatchNorm of the supernet uses batch statistics, so a BatchNorm that sees several
    segments normalises each segment with its own statistics (`segment_batch_norm`) — one
    BatchNorm over the stack would mix the paths' statistics;
  * the stem's input is the same batch for every cell, so it runs once on B images.
The gradient of Σ_g c_g L_g through the grouped pass is the sum of the separate passes'
gradients (tests/test_grouped_paths.py checks both against the separate passes).

Segments that share an op on an edge are sliced as views when they are contiguous; the order
of the cells is chosen to make them so (for complementation's three cells, the one that
shares ops with both others goes in the middle).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.layers import ReLUConvBN
from e2nas.spaces.nb201.cells import EDGES, NUM_NODES
from e2nas.spaces.nb201.ops import ResNetBasicBlock
from e2nas.spaces.nb201.supernet import INCOMING, NONE, SearchCell, SuperNet

Cell = tuple[int, ...]


def segment_batch_norm(bn: nn.BatchNorm2d, x: Tensor, segments: int) -> Tensor:
    """BatchNorm in training form (batch statistics) applied to each of `segments` equal slices of x."""
    if segments == 1:
        return bn(x)
    n, c, h, w = x.shape
    xs = x.view(segments, n // segments, c, h, w)  # splitting dim 0 is a view in any memory format
    var, mean = torch.var_mean(xs, dim=(1, 3, 4), keepdim=True, correction=0)  # biased, as BatchNorm normalises
    y = (xs - mean) * torch.rsqrt(var + bn.eps)
    if bn.affine:
        y = y * bn.weight.view(1, 1, c, 1, 1) + bn.bias.view(1, 1, c, 1, 1)
    return y.view(n, c, h, w)


def run_module(module: nn.Module, x: Tensor, segments: int) -> Tensor:
    """`module(x)` with every BatchNorm inside it per segment; other layers act per image."""
    if segments == 1:
        return module(x)
    if isinstance(module, ReLUConvBN):
        relu, conv, bn = module
        return segment_batch_norm(bn, conv(relu(x)), segments)
    if isinstance(module, ResNetBasicBlock):
        return module.downsample(x) + run_module(module.conv_b, run_module(module.conv_a, x, segments), segments)
    if isinstance(module, nn.BatchNorm2d):
        return segment_batch_norm(module, x, segments)
    if isinstance(module, nn.Sequential):
        for layer in module:
            x = run_module(layer, x, segments)
        return x
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        raise TypeError(f"no per-segment form for {type(module).__name__}, which holds a BatchNorm")
    return module(x)


def _runs(ops: Sequence[int]) -> list[tuple[int, int, int]]:
    """(op, first, end) of each maximal run of equal ops along the segments."""
    runs, start = [], 0
    for g in range(1, len(ops) + 1):
        if g == len(ops) or ops[g] != ops[start]:
            runs.append((ops[start], start, g))
            start = g
    return runs


def contiguous_order(cells: Sequence[Cell]) -> list[int]:
    """An order of the cells that splits every edge into the fewest runs of equal ops."""
    best, best_cost = list(range(len(cells))), None
    for order in itertools.permutations(range(len(cells))):
        cost = sum(len(_runs([cells[g][e] for g in order])) for e in range(len(EDGES)))
        if best_cost is None or cost < best_cost:
            best, best_cost = list(order), cost
    return best


def _edge(cell: SearchCell, e: int, x: Tensor, ops: Sequence[int], batch: int) -> Tensor | None:
    """Edge e on the stacked segments, each segment through its own op; None when all are `none`."""
    if all(a == NONE for a in ops):
        return None
    pieces = []
    for a, first, end in _runs(ops):
        part = x[first * batch : end * batch]
        pieces.append(torch.zeros_like(part) if a == NONE else run_module(cell.edges[e][a], part, end - first))
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def _cell_forward(cell: SearchCell, x: Tensor, cells: Sequence[Cell], batch: int) -> Tensor:
    nodes = [x]
    for to in range(1, NUM_NODES):
        total = None
        for e in INCOMING[to]:
            out = _edge(cell, e, nodes[EDGES[e][1]], [c[e] for c in cells], batch)
            if out is not None:
                total = out if total is None else total + out
        nodes.append(torch.zeros_like(x) if total is None else total)
    return nodes[-1]


def grouped_logits(net: SuperNet, x: Tensor, cells: Sequence[Cell]) -> Tensor:
    """Logits (G, B, classes) of the G single paths `cells` on batch x (B, ...), in one pass."""
    cells = [tuple(int(a) for a in c) for c in cells]
    if not cells:
        raise ValueError("grouped_logits needs at least one cell")
    if len(cells) == 1:
        return net(x, cells[0]).unsqueeze(0)
    order = contiguous_order(cells)
    ordered = [cells[g] for g in order]
    batch, segments = x.shape[0], len(cells)
    h = net.stem(x).repeat(segments, 1, 1, 1)  # the stem sees the same images on every path
    for layer in net.cells:
        h = _cell_forward(layer, h, ordered, batch) if isinstance(layer, SearchCell) else run_module(layer, h, segments)
    h = run_module(net.lastact, h, segments)
    logits = net.classifier(net.global_pooling(h).flatten(1)).view(segments, batch, -1)
    inverse = [order.index(g) for g in range(segments)]
    return logits[inverse] if inverse != list(range(segments)) else logits


def grouped_losses(net: SuperNet, x: Tensor, y: Tensor, cells: Sequence[Cell]) -> Tensor:
    """Cross-entropy of each cell's path on (x, y): a (G,) tensor, from one grouped pass."""
    logits = grouped_logits(net, x, cells)
    g, b, k = logits.shape
    return F.cross_entropy(logits.reshape(g * b, k), y.repeat(g), reduction="none").view(g, b).mean(dim=1)

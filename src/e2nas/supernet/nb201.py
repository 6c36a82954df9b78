"""The NAS-Bench-201 network skeleton: the weight-sharing supernet and the fixed-cell network.

Skeleton (as NAS-Bench-201 builds it): stem conv3x3 + BN → N cells at C channels → residual
reduction block (stride 2) → N cells at 2C → reduction block → N cells at 4C → BN-ReLU →
global average pool → linear classifier.

The supernet's search cell holds every op on every edge and runs either
  * a single path in the GDAS form: only the chosen op a of each edge runs, and the edge
    outputs h_a·op_a(x) + Σ_{k≠a} h_k, where h are straight-through weights built by the
    caller (one-hot in value, the op probabilities' gradient); the h_k for k≠a are zero in
    value, so the output equals the plain path's while ∂L/∂h_k reaches every op's probability;
  * or the DARTS mixture Σ_k p_k·op_k(x) of all ops.

BatchNorm in the supernet uses batch statistics also at evaluation (`track_running_stats=False`),
as NAS-Bench-201's weight-sharing searches do in their cells: running statistics shared by all
paths would describe no single path, and would turn supernet accuracies into noise. We extend
this from the cells to the stem, the reduction blocks and the final BN (their inputs depend on
the path too); cell BatchNorms have no affine parameters, the others do. The fixed-cell network
of the final training is an ordinary network: affine BatchNorm with running statistics, and
`none` edges dropped.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from e2nas.spaces.nb201 import EDGES, NUM_EDGES, NUM_NODES, OPS, parse_arch
from e2nas.supernet.ops import ResNetBasicBlock, batch_norm, make_op

NONE = OPS.index("none")
# Edge indices entering each node, in EDGES order.
INCOMING = {to: [e for e, (t, _) in enumerate(EDGES) if t == to] for to in range(1, NUM_NODES)}


def _finish_node(total: Tensor | None, like: Tensor) -> Tensor:
    """A node's value: zeros when no edge feeds it, broadcast to a feature map when only scalars did."""
    if total is None:
        return torch.zeros_like(like)
    if total.dim() == 0:
        return torch.zeros_like(like) + total
    return total


def path_terms(weights: Tensor, arch: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
    """Per edge, (h_a, Σ_{k≠a} h_k) of straight-through weights h (6, 5) for the path `arch`.

    Computed once per forward and shared by every search cell (they share the architecture):
    three small kernels instead of a slice, a concatenation and a sum on every edge of every
    cell, which made the straight-through forward launch-bound on a GPU. Σ_{k≠a} h_k is taken
    as the row sum minus h_a: the same gradient (1 for k ≠ a, 0 for a), and for h one-hot in
    value the row sum is exactly h_a (the others are exact zeros), so the value is exactly 0.
    """
    chosen = torch.stack([weights[e, a] for e, a in enumerate(arch)])
    return list(zip(chosen.unbind(), (weights.sum(dim=1) - chosen).unbind()))


class SearchCell(nn.Module):
    """All 5 ops on each of the 6 edges; BatchNorm without affine parameters or running statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(name, channels, affine=False, track=False) for name in OPS) for _ in range(NUM_EDGES)
        )

    def _edge(self, e: int, x: Tensor, a: int, terms: list[tuple[Tensor, Tensor]] | None) -> Tensor | None:
        if terms is None:
            return None if a == NONE else self.edges[e][a](x)
        # h_a·op_a(x) + Σ_{k≠a} h_k: the sum is zero in value and carries the gradient of the ops that did not run.
        chosen, rest = terms[e]
        if a == NONE:  # op_a(x) is zero: h_a·0 adds nothing, so skip running it
            return rest
        return torch.addcmul(rest, chosen, self.edges[e][a](x))

    def forward(
        self, x: Tensor, arch: Sequence[int], weights: Tensor | None = None, terms: list[tuple[Tensor, Tensor]] | None = None
    ) -> Tensor:
        """The path `arch`; straight-through `weights` (6, 5), or their `path_terms` computed once by the caller."""
        if terms is None and weights is not None:
            terms = path_terms(weights, arch)
        nodes = [x]
        for to in range(1, NUM_NODES):
            total = None
            for e in INCOMING[to]:
                out = self._edge(e, nodes[EDGES[e][1]], arch[e], terms)
                if out is not None:
                    total = out if total is None else total + out
            nodes.append(_finish_node(total, x))
        return nodes[-1]

    def forward_mixture(self, x: Tensor, probs: Tensor) -> Tensor:
        nodes = [x]
        for to in range(1, NUM_NODES):
            total = None
            for e in INCOMING[to]:
                src = nodes[EDGES[e][1]]
                for k, op in enumerate(self.edges[e]):
                    if k == NONE:  # p·0: no value, no gradient
                        continue
                    out = probs[e, k] * op(src)
                    total = out if total is None else total + out
            nodes.append(_finish_node(total, x))
        return nodes[-1]


class FixedCell(nn.Module):
    """One cell's ops as an ordinary module: affine BatchNorm with running statistics, `none` dropped."""

    def __init__(self, channels: int, arch: Sequence[int]):
        super().__init__()
        self.links = [(to, frm) for e, (to, frm) in enumerate(EDGES) if arch[e] != NONE]
        self.layers = nn.ModuleList(
            make_op(OPS[arch[e]], channels, affine=True, track=True) for e in range(NUM_EDGES) if arch[e] != NONE
        )

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]
        for to in range(1, NUM_NODES):
            total = None
            for (t, frm), layer in zip(self.links, self.layers):
                if t == to:
                    out = layer(nodes[frm])
                    total = out if total is None else total + out
            nodes.append(_finish_node(total, x))
        return nodes[-1]


class _Skeleton(nn.Module):
    """Stem, three stages of N cells with reduction blocks between them, and the classifier head."""

    def __init__(
        self,
        C: int,
        N: int,
        num_classes: int,
        in_channels: int,
        make_cell: Callable[[int], nn.Module],
        affine: bool,
        track: bool,
    ):
        super().__init__()
        if C < 1 or N < 1:
            raise ValueError(f"the NB201 skeleton needs channels >= 1 and cells per stage >= 1, got C={C}, N={N}")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), batch_norm(C, affine, track))
        layers, c_prev = [], C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                layers.append(ResNetBasicBlock(c_prev, c, affine, track))
            layers.extend(make_cell(c) for _ in range(N))
            c_prev = c
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(batch_norm(c_prev, affine, track), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def head(self, x: Tensor) -> Tensor:
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))


class SuperNet(_Skeleton):
    """The weight-sharing supernet over NB201 cells (all search cells share one architecture)."""

    def __init__(self, C: int, N: int, num_classes: int, in_channels: int):
        super().__init__(C, N, num_classes, in_channels, SearchCell, affine=True, track=False)
        self.C, self.N = C, N

    def search_cells(self) -> list[SearchCell]:
        return [c for c in self.cells if isinstance(c, SearchCell)]

    def forward(self, x: Tensor, arch: Sequence[int], weights: Tensor | None = None) -> Tensor:
        """Logits of the single path `arch` (6 python ints); `weights` (6, 5) are GDAS's straight-through h."""
        if len(arch) != NUM_EDGES:
            raise ValueError(f"an NB201 cell is {NUM_EDGES} op indices, got {arch}")
        terms = None if weights is None else path_terms(weights, arch)
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, arch, terms=terms) if isinstance(cell, SearchCell) else cell(x)
        return self.head(x)

    def forward_mixture(self, x: Tensor, probs: Tensor) -> Tensor:
        """Logits of the DARTS mixture: every edge outputs Σ_k probs[e, k]·op_k(x); probs is (6, 5)."""
        x = self.stem(x)
        for cell in self.cells:
            x = cell.forward_mixture(x, probs) if isinstance(cell, SearchCell) else cell(x)
        return self.head(x)

    def op_parameters(self, edge: int, op: int) -> list[nn.Parameter]:
        """Every parameter of op `op` on edge `edge`, over all search cells."""
        return [p for cell in self.search_cells() for p in cell.edges[edge][op].parameters()]


class FixedNet(_Skeleton):
    """The discrete network of one cell, for training from scratch (stage 5)."""

    def __init__(self, arch: Sequence[int] | str, C: int, N: int, num_classes: int, in_channels: int):
        arch = parse_arch(arch) if isinstance(arch, str) else tuple(int(a) for a in arch)
        if len(arch) != NUM_EDGES or not all(0 <= a < len(OPS) for a in arch):
            raise ValueError(f"an NB201 cell is {NUM_EDGES} op indices in [0, {len(OPS)}), got {arch}")
        super().__init__(C, N, num_classes, in_channels, lambda c: FixedCell(c, arch), affine=True, track=True)
        self.arch = arch

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x)


def count_params(model: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: Sequence[int], *args) -> int:
    """FLOPs of one forward pass at batch 1, as torch's FlopCounterMode counts them.

    That is 2 per multiply-accumulate of the convolutions and the linear layer (BatchNorm,
    ReLU and pooling are not counted; NAS-Bench-201's "FLOPs" column counts multiply-accumulates,
    i.e. half of this). `input_shape` is (C, H, W) or (1, C, H, W); `args` go to forward after
    the input (e.g. the cell of a SuperNet path).
    """
    shape = tuple(input_shape)
    shape = (1, *shape) if len(shape) == 3 else shape
    param = next(model.parameters())
    x = torch.zeros(shape, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x, *args)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

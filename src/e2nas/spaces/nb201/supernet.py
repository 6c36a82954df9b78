"""The NAS-Bench-201 weight-sharing supernet (the fixed-cell network is `network.FixedNet`).

Skeleton (as NAS-Bench-201 builds it): stem conv3x3 + BN → N cells at C channels → residual
reduction block (stride 2) → N cells at 2C → reduction block → N cells at 4C → BN-ReLU →
global average pool → linear classifier.

The supernet's search cell holds every op on every edge and runs either
  * a single path in the GDAS form: only the chosen op a of each edge runs, and the edge
    outputs h_a·op_a(x) + Σ_{k≠a} h_k, where h are straight-through weights built by the
    caller (one-hot in value, the op probabilities' gradient); the h_k for k≠a are zero in
    value, so the output equals the plain path's while ∂L/∂h_k reaches every op's probability
    (one `straight_through.StraightThroughTerm` per edge: the formula's value and gradients,
    without autograd's full-size temporaries for the scalars' gradients);
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

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from e2nas.spaces.nb201.cells import EDGES, NUM_EDGES, NUM_NODES, OPS
from e2nas.spaces.nb201.ops import INCOMING, NONE, Skeleton, finish_node, make_op
from e2nas.straight_through import straight_through_term


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
        return straight_through_term(self.edges[e][a](x), chosen, rest)

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
            nodes.append(finish_node(total, x))
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
            nodes.append(finish_node(total, x))
        return nodes[-1]


class SuperNet(Skeleton):
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



class FewShotSuperNet(nn.Module):
    """Few-shot NAS (Zhao et al., ICML 2021) on NB201: one sub-supernet per op of edge `split_edge`.

    Every sub-supernet is a whole `SuperNet`; a cell always runs on the sub-supernet of its op on the
    split edge (`sub`), so a single-path step costs what it costs on the one-shot supernet, and the
    straight-through term of the split edge still reaches every op's probability (its Σ_{k≠a} h_k
    runs inside the chosen sub-supernet). The DARTS mixture mixes the sub-supernets' logits weighted
    by the split edge's probabilities, each sub-supernet running its own mixture on the other edges
    (so a mixture step costs |ops| mixtures). The warm-up trains `subnets[0]` as the one-shot
    supernet, copies it into every sub-supernet, then trains each on its own sub-space.
    """

    def __init__(self, C: int, N: int, num_classes: int, in_channels: int, split_edge: int):
        super().__init__()
        if not 0 <= split_edge < NUM_EDGES:
            raise ValueError(f"supernet.split_edge must be an edge index 0-{NUM_EDGES - 1}, got {split_edge}")
        self.C, self.N, self.split_edge = C, N, split_edge
        self.subnets = nn.ModuleList(SuperNet(C, N, num_classes, in_channels) for _ in OPS)

    def sub(self, arch: Sequence[int]) -> SuperNet:
        """The sub-supernet a cell runs on: that of its op on the split edge."""
        return self.subnets[int(arch[self.split_edge])]

    def forward(self, x: Tensor, arch: Sequence[int], weights: Tensor | None = None) -> Tensor:
        return self.sub(arch)(x, arch, weights)

    def forward_mixture(self, x: Tensor, probs: Tensor) -> Tensor:
        """Σ_a p[split, a] · logits of sub-supernet a, which runs op a on the split edge and the mixture elsewhere."""
        out = None
        for a, net in enumerate(self.subnets):
            own = probs.detach().new_zeros(probs.shape[-1])
            own[a] = 1.0
            rows = torch.cat([probs[: self.split_edge], own.unsqueeze(0), probs[self.split_edge + 1 :]])
            term = probs[self.split_edge, a] * net.forward_mixture(x, rows)
            out = term if out is None else out + term
        return out

    def spread_one_shot(self) -> None:
        """Copy the one-shot supernet (`subnets[0]`) into every sub-supernet: where each starts from."""
        state = self.subnets[0].state_dict()
        for net in self.subnets[1:]:
            net.load_state_dict(state)

    def search_cells(self) -> list[SearchCell]:
        return [c for net in self.subnets for c in net.search_cells()]

    def op_parameters(self, edge: int, op: int) -> list[nn.Parameter]:
        """Every parameter of op `op` on edge `edge`, over all search cells of every sub-supernet."""
        return [p for net in self.subnets for p in net.op_parameters(edge, op)]

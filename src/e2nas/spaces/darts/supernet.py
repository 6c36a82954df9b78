"""The DARTS-space weight-sharing supernet (DARTS's search network, `model_search.py`).

Skeleton, as DARTS builds it: stem conv 3×3 to 3C channels + BatchNorm, then `layers` cells,
reductions at layers//3 and 2·layers//3 (channels doubled, stride 2 on the ops reading the two
cell inputs); each cell preprocesses c_{k-2} and c_{k-1} to C channels (ReLU-Conv1×1-BN, or
FactorizedReduce after a reduction cell), holds all 8 ops on each of its 14 candidate edges
j → i (node i = 0..3 reads every node j < i+2), and concatenates its 4 nodes. Global average
pool and a linear classifier end it. Ops come from `darts_ops.make_op(..., affine=False,
track=False, pool_bn=True)`; with C = 16, 8 cells and 10 classes the network has 1,930,618
parameters, the "param size = 1.930618MB" DARTS's `train_search.py` logs.

BatchNorm, as in the NB201 supernet: batch statistics also at evaluation everywhere
(`track_running_stats=False`; running statistics shared by all paths would describe none of
them), no affine parameters in the cells (preprocessing and ops, as DARTS), affine in the stem.

Two forwards:
  * `forward(x, arch, weights=None)`: the single path of a 32-choice encoding
    (`darts.CHOICE_SIZES`: per cell type, per node, per slot, (input, op)); a node sums its two
    chosen (input, op) terms and only the chosen ops run (`none` is not run: it is zero). With
    `weights` — straight-through h, one-hot in value, for every position — the forward is in
    GDAS's form (see `forward`): the value is the plain path's, and the gradient reaches every
    option's h, input choices included.
  * `forward(x, edge_ops, weights=None)` with 28 op indices (14 edges per cell type): every
    edge runs its one op (GDAS on the DARTS space: each edge samples an op, a node sums all its
    incoming edges); with `weights` (2, 14, 8) straight-through h in GDAS's form.
  * `forward_mixture(x, probs_normal, probs_reduce)`: DARTS's continuous relaxation, every edge
    outputs Σ_k p[e, k]·op_k(x) over its 8 ops, probabilities (14, 8) per cell type (or both
    stacked as one (2, 14, 8) tensor).

`derive_genotype` turns edge probabilities into a cell the DARTS way. Edge e of node i from
input j is `edge_index(i, j)` = i(i+3)/2 + j, DARTS's own order (node 0: inputs 0, 1; node 1:
0, 1, 2; ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from e2nas.layers import ReLUConvBN, batch_norm
from e2nas.spaces.darts import cells as darts
from e2nas.spaces.darts.cells import (
    CHOICE_SIZES,
    NONE,
    NUM_INPUTS,
    NUM_NODES,
    NUM_POSITIONS,
    OPS,
    SLOTS,
)
from e2nas.spaces.darts.ops import FactorizedReduce, make_op
from e2nas.straight_through import straight_through_term

STEM_MULTIPLIER = 3  # the stem has 3C channels
EDGE_OFFSET = tuple(i * (i + 3) // 2 for i in range(NUM_NODES))  # first edge of each node
NUM_EDGES = EDGE_OFFSET[-1] + NUM_INPUTS + NUM_NODES - 1  # 14
NUM_EDGE_OPS = len(darts.CELL_TYPES) * NUM_EDGES  # an op per edge of both cell types (GDAS's sample)
MAX_OPTIONS = max(CHOICE_SIZES)  # the decoder's padded width (8)
# valid[p, k]: position p has option k (the decoder masks the others).
VALID = torch.arange(MAX_OPTIONS).unsqueeze(0) < torch.tensor(CHOICE_SIZES).unsqueeze(1)

Choices = list[tuple[int, int]]  # one cell type's (input, op) per node slot, node by node


def edge_index(node: int, src: int) -> int:
    """Index (0..13) of the candidate edge src → node (node 0..3, src 0..node+1)."""
    return EDGE_OFFSET[node] + src


def _check_arch(arch: Sequence[int]) -> tuple[int, ...]:
    """The encoding as python ints; ValueError unless 32 choices in range.

    A node's two inputs may be equal (a decoded cell can repeat one): the network runs it as it
    is, two ops on the same input summed; canonical form is the caller's business.
    """
    arch = tuple(int(a) for a in arch)
    if len(arch) != NUM_POSITIONS or not all(0 <= a < s for a, s in zip(arch, CHOICE_SIZES)):
        raise ValueError(f"a DARTS arch is {NUM_POSITIONS} choices within sizes {CHOICE_SIZES}, got {arch}")
    return arch


def _cell_choices(arch: tuple[int, ...], cell: int) -> Choices:
    return [
        (arch[darts.position(cell, node, slot)], arch[darts.position(cell, node, slot) + 1])
        for node in range(NUM_NODES)
        for slot in range(SLOTS)
    ]


def _padded(weights: Tensor | Sequence[Tensor]) -> Tensor:
    """Straight-through h as a (32, 8) tensor, zero outside each position's options."""
    if isinstance(weights, Tensor):
        if weights.dim() != 2 or weights.shape[0] != NUM_POSITIONS or weights.shape[1] < MAX_OPTIONS:
            raise ValueError(f"DARTS path weights must be ({NUM_POSITIONS}, {MAX_OPTIONS}), got {tuple(weights.shape)}")
        w = weights[:, :MAX_OPTIONS]
    else:
        if len(weights) != NUM_POSITIONS:
            raise ValueError(f"DARTS path weights: {NUM_POSITIONS} tensors expected, got {len(weights)}")
        rows = []
        for p, (h, size) in enumerate(zip(weights, CHOICE_SIZES)):
            if h.shape[-1] < size:
                raise ValueError(f"DARTS path weights: position {p} has {size} options, got {h.shape[-1]} weights")
            rows.append(torch.cat([h[:size], h.new_zeros(MAX_OPTIONS - size)]))
        w = torch.stack(rows)
    return w.masked_fill(~VALID.to(w.device), 0.0)


def _path_terms(weights, arch: tuple[int, ...]) -> list[list[tuple[Tensor, Tensor]]]:
    """Per cell type, per node slot: (h_input·h_op of the chosen pair, Σ of the other options' h).

    Computed once per forward (a gather and two masked sums over all 32 positions) and shared by
    every cell of the type; `unbind` gives the scalars as views, not one kernel each.
    """
    w = _padded(weights)
    index = torch.tensor(arch, dtype=torch.long, device=w.device)
    chosen_mask = index.unsqueeze(1) == torch.arange(MAX_OPTIONS, device=w.device)
    chosen = (w * chosen_mask).sum(1)
    rest = w.masked_fill(chosen_mask, 0.0).sum(1)
    coef = (chosen[0::2] * chosen[1::2]).unbind()  # input position, then its op position
    rests = (rest[0::2] + rest[1::2]).unbind()
    per_cell = NUM_NODES * SLOTS
    return [list(zip(coef[c * per_cell : (c + 1) * per_cell], rests[c * per_cell : (c + 1) * per_cell])) for c in range(2)]


def _edge_terms(weights: Tensor, ops: tuple[int, ...]) -> list[list[tuple[Tensor, Tensor]]]:
    """Per cell type, per edge: (h of the edge's op, Σ of its other ops' h), from (2, 14, 8) weights."""
    w = weights.reshape(len(darts.CELL_TYPES), NUM_EDGES, len(OPS))
    index = torch.tensor(ops, dtype=torch.long, device=w.device).reshape(len(darts.CELL_TYPES), NUM_EDGES, 1)
    chosen_mask = index == torch.arange(len(OPS), device=w.device)
    coef = (w * chosen_mask).sum(-1)
    rest = w.masked_fill(chosen_mask, 0.0).sum(-1)
    return [list(zip(coef[t].unbind(), rest[t].unbind())) for t in range(len(darts.CELL_TYPES))]


class DartsSearchCell(nn.Module):
    """Preprocessing of both inputs, all 8 ops on each of the 14 edges, concat of the 4 nodes."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_prev_prev, c, affine=False, track=False)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, c, 1, 1, 0, False, False)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, False, False)
        # Only the edges from the two cell inputs stride in a reduction cell.
        self.edges = nn.ModuleList(
            nn.ModuleList(
                make_op(name, c, 2 if reduction and src < NUM_INPUTS else 1, affine=False, track=False, pool_bn=True)
                for name in OPS
            )
            for node in range(NUM_NODES)
            for src in range(NUM_INPUTS + node)
        )
        self.multiplier = NUM_NODES

    def _finish(self, total: Tensor | None, states: list[Tensor]) -> Tensor:
        """A node's value: a feature map even when only `none` (scalars or nothing) fed it."""
        if total is not None and total.dim() > 0:
            return total
        like = states[1][:, :, ::2, ::2] if self.reduction else states[1]
        zeros = torch.zeros_like(like)
        return zeros if total is None else zeros + total

    def forward(self, s0: Tensor, s1: Tensor, choices: Choices, terms: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """The single path: node i sums its two chosen (input, op) slots; terms[k] for slot k."""
        feeds = [[(*choices[i * SLOTS + s], i * SLOTS + s) for s in range(SLOTS)] for i in range(NUM_NODES)]
        return self._run(s0, s1, feeds, terms)

    def forward_edges(self, s0: Tensor, s1: Tensor, ops: Sequence[int], terms: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """Every edge runs its one op `ops[e]` (14 indices); a node sums all its incoming edges; terms[e] for edge e."""
        feeds = [
            [(j, ops[edge_index(i, j)], edge_index(i, j)) for j in range(NUM_INPUTS + i)] for i in range(NUM_NODES)
        ]
        return self._run(s0, s1, feeds, terms)

    def _run(self, s0: Tensor, s1: Tensor, feeds, terms: list[tuple[Tensor, Tensor]] | None) -> Tensor:
        """feeds[i]: the (input, op, k) node i sums; with terms, each in GDAS's form coef·op(x) + rest, terms[k]."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node, node_feeds in enumerate(feeds):
            total = None
            for src, op, k in node_feeds:
                out = None if op == NONE else self.edges[edge_index(node, src)][op](states[src])
                if terms is not None:
                    coef, rest = terms[k]
                    # `none` is zero: coef·0 keeps the chosen h in the graph (gradient 0) without running it.
                    # Otherwise one StraightThroughTerm: coef·out + rest's value and gradients, without
                    # autograd's full-size temporaries for the scalars' gradients.
                    out = coef * 0.0 + rest if out is None else straight_through_term(out, coef, rest)
                if out is not None:
                    total = out if total is None else total + out
            states.append(self._finish(total, states))
        return torch.cat(states[NUM_INPUTS:], dim=1)

    def forward_mixture(self, s0: Tensor, s1: Tensor, probs: Tensor) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        rows = probs.unbind(0)
        for node in range(NUM_NODES):
            total = None
            for src in range(NUM_INPUTS + node):
                e = edge_index(node, src)
                p = rows[e].unbind(0)
                for k, op in enumerate(self.edges[e]):
                    if k == NONE:  # p·0: no value, no gradient
                        continue
                    out = p[k] * op(states[src])
                    total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[NUM_INPUTS:], dim=1)


def derive_genotype(edge_probs_normal: Tensor, edge_probs_reduce: Tensor) -> tuple[int, ...]:
    """The cell DARTS derives from edge weights, as a canonical 32-choice encoding.

    Per node (DARTS's `genotype()._parse`): keep the two incoming edges whose strongest non-`none`
    op weighs most (ties: the lower input), and on each the non-`none` op of largest weight
    (ties: the lower op index). DARTS compares softmax probabilities across edges: pass those,
    not logits (a row's logits are shifted freely, its probabilities are not).
    """
    choices = []
    for probs in (edge_probs_normal, edge_probs_reduce):
        w = probs.detach().to(device="cpu", dtype=torch.float64, copy=True)
        if tuple(w.shape) != (NUM_EDGES, len(OPS)):
            raise ValueError(f"DARTS edge weights must be ({NUM_EDGES}, {len(OPS)}) per cell type, got {tuple(w.shape)}")
        w[:, NONE] = -float("inf")
        best_weight, best_op = w.max(dim=1)  # max returns the first index of the maximum
        for node in range(NUM_NODES):
            srcs = range(NUM_INPUTS + node)
            strongest = sorted(srcs, key=lambda j: -best_weight[edge_index(node, j)].item())[:SLOTS]
            for j in strongest:
                choices += [j, int(best_op[edge_index(node, j)])]
    return tuple(darts.canonicalize(torch.tensor(choices)).tolist())


class DartsSuperNet(nn.Module):
    """The weight-sharing supernet over DARTS cells (see the module docstring)."""

    derive_genotype = staticmethod(derive_genotype)

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3, steps: int = NUM_NODES):
        super().__init__()
        if C < 1 or layers < 1:
            raise ValueError(f"the DARTS supernet needs C >= 1 and layers >= 1, got C={C}, layers={layers}")
        if steps != NUM_NODES:
            raise ValueError(f"the DARTS space has {NUM_NODES} nodes per cell (steps), got steps={steps}")
        self.C, self.layers = C, layers
        reductions = {layers // 3, 2 * layers // 3}
        c_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), batch_norm(c_stem, True, False))
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, C
        cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in reductions
            c_curr = 2 * c_curr if reduction else c_curr
            cell = DartsSearchCell(c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def _head(self, x: Tensor) -> Tensor:
        return self.classifier(self.global_pooling(x).flatten(1))

    def forward(self, x: Tensor, arch: Sequence[int], weights: Tensor | Sequence[Tensor] | None = None) -> Tensor:
        """Logits of the single path `arch` (32 choices; pass python ints, a device tensor syncs);
        28 op indices instead (an op per edge) run `forward_edges`.

        `weights`: straight-through h for every position, a list of 32 tensors (position p's
        first CHOICE_SIZES[p] entries are used) or a (32, 8) tensor in the VGAE decoder's padded
        layout (entries past a position's size are ignored). A slot s of node i that chose input
        j and op o then outputs

            h_in[j]·h_op[o]·op_o(x_j) + Σ_{k≠j} h_in[k] + Σ_{k≠o} h_op[k],

        with h_in, h_op the h of the slot's input and op positions. The h are one-hot in value,
        so the value is the plain path's; with g = ∂L/∂(node i), summed over the cells of the
        type, the gradient is
          * chosen op:       ∂L/∂h_op[o] = h_in[j]·⟨g, op_o(x_j)⟩ (0 for `none`);
          * chosen input:    ∂L/∂h_in[j] = h_op[o]·⟨g, op_o(x_j)⟩ — the same signal;
          * unchosen op or input k: ⟨g, 1⟩ = Σ g (the scalar broadcasts over the node's map),
            GDAS's gradient for the ops that did not run.
        Through h = onehot − sg(P) + P, the input probabilities P_in get the chosen term's
        ⟨g, op_o(x_j)⟩ against the Σ g of the others: no input other than j is run.
        """
        if len(arch) == NUM_EDGE_OPS:
            return self.forward_edges(x, arch, weights)
        arch = _check_arch(arch)
        choices = [_cell_choices(arch, cell) for cell in range(2)]
        terms = None if weights is None else _path_terms(weights, arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            t = int(cell.reduction)
            s0, s1 = s1, cell(s0, s1, choices[t], None if terms is None else terms[t])
        return self._head(s1)

    def forward_edges(self, x: Tensor, edge_ops: Sequence[int], weights: Tensor | None = None) -> Tensor:
        """Logits with every edge running one op: `edge_ops` 28 ints (normal cell's 14 edges, then
        the reduction cell's, edge order `edge_index`). With `weights` (2, 14, 8), straight-through
        h: edge e with op o outputs h[e, o]·op_o(x) + Σ_{k≠o} h[e, k] (GDAS's form; value of the
        plain forward, gradient to every h of the edge)."""
        ops = tuple(int(o) for o in edge_ops)
        if len(ops) != NUM_EDGE_OPS or not all(0 <= o < len(OPS) for o in ops):
            raise ValueError(f"DARTS edge ops are {NUM_EDGE_OPS} op indices in [0, {len(OPS)}), got {ops}")
        if weights is not None and weights.numel() != NUM_EDGE_OPS * len(OPS):
            raise ValueError(f"DARTS edge weights must be (2, {NUM_EDGES}, {len(OPS)}), got {tuple(weights.shape)}")
        terms = None if weights is None else _edge_terms(weights, ops)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            t = int(cell.reduction)
            s0, s1 = s1, cell.forward_edges(
                s0, s1, ops[t * NUM_EDGES : (t + 1) * NUM_EDGES], None if terms is None else terms[t]
            )
        return self._head(s1)

    def forward_mixture(self, x: Tensor, edge_probs_normal: Tensor, edge_probs_reduce: Tensor | None = None) -> Tensor:
        """Logits of the DARTS mixture: edge e outputs Σ_k probs[e, k]·op_k(x); probs (14, 8) per
        cell type, or one (2, 14, 8) tensor for both (the search harness's form)."""
        if edge_probs_reduce is None:
            if tuple(edge_probs_normal.shape) != (2, NUM_EDGES, len(OPS)):
                raise ValueError(f"DARTS edge probabilities for both cells must be (2, {NUM_EDGES}, {len(OPS)}), "
                                 f"got {tuple(edge_probs_normal.shape)}")
            edge_probs_normal, edge_probs_reduce = edge_probs_normal.unbind(0)
        for probs in (edge_probs_normal, edge_probs_reduce):
            if tuple(probs.shape) != (NUM_EDGES, len(OPS)):
                raise ValueError(f"DARTS edge probabilities must be ({NUM_EDGES}, {len(OPS)}), got {tuple(probs.shape)}")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            probs = edge_probs_reduce if cell.reduction else edge_probs_normal
            s0, s1 = s1, cell.forward_mixture(s0, s1, probs)
        return self._head(s1)

    def search_cells(self, cell_type: int | str | None = None) -> list[DartsSearchCell]:
        """The cells (of one type: 0 or "normal", 1 or "reduce")."""
        if cell_type is None:
            return list(self.cells)
        t = darts.CELL_TYPES.index(cell_type) if isinstance(cell_type, str) else int(cell_type)
        return [c for c in self.cells if int(c.reduction) == t]

    def op_parameters(self, cell_type: int | str, node: int, input: int, op: int) -> list[nn.Parameter]:
        """Every parameter of op `op` on edge input → node (node 0..3), over all cells of the type."""
        if not 0 <= input < NUM_INPUTS + node:
            raise ValueError(f"node {node} reads inputs 0..{NUM_INPUTS + node - 1}, got {input}")
        return [p for c in self.search_cells(cell_type) for p in c.edges[edge_index(node, input)][op].parameters()]

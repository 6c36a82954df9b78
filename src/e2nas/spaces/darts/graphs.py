"""DARTS cell pairs as graphs for the GNN encoder (see e2nas.graphs for the layout every space shares)."""

from __future__ import annotations

import torch

from e2nas.spaces.darts.cells import CELL_TYPES, NUM_INPUTS, NUM_NODES, OPS, POSITIONS_PER_CELL, SLOTS, canonicalize


def darts_graph(archs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense graphs of DARTS cell pairs: x (B, 30, 25) float, edge_index (B, 2, 40), one per graph.

    Each cell (normal, reduce) is a component of 15 nodes: its 7 cell nodes (inputs c_{k-2},
    c_{k-1}, intermediate nodes 2..5, output) and one node per op (8), wired chosen input → op
    → node, and node → output (the output concatenates nodes 2..5). Features are one-hot
    [cell-node role (7) | op (8) | op position (8) | cell type (2)]; op nodes have no role,
    cell nodes no op or position. The op position is the op's (node, slot) in the canonical
    encoding (archs are canonicalised first, so any slot order gives the same graph): as
    NB201's edge position, it hands the decoder's positions to the encoder directly. The
    cell-type bit keeps the two components apart under message passing.

    A node that reads one input twice (a repeated input, see `cells`) is two op nodes fed by
    the same cell node, never a merged or parallel edge: every (input, op) pair of a node is
    its own op node, so E is the same for every cell, and a cell whose node reads j twice and
    one that reads j and j' differ in where that op node's edge starts (the graphs differ,
    and 1-WL tells them apart by the inputs' out-degrees). Canonical order sorts a node's pairs
    by (input, op), so the op positions are well defined when the inputs are equal.
    """
    n_in, n_nodes, slots, n_ops = NUM_INPUTS, NUM_NODES, SLOTS, len(OPS)
    n_roles = n_in + n_nodes + 1  # inputs, intermediate nodes, output
    n_op_nodes = n_nodes * slots
    per_cell = n_roles + n_op_nodes
    n_cells = len(CELL_TYPES)
    b = archs.shape[0]
    archs = canonicalize(archs)
    x = torch.zeros(b, n_cells * per_cell, n_roles + n_ops + n_op_nodes + n_cells)
    src, dst = [], []
    for cell in range(n_cells):
        base, op_base = cell * per_cell, cell * per_cell + n_roles
        x[:, base + torch.arange(n_roles), torch.arange(n_roles)] = 1.0
        x[:, base : base + per_cell, n_roles + n_ops + n_op_nodes + cell] = 1.0
        x[:, op_base + torch.arange(n_op_nodes), n_roles + n_ops + torch.arange(n_op_nodes)] = 1.0
        ops = archs[:, cell * POSITIONS_PER_CELL + 1 : (cell + 1) * POSITIONS_PER_CELL : 2]  # (B, 8)
        inputs = archs[:, cell * POSITIONS_PER_CELL : (cell + 1) * POSITIONS_PER_CELL : 2]
        x[torch.arange(b).unsqueeze(1), op_base + torch.arange(n_op_nodes).unsqueeze(0), n_roles + ops] = 1.0
        for k in range(n_op_nodes):  # chosen input → op k → its node
            src += [base + inputs[:, k], torch.full((b,), op_base + k)]
            dst += [torch.full((b,), op_base + k), torch.full((b,), base + n_in + k // slots)]
        for node in range(n_nodes):  # every intermediate node → output
            src.append(torch.full((b,), base + n_in + node))
            dst.append(torch.full((b,), base + n_roles - 1))
    edge_index = torch.stack([torch.stack(src, dim=1), torch.stack(dst, dim=1)], dim=1).long()
    return x, edge_index

"""NAS-Bench-201 cells as graphs for the GNN encoder (see e2nas.graphs for the layout every space shares).

One node per cell node and one per edge-op, wired frm → op → to; features one-hot
[cell-node index | op | edge position]. The wiring is the same for every cell, so one
(2, E) edge_index serves them all.
"""

from __future__ import annotations

import torch

from e2nas.spaces.nb201.cells import EDGES, NUM_EDGES, NUM_NODES, OPS


def nb201_graph(archs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense graphs of NB201 cells: x (B, 10, 15) float, edge_index (2, 12) shared by all."""
    n_cell, n_ops, n_edges = NUM_NODES, len(OPS), NUM_EDGES
    b = archs.shape[0]
    x = torch.zeros(b, n_cell + n_edges, n_cell + n_ops + n_edges)
    x[:, torch.arange(n_cell), torch.arange(n_cell)] = 1.0
    op_nodes = n_cell + torch.arange(n_edges)
    x[:, op_nodes, n_cell + n_ops + torch.arange(n_edges)] = 1.0
    x[torch.arange(b).unsqueeze(1), op_nodes.unsqueeze(0), n_cell + archs] = 1.0
    src, dst = [], []
    for e, (to, frm) in enumerate(EDGES):
        src += [frm, n_cell + e]
        dst += [n_cell + e, to]
    return x, torch.tensor([src, dst], dtype=torch.long)

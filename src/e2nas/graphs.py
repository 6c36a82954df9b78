"""Cells as graphs for the GNN encoder.

A cell becomes a directed graph with ops as nodes (as arch2vec and D-VAE do): one node per
cell node and one per edge-op, wired frm → op → to. Node features are one-hot
[cell-node index | op | edge position], so message passing sees which op sits on which edge
and no two cells share a graph. Every cell of a space has the same number of nodes and edges,
so a whole space is stored as dense (N, nodes, F) and (N, 2, E) tensors and batched by indexing
(no per-graph Python objects in the training loop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch_geometric.data import Batch, Data

from e2nas.checkpoint import CheckpointError, atomic_save, safe_load
from e2nas.spaces import get_space


def nb201_graph(archs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense graphs of NB201 cells: x (B, 10, 15) float, edge_index (2, 12) shared by all."""
    from e2nas.spaces import nb201

    n_cell, n_ops, n_edges = nb201.NUM_NODES, len(nb201.OPS), nb201.NUM_EDGES
    b = archs.shape[0]
    x = torch.zeros(b, n_cell + n_edges, n_cell + n_ops + n_edges)
    x[:, torch.arange(n_cell), torch.arange(n_cell)] = 1.0
    op_nodes = n_cell + torch.arange(n_edges)
    x[:, op_nodes, n_cell + n_ops + torch.arange(n_edges)] = 1.0
    x[torch.arange(b).unsqueeze(1), op_nodes.unsqueeze(0), n_cell + archs] = 1.0
    src, dst = [], []
    for e, (to, frm) in enumerate(nb201.EDGES):
        src += [frm, n_cell + e]
        dst += [n_cell + e, to]
    return x, torch.tensor([src, dst], dtype=torch.long)


@dataclass
class GraphSet:
    """All graphs of one space: archs (N, P) choices, x (N, nodes, F), edge_index (2, E) shared."""

    space: str
    archs: torch.Tensor
    x: torch.Tensor
    edge_index: torch.Tensor

    def __len__(self) -> int:
        return self.archs.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[-1]

    def batch(self, index: torch.Tensor | None = None) -> Batch:
        """The graphs at `index` (all when None) as one PyG Batch, built by tensor ops."""
        x = self.x if index is None else self.x[index]
        b, n, f = x.shape
        offsets = (torch.arange(b) * n).repeat_interleave(self.edge_index.shape[1])
        edge_index = self.edge_index.repeat(1, b) + offsets
        return Batch(
            x=x.reshape(b * n, f),
            edge_index=edge_index,
            batch=torch.arange(b).repeat_interleave(n),
            ptr=torch.arange(b + 1) * n,
        )

    def data(self, i: int) -> Data:
        """Graph i as a single PyG Data."""
        return Data(x=self.x[i], edge_index=self.edge_index.clone())

    def save(self, path: str | os.PathLike) -> None:
        atomic_save({"space": self.space, "archs": self.archs, "x": self.x, "edge_index": self.edge_index}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GraphSet":
        obj = safe_load(path, "graph dataset")
        missing = {"space", "archs", "x", "edge_index"} - set(obj)
        if missing:
            raise CheckpointError(f"graph dataset {path} lacks {sorted(missing)}; rerun stage 1 (rule build_graphs)")
        return cls(obj["space"], obj["archs"], obj["x"], obj["edge_index"])


def build_graph_set(space: str, archs: torch.Tensor | None = None) -> GraphSet:
    """Graphs of `archs` (default: every cell of the space)."""
    mod = get_space(space)
    if archs is None:
        archs = mod.all_archs()
    if space == "nb201":
        x, edge_index = nb201_graph(archs)
    else:  # get_space already rejected unknown names
        raise ValueError(f"no graph builder for space {space!r}")
    return GraphSet(space, archs, x, edge_index)


def op_counts(graphs: GraphSet) -> dict[str, int]:
    """How often each op occurs over all edges of all cells."""
    ops = get_space(graphs.space).OPS
    counts = torch.bincount(graphs.archs.flatten(), minlength=len(ops))
    return {op: int(c) for op, c in zip(ops, counts)}


def summary(graphs: GraphSet) -> dict:
    """The stage-1 JSON: size, uniqueness, op counts, graph shape."""
    return {
        "space": graphs.space,
        "num_archs": len(graphs),
        "num_unique": int(torch.unique(graphs.archs, dim=0).shape[0]),
        "num_nodes": int(graphs.x.shape[1]),
        "num_edges": int(graphs.edge_index.shape[1]),
        "num_features": graphs.num_features,
        "op_counts": op_counts(graphs),
    }


def write_stage(space: str, out_pt: str | os.PathLike, out_json: str | os.PathLike) -> dict:
    """Stage 1: build every graph of the space, write the .pt and the JSON summary."""
    import json

    graphs = build_graph_set(space)
    graphs.save(out_pt)
    info = summary(graphs)
    Path(out_json).write_text(json.dumps(info, indent=2) + "\n")
    return info

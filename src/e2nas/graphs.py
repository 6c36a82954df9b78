"""Cells as graphs for the GNN encoder.

A cell becomes a directed graph with ops as nodes (as arch2vec and D-VAE do): one node per
cell node and one per edge-op, wired frm → op → to. Node features are one-hot
[cell-node index | op | edge position], so message passing sees which op sits on which edge
and no two cells share a graph. Every cell of a space has the same number of nodes and edges,
so a whole space is stored as dense (N, nodes, F) and (N, 2, E) tensors and batched by indexing
(no per-graph Python objects in the training loop). NB201's wiring is the same for every cell,
so its edge_index is one (2, E) tensor; a DARTS cell chooses its inputs, so DARTS graphs keep
one (2, E) edge_index per graph, stacked (N, 2, E) (E is the same for all).

Stage 1 enumerates NB201 (15,625 cells) but samples DARTS (about 10^18 cell pairs): `GraphsConfig`
says how many genotypes and with which seed. The sample keeps every draw, degenerate cells
(no non-`none` path from the inputs, `darts.valid_mask` false) included: the VGAE decodes
whatever a latent point maps to, so it is trained on the space as the space is sampled, and
the search (not stage 1) is what keeps decoded cells valid. The summary counts the valid ones.
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
    """
    from e2nas.spaces import darts

    n_in, n_nodes, slots, n_ops = darts.NUM_INPUTS, darts.NUM_NODES, darts.SLOTS, len(darts.OPS)
    n_roles = n_in + n_nodes + 1  # inputs, intermediate nodes, output
    n_op_nodes = n_nodes * slots
    per_cell = n_roles + n_op_nodes
    n_cells = len(darts.CELL_TYPES)
    b = archs.shape[0]
    archs = darts.canonicalize(archs)
    x = torch.zeros(b, n_cells * per_cell, n_roles + n_ops + n_op_nodes + n_cells)
    src, dst = [], []
    for cell in range(n_cells):
        base, op_base = cell * per_cell, cell * per_cell + n_roles
        x[:, base + torch.arange(n_roles), torch.arange(n_roles)] = 1.0
        x[:, base : base + per_cell, n_roles + n_ops + n_op_nodes + cell] = 1.0
        x[:, op_base + torch.arange(n_op_nodes), n_roles + n_ops + torch.arange(n_op_nodes)] = 1.0
        ops = archs[:, cell * darts.POSITIONS_PER_CELL + 1 : (cell + 1) * darts.POSITIONS_PER_CELL : 2]  # (B, 8)
        inputs = archs[:, cell * darts.POSITIONS_PER_CELL : (cell + 1) * darts.POSITIONS_PER_CELL : 2]
        x[torch.arange(b).unsqueeze(1), op_base + torch.arange(n_op_nodes).unsqueeze(0), n_roles + ops] = 1.0
        for k in range(n_op_nodes):  # chosen input → op k → its node
            src += [base + inputs[:, k], torch.full((b,), op_base + k)]
            dst += [torch.full((b,), op_base + k), torch.full((b,), base + n_in + k // slots)]
        for node in range(n_nodes):  # every intermediate node → output
            src.append(torch.full((b,), base + n_in + node))
            dst.append(torch.full((b,), base + n_roles - 1))
    edge_index = torch.stack([torch.stack(src, dim=1), torch.stack(dst, dim=1)], dim=1).long()
    return x, edge_index


@dataclass
class GraphSet:
    """All graphs of one space: archs (N, P) choices, x (N, nodes, F), edge_index (2, E) shared or (N, 2, E) per graph."""

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
        if self.edge_index.dim() == 3:  # one edge_index per graph
            per_graph = self.edge_index if index is None else self.edge_index[index]
            edge_index = (per_graph + (torch.arange(b) * n).view(b, 1, 1)).permute(1, 0, 2).reshape(2, -1)
        else:
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
        edge_index = self.edge_index[i] if self.edge_index.dim() == 3 else self.edge_index
        return Data(x=self.x[i], edge_index=edge_index.clone())

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
        if not hasattr(mod, "all_archs"):
            raise ValueError(f"the {space} space is sampled, not enumerated: pass archs (e.g. {space}.sample_archs(n, generator))")
        archs = mod.all_archs()
    if space == "nb201":
        x, edge_index = nb201_graph(archs)
    elif space == "darts":
        archs = mod.canonicalize(archs)  # the targets the graphs encode: one encoding per cell
        x, edge_index = darts_graph(archs)
    else:  # get_space already rejected unknown names
        raise ValueError(f"no graph builder for space {space!r}")
    return GraphSet(space, archs, x, edge_index)


def op_counts(graphs: GraphSet) -> dict[str, int]:
    """How often each op occurs over all edges of all cells."""
    mod = get_space(graphs.space)
    ops = mod.OPS
    # A space whose choices mix ops with other things (DARTS: input choices) says which are ops.
    op_choices = mod.op_choices(graphs.archs) if hasattr(mod, "op_choices") else graphs.archs
    counts = torch.bincount(op_choices.flatten(), minlength=len(ops))
    return {op: int(c) for op, c in zip(ops, counts)}


def summary(graphs: GraphSet) -> dict:
    """The stage-1 JSON: size, uniqueness, op counts, graph shape."""
    return {
        "space": graphs.space,
        "num_archs": len(graphs),
        "num_unique": int(torch.unique(graphs.archs, dim=0).shape[0]),
        "num_nodes": int(graphs.x.shape[1]),
        "num_edges": int(graphs.edge_index.shape[-1]),
        "num_features": graphs.num_features,
        "op_counts": op_counts(graphs),
    }


@dataclass
class GraphsConfig:
    """Config section `graphs`: the DARTS genotypes stage 1 samples (NB201 enumerates every cell and ignores it)."""

    num_archs: int = 20000  # genotypes drawn uniformly (benchmarks/vgae.py: 20,000 reach exact held-out reconstruction)
    seed: int = 0  # seeds the draw: the same seed gives the same graph set

    def __post_init__(self):
        if self.num_archs < 1:
            raise ValueError(f"graphs.num_archs must be >= 1, got {self.num_archs}")
        if self.seed < 0:
            raise ValueError(f"graphs.seed must be >= 0, got {self.seed}")


def stage_archs(space: str, cfg: GraphsConfig | None = None) -> torch.Tensor | None:
    """The cells stage 1 encodes: None (every cell) for an enumerable space, else `cfg.num_archs` seeded draws."""
    mod = get_space(space)
    if hasattr(mod, "all_archs"):
        return None
    cfg = cfg or GraphsConfig()
    return mod.sample_archs(cfg.num_archs, torch.Generator().manual_seed(cfg.seed))


def write_stage(space: str, out_pt: str | os.PathLike, out_json: str | os.PathLike, cfg: GraphsConfig | None = None) -> dict:
    """Stage 1: build the graphs of the space (all NB201 cells; `cfg`'s DARTS sample), write the .pt and the JSON summary."""
    import json

    cfg = cfg or GraphsConfig()
    sampled = stage_archs(space, cfg)
    graphs = build_graph_set(space, sampled)
    graphs.save(out_pt)
    info = summary(graphs)
    if sampled is not None:  # how the sample was drawn, and how much of it is a non-degenerate cell
        info.update(sample_seed=cfg.seed, num_valid=int(get_space(space).valid_mask(graphs.archs).sum()))
    Path(out_json).write_text(json.dumps(info, indent=2) + "\n")
    return info

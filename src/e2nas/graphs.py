"""Cells as graphs for the GNN encoder.

A cell becomes a directed graph with ops as nodes (as arch2vec and D-VAE do): one node per
cell node and one per edge-op, wired frm → op → to. Node features are one-hot
[cell-node index | op | edge position], so message passing sees which op sits on which edge
and no two cells share a graph. Every cell of a space has the same number of nodes and edges,
so a whole space is stored as dense (N, nodes, F) and (N, 2, E) tensors and batched by indexing
(no per-graph Python objects in the training loop). Each space builds its own graphs
(`Space.graphs`): NB201's wiring is the same for every cell, so its edge_index is one (2, E)
tensor; a DARTS cell chooses its inputs, so DARTS graphs keep one (2, E) edge_index per graph,
stacked (N, 2, E) (E is the same for all).

Stage 1 enumerates NB201 (15,625 cells) but samples DARTS (about 10^18 cell pairs): `GraphsConfig`
says how many genotypes, with which seed, and whether a node may read one input twice
(`distinct_inputs`; the graph set records it, and E2NAS decodes under the same option). The
sample keeps every draw, degenerate cells (no non-`none` path from the inputs,
`darts.valid_mask` false) included: the VGAE decodes
whatever a latent point maps to, so it is trained on the space as the space is sampled, and
the search (not stage 1) is what keeps decoded cells valid. The summary counts the valid ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch_geometric.data import Batch, Data

from e2nas import spaces
from e2nas.checkpoint import CheckpointError, atomic_save, safe_load, write_json
from e2nas.sections import GraphsConfig
from e2nas.spaces import Space

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.graphs builds the cells' graphs.
SPACE_PARTS = ('graphs',)


@dataclass
class GraphSet:
    """All graphs of one space: archs (N, P) choices, x (N, nodes, F), edge_index (2, E) shared or (N, 2, E) per graph."""

    space: str
    archs: torch.Tensor
    x: torch.Tensor
    edge_index: torch.Tensor
    options: dict = field(default_factory=dict)  # the space's options the cells were drawn under (Space.configured)

    @property
    def configured_space(self):
        """The space these cells were drawn from, with its options (DARTS: distinct_inputs)."""
        return spaces.get(self.space).configured(**self.options)

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
        atomic_save({"space": self.space, "archs": self.archs, "x": self.x, "edge_index": self.edge_index,
                     "options": self.options}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphSet:
        obj = safe_load(path, "graph dataset")
        missing = {"space", "archs", "x", "edge_index"} - set(obj)
        if missing:
            raise CheckpointError(f"graph dataset {path} lacks {sorted(missing)}; rerun stage 1 (rule build_graphs)")
        return cls(obj["space"], obj["archs"], obj["x"], obj["edge_index"], dict(obj.get("options") or {}))


def build_graph_set(space: Space | str, archs: torch.Tensor | None = None) -> GraphSet:
    """Graphs of `archs` (default: every cell of an enumerable space), in the space's canonical encoding;
    the space's options (`Space.configured`) they were drawn under are recorded."""
    sp = spaces.resolve(space)
    archs = sp.all_cells() if archs is None else sp.canonicalize(archs)  # the targets the graphs encode
    x, edge_index = sp.graphs(archs)
    return GraphSet(sp.name, archs, x, edge_index, sp.options)


def op_counts(graphs: GraphSet) -> dict[str, int]:
    """How often each op occurs over all edges of all cells."""
    sp = spaces.get(graphs.space)
    # A space whose choices mix ops with other things (DARTS: input choices) says which are ops.
    counts = torch.bincount(sp.op_choices(graphs.archs).flatten(), minlength=len(sp.ops))
    return {op: int(c) for op, c in zip(sp.ops, counts)}


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


def plot_op_counts(info: dict):
    """The stage-1 summary's op distribution as a bar chart (a matplotlib Figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.subplots()
    ax.bar(list(info["op_counts"]), list(info["op_counts"].values()))
    ax.set(ylabel="edges carrying the op", title=f"{info['space']}: op distribution over {info['num_archs']:,} cells")
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def stage_archs(space: Space, cfg: GraphsConfig | None = None) -> torch.Tensor | None:
    """The cells stage 1 encodes: None (every cell) for an enumerable space, else `cfg.num_archs` seeded draws
    of the configured `space`."""
    if space.enumerable:
        return None
    cfg = cfg or space.config("graphs")
    return space.sample_tensor(cfg.num_archs, torch.Generator().manual_seed(cfg.seed))


def write_stage(space: Space | str, out_pt: str | os.PathLike, out_json: str | os.PathLike, cfg: GraphsConfig | None = None) -> dict:
    """Stage 1: build the graphs of the configured space (all NB201 cells; `cfg`'s sample of DARTS, under the
    space's options), write the .pt and the JSON summary."""
    space = spaces.resolve(space)
    sampled = stage_archs(space, cfg)
    graphs = build_graph_set(space, sampled)
    graphs.save(out_pt)
    info = summary(graphs)
    if sampled is not None:  # how the sample was drawn, and how much of it is a non-degenerate cell
        cfg = cfg or space.config("graphs")
        info.update(sample_seed=cfg.seed, **graphs.options, num_valid=int(space.valid_mask(graphs.archs).sum()))
    write_json(info, out_json)
    return info

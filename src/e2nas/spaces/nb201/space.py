"""The NAS-Bench-201 space as a `Space`: every stage's questions about it, answered in one place."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from e2nas.spaces.base import Cell, Space
from e2nas.spaces.nb201 import cells
from e2nas.spaces.nb201.config import CONFIG_CLASSES


def complement_cell(prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
    """NB201's a_c: on edges where a_{t−1} and a_t agree a uniformly random other op, a_t's op elsewhere.

    A shift in [1, 5) per edge is drawn for every edge (a CPU generator, so no device sync and
    a fixed number of draws per step).
    """
    shifts = torch.randint(1, len(cells.OPS), (len(cur),), generator=generator).tolist()
    return tuple((c + s) % len(cells.OPS) if p == c else c for p, c, s in zip(prev, cur, shifts))


class Nb201Space(Space):
    """NAS-Bench-201: a cell is 6 op indices, one per edge; the decoder's logits are (6, 5); GDAS's
    and DARTS's α (6, 5), returned as argmax α per edge. Every cell is a result the benchmark lists
    (an all-`none` cell included), so `valid` draws are plain uniform draws."""

    name = cells.NAME
    ops = cells.OPS
    choice_sizes = cells.CHOICE_SIZES
    enumerable = True
    has_benchmark_table = True
    alpha_shape = (cells.NUM_EDGES, len(cells.OPS))
    supports_grouped_paths = True
    config_classes = CONFIG_CLASSES
    parameter_free_ops = ("none", "skip_connect", "avg_pool_3x3")

    def format(self, cell) -> str:
        return cells.format_arch(cell)

    def parse(self, text: str) -> Cell:
        return cells.parse_arch(text)

    def all_cells(self) -> Tensor:
        return cells.all_archs()

    def sample_tensor(self, n: int, generator: torch.Generator | None = None, valid: bool = False) -> Tensor:
        return cells.sample_archs(n, generator)

    def valid_mask(self, archs: Tensor) -> Tensor:
        return cells.valid_mask(archs)

    def num_cells(self) -> int:
        return cells.NUM_ARCHS

    def graphs(self, archs: Tensor) -> tuple[Tensor, Tensor]:
        return self.part("graphs").nb201_graph(archs)

    def complement(self, prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
        return complement_cell(prev, cur, generator)

    def derive(self, alpha: Tensor) -> Cell:
        return tuple(alpha.detach().argmax(dim=-1).tolist())

    def build_supernet(self, cfg, num_classes: int, in_channels: int) -> nn.Module:
        """The one-shot supernet, or with `supernet.split_edge` the few-shot one (a sub-supernet per op there)."""
        supernet = self.part("supernet")
        if cfg.split_edge is not None:
            return supernet.FewShotSuperNet(cfg.channels, cfg.cells_per_stage, num_classes, in_channels, cfg.split_edge)
        return supernet.SuperNet(cfg.channels, cfg.cells_per_stage, num_classes, in_channels)

    def grouped_losses(self, net: nn.Module, x: Tensor, y: Tensor, paths: list[Cell]) -> Tensor:
        """The losses of several single paths on one batch in one grouped pass (e2nas.spaces.nb201.grouped);
        on a few-shot supernet one pass per sub-supernet the paths run on."""
        grouped = self.part("grouped")
        if not hasattr(net, "subnets"):
            return grouped.grouped_losses(net, x, y, paths)
        losses: list[Tensor | None] = [None] * len(paths)
        for sub in dict.fromkeys(int(p[net.split_edge]) for p in paths):
            idx = [i for i, p in enumerate(paths) if int(p[net.split_edge]) == sub]
            for i, loss in zip(idx, grouped.grouped_losses(net.subnets[sub], x, y, [paths[i] for i in idx]).unbind()):
                losses[i] = loss
        return torch.stack(losses)

    def build_network(self, cell, cfg, num_classes: int, in_channels: int) -> nn.Module:
        return self.part("network").FixedNet(cell, cfg.channels, cfg.cells_per_stage, num_classes, in_channels)

    def draw(self, cell, ax=None, title: str | None = None):
        return self.part("drawing").draw_cell(cell, ax, title)

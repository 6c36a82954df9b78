"""The network of one NAS-Bench-201 cell, trained from scratch in stage 5: NB201's skeleton with the
cell's ops as ordinary modules (affine BatchNorm with running statistics, `none` edges dropped)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from e2nas.spaces.nb201.cells import EDGES, NUM_EDGES, NUM_NODES, OPS, parse_arch
from e2nas.spaces.nb201.ops import NONE, Skeleton, finish_node, make_op


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
            nodes.append(finish_node(total, x))
        return nodes[-1]



class FixedNet(Skeleton):
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

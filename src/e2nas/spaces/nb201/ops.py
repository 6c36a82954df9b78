"""NAS-Bench-201's candidate operations and its residual reduction block.

The ops follow NAS-Bench-201 (Dong & Yang, ICLR 2020): `none` (zero), `skip_connect`
(identity), `nor_conv_1x1` / `nor_conv_3x3` (ReLU-Conv-BN), `avg_pool_3x3` (stride 1, pad 1,
count_include_pad=False; computed as a separable box sum, `layers.AvgPool3x3`). Every cell op
keeps the channel count and the resolution.

One difference from the benchmark's code: its ReLUConvBN gives the convolution a bias when
the BatchNorm has no affine parameters (`bias=not affine`). A bias right before a BatchNorm is
removed again by the mean subtraction, so its gradient is zero up to rounding; we leave it out.
The fixed networks (affine BatchNorm) are unchanged by this, so their parameter counts match
NAS-Bench-201's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from e2nas.layers import AvgPool3x3, ReLUConvBN, batch_norm
from e2nas.spaces.nb201.cells import EDGES, NUM_NODES, OPS

NONE = OPS.index("none")
# Edge indices entering each node, in EDGES order.
INCOMING = {to: [e for e, (t, _) in enumerate(EDGES) if t == to] for to in range(1, NUM_NODES)}


class Zero(nn.Module):
    """The `none` op: zeros shaped like its input (as NAS-Bench-201 computes it)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int, affine: bool, track: bool) -> nn.Module:
    """One cell op on `channels` channels at stride 1."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine, track)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine, track)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"unknown NB201 op {name!r}; known: {', '.join(OPS)}")


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's reduction block: two ReLU-Conv-BN 3x3 (the first at stride 2) plus a shortcut.

    The shortcut is a 2x2 average pool followed by a 1x1 convolution (no BatchNorm), as in the
    benchmark.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine, track)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine, track)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def finish_node(total: Tensor | None, like: Tensor) -> Tensor:
    """A node's value: zeros when no edge feeds it, broadcast to a feature map when only scalars did."""
    if total is None:
        return torch.zeros_like(like)
    if total.dim() == 0:
        return torch.zeros_like(like) + total
    return total



class Skeleton(nn.Module):
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



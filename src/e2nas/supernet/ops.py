"""NAS-Bench-201's candidate operations and its residual reduction block.

The ops follow NAS-Bench-201 (Dong & Yang, ICLR 2020): `none` (zero), `skip_connect`
(identity), `nor_conv_1x1` / `nor_conv_3x3` (ReLU-Conv-BN), `avg_pool_3x3` (stride 1, pad 1,
count_include_pad=False). Every cell op keeps the channel count and the resolution.

One difference from the benchmark's code: its ReLUConvBN gives the convolution a bias when
the BatchNorm has no affine parameters (`bias=not affine`). A bias right before a BatchNorm is
removed again by the mean subtraction, so its gradient is zero up to rounding; we leave it out.
The fixed networks (affine BatchNorm) are unchanged by this, so their parameter counts match
NAS-Bench-201's.
"""

from __future__ import annotations

from torch import Tensor, nn

from e2nas.spaces.nb201 import OPS


def batch_norm(channels: int, affine: bool, track_running_stats: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=track_running_stats)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool, track: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            batch_norm(c_out, affine, track),
        )


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
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
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

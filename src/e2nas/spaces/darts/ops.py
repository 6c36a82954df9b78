"""The DARTS space's candidate operations, as DARTS's `operations.py` builds them.

  * `sep_conv_kxk`: two stacked blocks of ReLU → depthwise k×k (the first at the op's stride)
    → pointwise 1×1 → BatchNorm (padding k//2, no dilation);
  * `dil_conv_kxk`: one block ReLU → depthwise k×k at dilation 2 → pointwise 1×1 → BatchNorm;
  * `max_pool_3x3`, `avg_pool_3x3` (padding 1; the average ignores the padding);
  * `skip_connect`: identity at stride 1, FactorizedReduce at stride 2;
  * `none`: zeros at the op's output resolution.

Every op keeps the channel count C; stride 2 halves the resolution (reduction cells apply it to
ops on the two cell inputs). In the search network (`pool_bn=True`) a pooling op is followed by
a BatchNorm without affine parameters, as DARTS's MixedOp does, so pooled outputs are on the
scale of the convolutions' normalised ones; the evaluation network has no such BatchNorm.

One addition to DARTS: FactorizedReduce pads its offset half-grid at odd input sizes (DARTS's
fails there), so feature maps of odd size (28x28 images reduced twice) can be reduced again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.layers import AvgPool3x3, ReLUConvBN, batch_norm
from e2nas.spaces.darts.cells import OPS

__all__ = ["DilConv", "FactorizedReduce", "ReLUConvBN", "SepConv", "Zero", "make_op"]


class DilConv(nn.Sequential):
    """ReLU → depthwise conv (dilated) → pointwise conv → BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool, track: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            batch_norm(c_out, affine, track),
        )


class SepConv(nn.Sequential):
    """Two DilConv blocks at dilation 1; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool, track: bool):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine, track),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine, track),
        )


class Zero(nn.Module):
    """The `none` op: zeros at the output resolution (strided like the op it stands for)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two 1×1 stride-2 convs on grids offset by one pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True, track: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = batch_norm(c_out, affine, track)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        a, b = self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])
        if b.shape[-2:] != a.shape[-2:]:
            # Odd input size: the offset grid is one pixel short. DARTS would fail here; pad it
            # on the far side so odd maps (e.g. 7x7 from 28x28 images) reduce like the other ops.
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


def make_op(name: str, channels: int, stride: int, affine: bool = True, track: bool = True, pool_bn: bool = False) -> nn.Module:
    """One op of the DARTS space on `channels` channels; `pool_bn` adds the search network's BN after pools."""
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (
            nn.MaxPool2d(3, stride=stride, padding=1)
            if name == "max_pool_3x3"
            else AvgPool3x3(stride)  # nn.AvgPool2d(3, stride, 1, count_include_pad=False), faster
        )
        return nn.Sequential(pool, batch_norm(channels, False, track)) if pool_bn else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine, track)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(channels, channels, k, stride, k // 2, affine, track)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(channels, channels, k, stride, k - 1, 2, affine, track)
    raise ValueError(f"unknown DARTS op {name!r}; known: {', '.join(OPS)}")

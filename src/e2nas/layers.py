"""Building blocks both spaces' networks share, and the two measures of a network (parameters, FLOPs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def batch_norm(channels: int, affine: bool, track_running_stats: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine, track_running_stats=track_running_stats)


class ReLUConvBN(nn.Sequential):
    """ReLU → conv (no bias: the BatchNorm after it removes one) → BatchNorm, as NAS-Bench-201 and DARTS build it."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool, track: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            batch_norm(c_out, affine, track),
        )


def count_params(model: nn.Module) -> int:
    """Number of parameters (every element of every parameter tensor)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: Sequence[int], *args) -> int:
    """FLOPs of one forward pass at batch 1, as torch's FlopCounterMode counts them.

    That is 2 per multiply-accumulate of the convolutions and the linear layer (BatchNorm,
    ReLU and pooling are not counted; NAS-Bench-201's "FLOPs" column counts multiply-accumulates,
    i.e. half of this). `input_shape` is (C, H, W) or (1, C, H, W); `args` go to forward after
    the input (e.g. the cell of a SuperNet path).
    """
    shape = tuple(input_shape)
    shape = (1, *shape) if len(shape) == 3 else shape
    param = next(model.parameters())
    x = torch.zeros(shape, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x, *args)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

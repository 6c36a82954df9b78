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


def box_sum3x3(x: torch.Tensor) -> torch.Tensor:
    """Σ of each 3x3 window with zero padding 1 (stride 1), as shifted in-place adds on two copies:
    no padded copy, no slices for autograd to scatter back (the custom backward reuses this)."""
    rows = x.clone()
    rows[:, :, 1:] += x[:, :, :-1]
    rows[:, :, :-1] += x[:, :, 1:]
    out = rows.clone()
    out[..., 1:] += rows[..., :-1]
    out[..., :-1] += rows[..., 1:]
    return out


class _BoxMean3x3(torch.autograd.Function):
    """out = B(x) / n with B the zero-padded 3x3 box sum and n each window's cell count.

    B is its own adjoint (every window is symmetric about its centre), so ∂L/∂x = B(g / n): the
    backward is the forward's kernels again instead of autograd's per-slice zero-fill-and-copy.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(counts)
        return box_sum3x3(x).div_(counts)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (counts,) = ctx.saved_tensors
        return box_sum3x3(g / counts), None


class AvgPool3x3(nn.Module):
    """3x3 average pooling with padding 1 that does not count the padding (`nn.AvgPool2d(3, stride, 1,
    count_include_pad=False)`), as a separable box sum divided by each window's count.

    The same values (within float rounding) at a fraction of the CPU time of AvgPool2d, forward
    and backward (benchmarks/RESULTS.md): it was a third of an E2NAS step. Stride 2 keeps every
    other row and column of the stride-1 result, which is exactly where AvgPool2d's windows sit.
    """

    def __init__(self, stride: int = 1):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"AvgPool3x3 strides by 1 or 2, got {stride}")
        self.stride = stride
        self._counts: dict[tuple, torch.Tensor] = {}

    def counts(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        """Cells each window covers: 9 inside, 6 on an edge, 4 in a corner (cached per size, device and dtype)."""
        key = (h, w, like.device, like.dtype)
        if key not in self._counts:
            rows = torch.full((h,), 3.0, device=like.device, dtype=like.dtype)
            cols = torch.full((w,), 3.0, device=like.device, dtype=like.dtype)
            rows[[0, -1]] = 2.0 if h > 1 else 1.0
            cols[[0, -1]] = 2.0 if w > 1 else 1.0
            self._counts[key] = (rows[:, None] * cols[None, :]).view(1, 1, h, w)
        return self._counts[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _BoxMean3x3.apply(x, self.counts(x.shape[-2], x.shape[-1], x))
        return out if self.stride == 1 else out[:, :, ::2, ::2]


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

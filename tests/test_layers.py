"""Shared building blocks: the box-sum 3x3 average pool equals nn.AvgPool2d (values and gradients, float64)."""

import pytest
import torch
from torch import nn

from e2nas.layers import AvgPool3x3


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("shape", [(2, 3, 7, 7), (2, 3, 8, 8), (1, 2, 1, 5), (3, 4, 28, 28), (2, 2, 5, 2)])
def test_box_pool_equals_avgpool2d_without_padding_counts(stride, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    ours, theirs = AvgPool3x3(stride)(x), nn.AvgPool2d(3, stride, 1, count_include_pad=False)(x)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    upstream = torch.randn(theirs.shape, generator=g, dtype=torch.float64)
    (ga,), (gb,) = torch.autograd.grad(ours, x, upstream), torch.autograd.grad(theirs, x, upstream)
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-12)


def test_box_pool_keeps_channels_last_and_the_device_dtype_of_its_input():
    x = torch.randn(2, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(AvgPool3x3()(x), nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x))
    assert AvgPool3x3()(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="strides by 1 or 2"):
        AvgPool3x3(3)


@pytest.mark.parametrize("stride", [1, 2])
def test_box_pool_backward_is_differentiable_twice(stride):
    # The custom backward (the box sum of g / counts) is checked against finite differences, and
    # is itself differentiable (made of the same ops), as autograd's slices were.
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    pool = AvgPool3x3(stride)
    assert torch.autograd.gradcheck(pool, (x,))
    assert torch.autograd.gradgradcheck(pool, (x,))


def test_box_pool_leaves_its_input_and_the_upstream_gradient_alone():
    # The in-place adds run on copies: the input map and the gradient handed in stay as they were.
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    x0, g0 = x.detach().clone(), g.clone()
    AvgPool3x3()(x).backward(g)
    assert torch.equal(x.detach(), x0) and torch.equal(g, g0)
    torch.testing.assert_close(x.grad, torch.autograd.grad(nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x), x, g)[0])

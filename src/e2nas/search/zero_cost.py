"""Zero-cost scores of a cell's stand-alone network: its parameter count and synflow.

synflow (Tanaka et al. 2020, as Abdelfattah et al. 2021 score NB201 cells): the network at its
seeded initialisation with every BatchNorm removed (an all-ones input has batch statistics of zero,
which would zero the signal), in float64, every weight replaced by its absolute value; R = the sum
of the logits of one all-ones input; score = Σ over parameters of |θ ⊙ ∂R/∂θ|. With non-negative
weights and input every activation is non-negative, so ReLUs pass everything and R is the sum over
every input-to-output path of the product of its weights: a cell with more, wider paths scores more.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def without_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of `net` whose BatchNorm layers are identities."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    return net


def synflow(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Σ |θ ⊙ ∂R/∂θ| of `net` without BatchNorm, in float64, weights made non-negative, R = Σ logits of ones."""
    net = without_batchnorm(net).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    params = [p for p in net.parameters() if p.requires_grad]
    out = net(torch.ones(1, *input_shape, dtype=torch.float64))
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    with torch.no_grad():
        return float(sum((p * g).abs().sum() for p, g in zip(params, grads) if g is not None))

"""The straight-through term of a single-path supernet edge, as one autograd Function.

A single-path step in GDAS's form runs only the chosen op a of an edge and outputs

    h_a·y + Σ_{k≠a} h_k,        y = op_a(x),

with h straight-through weights (one-hot in value, the op probabilities' gradient: GDAS's hard
Gumbel sample, E2NAS's decoded cell). The caller passes the two scalars `chosen` = h_a and
`rest` = Σ_{k≠a} h_k (the supernets compute it as a row sum minus h_a: exactly 0 in value for
a one-hot h, with gradient 1 to every h_k, k≠a). With g = ∂L/∂out the gradients are

    ∂L/∂y = h_a·g,    ∂L/∂h_a = ⟨g, y⟩,    ∂L/∂rest = Σ g

(h is one pair of scalars for the whole batch, so both sums run over every element).

The forward is the autograd formula's own kernel, `addcmul(rest, h_a, y)`, so values are
bit-identical to it; the gain is in the backward. Autograd's addcmul backward builds the
gradient of the scalar h_a as g·(y·1), two full-size temporaries and kernels (y·1 is a real
multiply), before reducing it, and the gradient of y as g·(h_a·1); here h_a·g is the one
full-size result the backward has to produce, Σ g one reduction, and ⟨g, y⟩ one reduction
of the product g·y on a CPU (the same pairwise sum autograd's reduction runs, so the gradients
are autograd's bit for bit) or one dot product over the two maps as they lie in memory on other
devices (no temporary, one kernel instead of two on a launch-bound GPU; cuBLAS reduces it as a
tree). Not the dot on a CPU: BLAS's sdot accumulates nearly sequentially, a relative error of
~6e-5 at the paper's 10^6-element maps against ~1e-7 for the pairwise sum, for ~1% of a step.

On a CPU, where reading a scalar costs no device sync, the forward also checks for the common
case h_a = 1, Σ_{k≠a} h_k = 0 exactly (a one-hot h, as the searches build it): the output is then
y itself (returned as a view, no kernel) and the gradient to y is g itself (no multiply), both
exactly what the formula gives. That saved the addcmul and the multiply, ~10% of a CPU step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _flat_view(t: Tensor) -> Tensor | None:
    """t's elements as a 1-D view in memory order, when t is dense (contiguous or channels_last)."""
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return t.as_strided((t.numel(),), (1,))
    return None


def dense_dot(a: Tensor, b: Tensor) -> Tensor | None:
    """⟨a, b⟩ as one dot product over the memory of two maps dense in the same layout, else None."""
    if a.shape != b.shape or a.dtype != b.dtype or a.stride() != b.stride():
        return None
    fa, fb = _flat_view(a), _flat_view(b)
    return None if fa is None or fb is None else torch.dot(fa, fb)


def inner(a: Tensor, b: Tensor) -> Tensor:
    """⟨a, b⟩ = Σ a·b over every element, as a 0-dim tensor: the product's pairwise sum on a CPU,
    a dot product without temporary elsewhere when both maps are dense in one layout."""
    if a.device.type != "cpu":
        dot = dense_dot(a, b)
        if dot is not None:
            return dot
    return (a * b).sum()


class StraightThroughTerm(torch.autograd.Function):
    """out = chosen·y + rest for a feature map y and scalars chosen (h_a), rest (Σ_{k≠a} h_k).

    Backward: h_a·g to y, ⟨g, y⟩ to chosen, Σ g to rest (see the module docstring). Differentiable
    twice (the backward is made of differentiable ops on the saved y and h_a).
    """

    @staticmethod
    def forward(ctx, y: Tensor, chosen: Tensor, rest: Tensor) -> Tensor:
        if chosen.numel() != 1 or rest.numel() != 1:
            raise ValueError(f"straight-through h_a and rest must be scalars, got {tuple(chosen.shape)}, {tuple(rest.shape)}")
        ctx.save_for_backward(y, chosen)
        ctx.rest_shape, ctx.rest_dtype = rest.shape, rest.dtype
        ctx.unit = y.device.type == "cpu" and chosen.item() == 1.0 and rest.item() == 0.0
        # 1·y + 0 is y exactly (up to the sign of a zero): no kernel for the one-hot case.
        return y.view_as(y) if ctx.unit else torch.addcmul(rest, chosen, y)

    @staticmethod
    def backward(ctx, g: Tensor):
        y, chosen = ctx.saved_tensors
        need_y, need_chosen, need_rest = ctx.needs_input_grad
        grad_y = (g if ctx.unit else g * chosen) if need_y else None
        grad_chosen = inner(g, y).reshape(chosen.shape).to(chosen.dtype) if need_chosen else None
        grad_rest = g.sum().reshape(ctx.rest_shape).to(ctx.rest_dtype) if need_rest else None
        return grad_y, grad_chosen, grad_rest


def straight_through_term(y: Tensor, chosen: Tensor, rest: Tensor) -> Tensor:
    """h_a·y + Σ_{k≠a} h_k with the gradients of that formula (`StraightThroughTerm`)."""
    return StraightThroughTerm.apply(y, chosen, rest)

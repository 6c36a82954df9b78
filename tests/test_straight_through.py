"""The straight-through term as one autograd Function: h_a·y + Σ_{k≠a} h_k, its gradients, and the
supernets that use it (values and gradients equal to the autograd formula's, in float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import e2nas.spaces.darts.supernet as darts_supernet
import e2nas.spaces.nb201.supernet as nb201_supernet
from e2nas.spaces import darts, nb201
from e2nas.straight_through import StraightThroughTerm, dense_dot, inner, straight_through_term

torch.set_num_threads(1)


def old_nb201(y, chosen, rest):  # the NB201 supernet's formula before the Function
    return torch.addcmul(rest, chosen, y)


def old_darts(y, chosen, rest):  # the DARTS supernet's formula before the Function
    return chosen * y + rest


def scalars(seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((), generator=g, dtype=dtype).requires_grad_() for _ in range(2)]


@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck(channels_last):
    y = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    y.requires_grad_()
    chosen, rest = scalars(1)
    assert torch.autograd.gradcheck(StraightThroughTerm.apply, (y, chosen, rest))
    assert torch.autograd.gradgradcheck(StraightThroughTerm.apply, (y, chosen, rest))


def test_value_and_gradients_are_the_formula():
    y = torch.randn(3, 4, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    chosen, rest = scalars(3)
    g = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    out = straight_through_term(y, chosen, rest)
    torch.testing.assert_close(out, chosen * y + rest, rtol=1e-15, atol=1e-15)
    gy, gc, gr = torch.autograd.grad(out, (y, chosen, rest), g)
    torch.testing.assert_close(gy, chosen * g, rtol=0, atol=0)
    torch.testing.assert_close(gc, (g * y).sum(), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(gr, g.sum(), rtol=0, atol=0)
    assert gc.shape == gr.shape == ()
    # Only the gradients asked for are computed; a one-hot h (1, 0) gives y itself.
    (gc_only,) = torch.autograd.grad(straight_through_term(y, chosen, rest), (chosen,), g)
    torch.testing.assert_close(gc_only, gc, rtol=0, atol=0)
    one, zero = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    assert torch.equal(straight_through_term(y, one, zero), y)
    with pytest.raises(ValueError, match="scalars"):
        straight_through_term(y, torch.ones(2, dtype=torch.float64), rest)


def test_a_one_hot_h_on_a_cpu_runs_no_kernel_for_the_value_or_the_gradient_to_y():
    # h_a = 1, Σ_{k≠a} h_k = 0 exactly: the output is y's own memory and y receives g itself;
    # the scalars' gradients are still ⟨g, y⟩ and Σ g. Any other h takes the general formula.
    gen = torch.Generator().manual_seed(15)
    y0, g = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
    y = y0.clone().requires_grad_()
    mid = y * 1.0  # a non-leaf, as an op's output is
    one, zero = torch.tensor(1.0, requires_grad=True), torch.tensor(0.0, requires_grad=True)
    out = straight_through_term(mid, one, zero)
    assert out.data_ptr() == mid.data_ptr()
    seen = []
    mid.register_hook(lambda grad: seen.append(grad))
    gy, gc, gr = torch.autograd.grad(out, (y, one, zero), g)
    assert seen[0].data_ptr() == g.data_ptr()
    assert torch.equal(gy, g)
    torch.testing.assert_close(gc, (g * y0).sum(), rtol=0, atol=0)
    torch.testing.assert_close(gr, g.sum(), rtol=0, atol=0)
    for chosen, rest in ((1.0, 1e-30), (1.0 - 2**-24, 0.0)):
        c, r = torch.tensor(chosen, requires_grad=True), torch.tensor(rest, requires_grad=True)
        out = straight_through_term(mid, c, r)
        assert out.data_ptr() != mid.data_ptr()
        assert torch.equal(out, torch.addcmul(r, c, mid))
        assert torch.equal(torch.autograd.grad(out, mid, g, retain_graph=True)[0], g * c)


@pytest.mark.parametrize("formula", [old_nb201, old_darts])
def test_float32_gradients_are_autograds_bit_for_bit(formula):
    # On a CPU ⟨g, y⟩ is the pairwise sum of g·y, the reduction autograd runs for the broadcast scalars.
    gen = torch.Generator().manual_seed(5)
    y0, g = torch.randn(8, 16, 32, 32, generator=gen), torch.randn(8, 16, 32, 32, generator=gen)
    grads = []
    for f in (formula, straight_through_term):
        y = y0.clone().requires_grad_()
        chosen, rest = (torch.tensor(v).requires_grad_() for v in (0.999, 0.25))
        grads.append(torch.autograd.grad(f(y, chosen, rest), (y, chosen, rest), g))
    for old, new in zip(*grads):
        assert torch.equal(old, new)


def test_dense_dot_follows_the_memory_layout():
    gen = torch.Generator().manual_seed(6)
    a, b = torch.randn(4, 6, 5, 7, dtype=torch.float64, generator=gen), torch.randn(4, 6, 5, 7, dtype=torch.float64, generator=gen)
    want = (a * b).sum()
    torch.testing.assert_close(dense_dot(a, b), want, rtol=1e-13, atol=0)
    cl = torch.channels_last
    torch.testing.assert_close(dense_dot(a.contiguous(memory_format=cl), b.contiguous(memory_format=cl)), want, rtol=1e-13, atol=0)
    # Layouts that differ, or a map that is not dense (an expanded gradient): no dot, the product's sum.
    assert dense_dot(a, b.contiguous(memory_format=cl)) is None
    assert dense_dot(a, torch.ones(()).double().expand_as(a)) is None
    assert dense_dot(a[:, :, ::2], b[:, :, ::2]) is None
    torch.testing.assert_close(inner(a, b.contiguous(memory_format=cl)), want, rtol=1e-13, atol=0)
    torch.testing.assert_close(inner(a[:, :, ::2], b[:, :, ::2]), (a[:, :, ::2] * b[:, :, ::2]).sum(), rtol=1e-13, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the dot-product path runs on a CUDA device")
def test_cuda_gradients_are_the_formula():
    y = torch.randn(4, 8, 6, 6, dtype=torch.float64, device="cuda").requires_grad_()
    chosen, rest = (t.detach().cuda().requires_grad_() for t in scalars(14))
    assert torch.autograd.gradcheck(StraightThroughTerm.apply, (y, chosen, rest))
    g = torch.randn_like(y)
    new = torch.autograd.grad(straight_through_term(y, chosen, rest), (y, chosen, rest), g)
    old = torch.autograd.grad(old_nb201(y, chosen, rest), (y, chosen, rest), g)
    for a, b in zip(old, new):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ the supernets against the old formula


def grads_of(run, inputs):
    """(value, gradients of a fixed functional of it) w.r.t. every tensor of `inputs` (None where unused)."""
    out = run()
    w = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(7))
    loss = (out * w).sum() + F.cross_entropy(out, torch.arange(out.shape[0]) % out.shape[1])
    return out.detach(), torch.autograd.grad(loss, inputs, allow_unused=True)


def assert_same(old, new, exact_value):
    (v_old, g_old), (v_new, g_new) = old, new
    if exact_value:
        assert torch.equal(v_old, v_new)
    else:
        torch.testing.assert_close(v_new, v_old, rtol=1e-13, atol=1e-13)
    assert len(g_old) == len(g_new)
    for i, (a, b) in enumerate(zip(g_old, g_new)):
        assert (a is None) == (b is None), i
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-11, atol=1e-13, msg=f"gradient {i}")


def compare(monkeypatch, module, old_formula, run, inputs, exact_value):
    """`run` with the Function, and with `old_formula` in its place; how often the Function ran."""
    calls = []

    def counted(y, chosen, rest):
        calls.append(y.shape)
        return straight_through_term(y, chosen, rest)

    monkeypatch.setattr(module, "straight_through_term", counted)
    new = grads_of(run, inputs)
    monkeypatch.setattr(module, "straight_through_term", old_formula)
    old = grads_of(run, inputs)
    assert_same(old, new, exact_value)
    return len(calls)


def hard(logits, index):
    """One-hot in value, the probabilities' gradient (the search's h)."""
    probs = logits.softmax(-1)
    return F.one_hot(torch.as_tensor(index), logits.shape[-1]).to(logits.dtype) - probs.detach() + probs


NB201_NONE, NB201_SKIP, NB201_C1, NB201_C3, NB201_POOL = range(5)
NB201_CELLS = [
    (NB201_C3, NB201_C1, NB201_POOL, NB201_SKIP, NB201_C3, NB201_C1),
    (NB201_C3, NB201_NONE, NB201_POOL, NB201_NONE, NB201_NONE, NB201_C1),  # `none` edges
    (NB201_NONE,) * 6,  # nothing runs: the output is the terms' Σ_{k≠a} h_k alone
    *nb201.SPACE.sample(3, torch.Generator().manual_seed(8)),
]


@pytest.fixture(scope="module")
def nb201_net():
    torch.manual_seed(0)
    return nb201_supernet.SuperNet(C=4, N=1, num_classes=5, in_channels=3).double()


@pytest.mark.parametrize("cell", NB201_CELLS)
@pytest.mark.parametrize("soft", [False, True])
def test_nb201_supernet_equals_the_old_formula(monkeypatch, nb201_net, cell, soft):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=gen).requires_grad_()
    logits = torch.randn(nb201.NUM_EDGES, len(nb201.OPS), dtype=torch.float64, generator=gen).requires_grad_()
    params = list(nb201_net.parameters())
    # soft: h = the probabilities themselves (h_a ≠ 1, Σ_{k≠a} h_k ≠ 0): the general formula.
    run = lambda: nb201_net(x, cell, logits.softmax(-1) if soft else hard(logits, cell))  # noqa: E731
    n = compare(monkeypatch, nb201_supernet, old_nb201, run, [x, logits, *params], exact_value=True)
    assert n == len(nb201_net.search_cells()) * sum(a != NB201_NONE for a in cell)


DARTS_V2 = darts.parse_arch(darts.DARTS_V2)


def with_none(arch):
    """DARTS-V2 with node 1 of the normal cell fed only by `none`, one `none` slot in the reduction cell."""
    arch = list(arch)
    for cell, node, slot in ((0, 1, 0), (0, 1, 1), (1, 2, 1)):
        arch[darts.position(cell, node, slot) + 1] = darts.NONE
    return tuple(arch)


DARTS_CELLS = [DARTS_V2, with_none(DARTS_V2), *darts.SPACE.sample(2, torch.Generator().manual_seed(10))]


@pytest.fixture(scope="module")
def darts_net():
    torch.manual_seed(0)
    return darts_supernet.DartsSuperNet(C=4, layers=3, num_classes=5, in_channels=3).double()


def darts_inputs(seed, shape):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64, generator=gen).requires_grad_()
    logits = torch.randn(shape, dtype=torch.float64, generator=gen)
    if shape == (darts.NUM_POSITIONS, 8):  # the decoder's padded layout: logits off each position's options masked
        logits = logits.masked_fill(~darts_supernet.VALID, -1e4)
    return x, logits.requires_grad_()


@pytest.mark.parametrize("arch", DARTS_CELLS)
@pytest.mark.parametrize("soft", [False, True])
def test_darts_supernet_path_equals_the_old_formula(monkeypatch, darts_net, arch, soft):
    x, logits = darts_inputs(11, (darts.NUM_POSITIONS, 8))
    params = list(darts_net.parameters())
    run = lambda: darts_net(x, arch, logits.softmax(-1) if soft else hard(logits, arch))  # noqa: E731
    # One-hot h: Σ_{k≠a} h_k is exactly 0, so addcmul's value is the old coef·y + rest's exactly.
    n = compare(monkeypatch, darts_supernet, old_darts, run, [x, logits, *params], exact_value=not soft)
    slots = [(arch[p], arch[p + 1]) for p in range(0, darts.NUM_POSITIONS, 2)]
    per_type = [sum(op != darts.NONE for _, op in slots[t * 8 : (t + 1) * 8]) for t in range(2)]
    assert n == sum(per_type[int(c.reduction)] for c in darts_net.cells)


@pytest.mark.parametrize("seed", [12, 13])
@pytest.mark.parametrize("soft", [False, True])
def test_darts_supernet_edges_equal_the_old_formula(monkeypatch, darts_net, seed, soft):
    x, logits = darts_inputs(seed, (2, darts_supernet.NUM_EDGES, len(darts.OPS)))
    ops = torch.randint(len(darts.OPS), (darts_supernet.NUM_EDGE_OPS,), generator=torch.Generator().manual_seed(seed))
    ops[:3] = darts.NONE  # a few `none` edges for sure
    ops = tuple(ops.tolist())
    params = list(darts_net.parameters())
    index = torch.tensor(ops).reshape(2, darts_supernet.NUM_EDGES)
    run = lambda: darts_net(x, ops, logits.softmax(-1) if soft else hard(logits, index))  # noqa: E731
    n = compare(monkeypatch, darts_supernet, old_darts, run, [x, logits, *params], exact_value=not soft)
    per_type = [sum(o != darts.NONE for o in ops[t * 14 : (t + 1) * 14]) for t in range(2)]
    assert n == sum(per_type[int(c.reduction)] for c in darts_net.cells)

"""search.estimator: how E2NAS's arch half reads ∂L_val/∂P (straight-through, the paper's; swap, the exact gradient of
the expected loss at the sampled cell)."""

from __future__ import annotations

import pytest
import torch

from e2nas.search.harness import straight_through
from search_helpers import NUM_OPS, batches, make_e2nas


def one_step(**cfg):
    method = make_e2nas(**cfg)
    method.start_epoch(0, 2)
    xw, yw, xa, ya = batches()
    method.step(xw, yw, xa, ya)
    return method, xa, ya


def decoder_jacobian(method, z):
    return torch.autograd.functional.jacobian(
        lambda v: torch.softmax(method.decoder.decode_logits(v[None])[0] / method.tau, -1), z)


def swap_table(method, x, y, cell):
    """L of `cell` with each edge swapped to each op, computed here path by path on the step's supernet."""
    table = torch.empty(len(cell), NUM_OPS)
    with torch.no_grad():
        for edge in range(len(cell)):
            for op in range(NUM_OPS):
                table[edge, op] = method.harness.path_loss(x, y, cell[:edge] + (op,) + cell[edge + 1:])
    return table


def test_swap_gradient_is_the_swapped_cells_losses_through_the_decoder():
    """∂L/∂μ = Σ_{e,o} L(cell with e→o) ∂P[e,o]/∂μ, the losses measured here one path at a time: fails if swap fell
    back to the straight-through gradient (whose unchosen ops of an edge share one value) or bypassed the decoder."""
    method, xa, ya = one_step(estimator="swap")
    z, cell = method.last["z"], method.prev
    table = swap_table(method, xa, ya, cell)
    expected = torch.einsum("po,pod->d", table, decoder_jacobian(method, z))
    assert expected.abs().sum() > 0
    torch.testing.assert_close(method.last["grad_val"], expected, rtol=1e-4, atol=1e-8)
    # The value stays L_val of the sampled cell itself.
    assert method.last["loss_val"].item() == pytest.approx(table[0, cell[0]].item(), rel=1e-5)
    # The table tells the unchosen ops apart (what the straight-through gradient cannot: next test).
    unchosen = [[table[e, o].item() for o in range(NUM_OPS) if o != cell[e]] for e in range(len(cell))]
    assert all(max(row) - min(row) > 1e-6 for row in unchosen)


def test_straight_through_gives_every_unchosen_op_of_an_edge_one_gradient():
    """The finding swap answers (benchmarks/RESULTS.md, estimator_bias): on the real supernet the straight-through
    ∂L/∂P is one number for all unchosen ops of an edge, so it can say leave or stay but never which op to take."""
    method, xa, ya = one_step(estimator="straight-through")
    probs, cell = method.last["probs"], method.prev
    leaf = probs.clone().requires_grad_()
    index = torch.tensor(cell).reshape(probs.shape[:-1])
    (grad,) = torch.autograd.grad(method.validation_loss(xa, ya, cell, straight_through(leaf, index)), leaf)
    for edge, chosen in enumerate(cell):
        others = torch.stack([grad[edge, o] for o in range(NUM_OPS) if o != chosen])
        torch.testing.assert_close(others, others[:1].expand_as(others))


def test_swap_moves_mu_and_sigma_and_keeps_the_other_terms():
    """The estimator changes only g_val: the novelty and manifold terms and σ's update still run."""
    method, *_ = one_step(estimator="swap", manifold_weight=0.3)
    last = method.last
    assert last["grad_val"].abs().sum() > 0 and last["grad_log_sigma"].abs().sum() > 0
    assert last["grad_novelty"].abs().sum() > 0 and last["grad_manifold"].abs().sum() > 0


def test_swap_is_the_default_and_e2nas_paper_takes_the_papers_step():
    """`e2nas` runs the adopted defaults; `e2nas-paper` the paper's straight-through estimator and sampled weight paths,
    whatever `search` sets (the study runs both)."""
    from e2nas.search.config import SearchConfig
    from e2nas.search.e2nas import E2NAS

    assert SearchConfig().estimator == "swap" and SearchConfig().weight_paths == "frozen"
    for cfg, paper in [({}, False), ({"weight_paths": "fair"}, True), ({}, True)]:
        base = make_e2nas(**cfg)
        method = E2NAS(base.harness, base.decoder, base.mu.detach(), paper_step=paper)
        assert (method.estimator, method.weight_paths) == (("straight-through", "sampled") if paper
                                                            else ("swap", cfg.get("weight_paths", "sampled")))


def test_an_unknown_estimator_is_refused_by_name():
    from e2nas.search.config import SearchConfig

    with pytest.raises(ValueError, match="estimator"):
        SearchConfig(estimator="reinforce")

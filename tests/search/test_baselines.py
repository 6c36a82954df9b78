"""GDAS, DARTS and RSPS in the shared harness, run as their authors run them."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from e2nas.search import Harness
from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search.harness import straight_through
from e2nas.spaces import nb201
from search_helpers import NUM_OPS, batches, images, tiny_cfg, tiny_supernet

# ---------------------------------------------------------------- baselines (unit)


def test_straight_through_is_one_hot_in_value_with_the_softmax_gradient():
    logits = torch.randn(6, 5, requires_grad=True)
    probs = torch.softmax(logits, -1)
    h = straight_through(probs, probs.argmax(-1))
    assert torch.equal(h.detach(), F.one_hot(probs.argmax(-1), 5).float())
    (g1,) = torch.autograd.grad((h * torch.arange(5.0)).sum(), logits)
    (g2,) = torch.autograd.grad((torch.softmax(logits, -1) * torch.arange(5.0)).sum(), logits)
    assert torch.allclose(g1, g2)


def test_gdas_darts_rsps_steps_update_what_they_should():
    xw, yw, xa, ya = batches()
    for cls in (GDAS, DARTS, RSPS):
        net = tiny_supernet()
        harness = Harness(net, tiny_cfg(), "cpu", 0, *images(16, seed=99), space="nb201")
        method = cls(harness)
        method.start_epoch(0, 2)
        before = copy.deepcopy(net.state_dict())
        alpha = method.alpha.detach().clone() if hasattr(method, "alpha") else None
        method.step(xw, yw, xa, ya)
        assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items()), cls.name
        if alpha is not None:
            assert not torch.equal(alpha, method.alpha.detach()), cls.name
            assert method.epoch_extras()["alpha_entropy"] == pytest.approx(math.log(NUM_OPS), abs=1e-2)  # α ≈ 0
        cell, _ = method.epoch_arch()
        assert nb201.parse_arch(nb201.format_arch(cell)) == tuple(cell)


def test_gdas_draws_a_fresh_sample_for_each_half_and_redraws_non_finite_ones():
    harness = Harness(tiny_supernet(), tiny_cfg(), "cpu", 0, *images(16, seed=99), space="nb201")
    method = GDAS(harness)
    seen = []
    real_train, real_loss = harness.train_paths, harness.path_loss
    harness.train_paths = lambda x, y, terms, probe=None: seen.append(("w", terms[0][0])) or real_train(x, y, terms, probe=probe)
    # path_loss with straight-through weights is the architecture half's (the weight half's has none).
    harness.path_loss = lambda x, y, cell, weights=None: (weights is not None and seen.append(("a", tuple(cell)))) or real_loss(
        x, y, cell, weights
    )
    method.start_epoch(0, 2)  # τ = 10: draws are nearly uniform
    for _ in range(5):
        method.step(*batches())
    pairs = list(zip(seen[0::2], seen[1::2]))
    assert all(w[0] == "w" and a[0] == "a" for w, a in pairs)
    assert any(w[1] != a[1] for w, a in pairs)  # the halves' draws differ

    real_sample, calls = method.gumbel_sample, {"n": 0}

    def first_draw_broken():
        probs, ok = real_sample()
        calls["n"] += 1
        return (probs, ok & False) if calls["n"] == 1 else (probs, ok)

    method.gumbel_sample = first_draw_broken
    method.step(*batches())
    assert method.redraws == 1 and calls["n"] == 4  # the broken pair was drawn again
    assert method.epoch_extras()["gumbel_redraws"] == 1


def test_rsps_scores_fresh_cells_on_fresh_batches_each_epoch():
    x, y = images(64, seed=99)
    harness = Harness(tiny_supernet(), tiny_cfg(rsps_num_candidates=4, rsps_eval_images=16), "cpu", 0, space="nb201")
    harness.set_eval(x[:16], y[:16], pool=(x, y))
    method = RSPS(harness)
    import e2nas.warmup as warmup

    scored, real = [], warmup.evaluate_path
    warmup.evaluate_path = lambda net, xb, yb, arch, batch_size=256: scored.append(yb.clone()) or real(net, xb, yb, arch, batch_size)
    try:
        first, _ = method.epoch_arch()
        first_candidates = list(method.candidates)
        second, _ = method.epoch_arch()
    finally:
        warmup.evaluate_path = real
    assert len(scored) == 8 and all(len(b) == 16 for b in scored)
    assert first_candidates != method.candidates  # fresh cells at each evaluation
    assert len({tuple(b.tolist()) for b in scored}) == 8  # each candidate on its own draw of images
    assert first in first_candidates and second in method.candidates



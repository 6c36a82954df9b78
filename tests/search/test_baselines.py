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


# ---------------------------------------------------------------- each baseline's step, as E2NAS's is tested
# (issue 29: which batch each half sees, how many draws, which τ; each test named in tests/search/test_mutants.py)


def _harness(**cfg):
    return Harness(tiny_supernet(), tiny_cfg(**cfg), "cpu", 0, *images(16, seed=99), space="nb201")


def _replay(gen: torch.Generator) -> torch.Generator:
    replay = torch.Generator()
    replay.set_state(gen.get_state())
    return replay


def test_gdas_step_trains_weights_on_the_weight_batch_then_alpha_on_the_arch_batch_with_two_draws_at_tau(monkeypatch):
    """One GDAS step: exactly two Gumbel draws of α's shape from the noise stream (the weight half's, then the
    architecture half's), the weight half on (xw, yw) with the first draw's cell, the architecture half on
    (xa, ya) with straight-through weights of softmax((log_softmax α + g₂)/τ), τ the epoch's linear τ."""
    import e2nas.search.baselines as baselines

    harness = _harness(epochs=3, gdas_tau_max=10.0, gdas_tau_min=0.1)
    method = GDAS(harness)
    events, given = [], []
    real_train, real_loss, real_st = harness.train_paths, harness.path_loss, baselines.straight_through
    harness.train_paths = lambda x, y, terms, probe=None: events.append(("weights", x, y, terms)) or real_train(x, y, terms, probe=probe)
    # path_loss with straight-through weights is the architecture half's (the weight half's has none).
    harness.path_loss = lambda x, y, cell, weights=None: (weights is not None and events.append(("arch", x, y, tuple(cell)))) or real_loss(
        x, y, cell, weights)
    monkeypatch.setattr(baselines, "straight_through", lambda probs, index: given.append(probs.detach().clone()) or real_st(probs, index))
    for epoch, tau in enumerate([10.0, 5.05, 0.1]):
        assert method.start_epoch(epoch, 3)["tau"] == pytest.approx(tau) and method.tau == pytest.approx(tau)
        events.clear(), given.clear()
        xw, yw, xa, ya = batches()
        replay = _replay(harness.gens["noise"])
        logp = torch.log_softmax(method.alpha.detach(), -1)
        draws = [-torch.empty_like(method.alpha).exponential_(generator=replay).log() for _ in range(2)]
        method.step(xw, yw, xa, ya)
        assert torch.equal(harness.gens["noise"].get_state(), replay.get_state())  # two draws, no more
        (_, x1, y1, terms), (_, x2, y2, cell_a) = events
        assert [e[0] for e in events] == ["weights", "arch"]
        assert x1 is xw and y1 is yw and x2 is xa and y2 is ya
        assert terms == [(tuple(((logp + draws[0]) / tau).argmax(-1).tolist()), 1.0)]  # the first draw picks the weight path
        want = torch.softmax((logp + draws[1]) / tau, -1)  # the second draw, at this epoch's τ
        torch.testing.assert_close(given[0], want)
        assert cell_a == tuple(want.argmax(-1).tolist())


def test_darts_step_mixes_at_softmax_alpha_weights_on_the_weight_batch_then_alpha_on_the_arch_batch():
    """One DARTS step: the mixture at softmax(α) (τ = 1), detached, trains the weights on (xw, yw); then the
    mixture's loss on (xa, ya), with gradient to α, updates α. No random draw at all."""
    harness = _harness()
    method = DARTS(harness)
    net = harness.net
    calls, losses = [], []
    real_mix, real_update = net.forward_mixture, method.arch_update

    def forward_mixture(x, probs):
        out = real_mix(x, probs)
        calls.append((x, probs, out))
        return out

    net.forward_mixture = forward_mixture
    method.arch_update = lambda loss: losses.append(loss) or real_update(loss)
    states = {k: g.get_state() for k, g in harness.gens.items()}
    method.start_epoch(0, 2)
    xw, yw, xa, ya = batches()
    alpha = method.alpha.detach().clone()
    method.step(xw, yw, xa, ya)
    (x1, p1, _), (x2, p2, logits) = calls
    assert x1 is xw and x2 is xa
    torch.testing.assert_close(p1, torch.softmax(alpha, -1)) and not p1.requires_grad
    torch.testing.assert_close(p2.detach(), torch.softmax(alpha, -1)) and p2.requires_grad
    torch.testing.assert_close(losses[0], F.cross_entropy(logits, ya))
    assert not torch.allclose(F.cross_entropy(logits, ya), F.cross_entropy(logits, yw))  # the labels tell the batches apart
    assert all(torch.equal(g.get_state(), states[k]) for k, g in harness.gens.items())


def test_rsps_step_trains_one_uniform_draw_on_the_weight_batch_and_never_reads_the_arch_batch():
    """One RSPS step: one cell drawn from the choice stream, trained on (xw, yw); no architecture half (the arch
    batch is not touched), no noise drawn, no τ."""
    harness = _harness()
    method = RSPS(harness)
    seen, arch_reads = [], []
    real_train, real_loss = harness.train_paths, harness.path_loss
    harness.train_paths = lambda x, y, terms, probe=None: seen.append((x, y, terms)) or real_train(x, y, terms, probe=probe)
    harness.path_loss = lambda x, y, cell, weights=None: (weights is not None and arch_reads.append(x)) or real_loss(x, y, cell, weights)
    noise = harness.gens["noise"].get_state()
    assert method.start_epoch(0, 2).get("tau") is None
    for _ in range(3):
        xw, yw, xa, ya = batches()
        replay = _replay(harness.gens["choice"])
        want = harness.space.sample(1, replay)[0]
        seen.clear()
        method.step(xw, yw, xa, ya)
        (x, y, terms), = seen
        assert x is xw and y is yw and terms == [(tuple(want), 1.0)]
        assert torch.equal(harness.gens["choice"].get_state(), replay.get_state())  # one draw per step
    assert all(x is not xa for x in arch_reads) and torch.equal(harness.gens["noise"].get_state(), noise)


def test_the_forgetting_probe_reads_the_previous_cell_just_before_and_just_after_the_weight_step():
    """forget_before is the probe cell's accuracy before the weight step, forget_after after it: fails if
    "before" is read after the step (then forgetting ≡ 0)."""
    harness = _harness(w_lr=2.0)  # a step large enough to change the probe batch's predictions
    cell, probe = (3, 3, 2, 3, 1, 2), (1, 3, 3, 1, 2, 3)
    xw, yw, _, _ = batches()
    before = harness.probe_accuracy(probe).item()
    reference = copy.deepcopy(harness)
    reference.train_paths(xw, yw, [(cell, 1.0)])
    after = reference.probe_accuracy(probe).item()
    assert before != after  # the check has teeth
    harness.train_paths(xw, yw, [(cell, 1.0)], probe=probe)
    stats = harness.stats.read()
    assert stats["forget_before"] == pytest.approx(before) and stats["forget_after"] == pytest.approx(after)


@pytest.mark.parametrize("cls", [GDAS, RSPS], ids=["gdas", "rsps"])
def test_baselines_probe_the_previous_weight_steps_cell(cls):
    harness = _harness()
    method = cls(harness)
    probed, cells = [], []
    real_probe, real_train = harness.probe_accuracy, harness.train_paths
    harness.probe_accuracy = lambda cell: probed.append(tuple(cell)) or real_probe(cell)
    harness.train_paths = lambda x, y, terms, probe=None: cells.append(terms[0][0]) or real_train(x, y, terms, probe=probe)
    method.start_epoch(0, 2)
    method.step(*batches())
    method.step(*batches(), probe=True)
    assert probed == [cells[0]] * 2 and cells[0] != cells[1]  # a_{t−1}, before and after the step on a_t

"""Stage 4's method: E2NAS (decoder gradient, exploration, complementation, latent terms).

Tiny sizes throughout (C=4, N=1, 8x8 images, batch 8–16). Each test is built to fail on one
shortcut: a decoder that is bypassed or never differentiated, a novelty without gradient, at
the wrong point or against the wrong archive, complementation losses taken with `.item()`, a
schedule or bound that is not applied, a step that draws two samples or runs its halves in the
wrong order or on the wrong batch (tests/search/test_mutants.py applies each and checks). The known
optimum test is the method's bar: it must steer μ to a target cell with the default schedules.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.search import METHODS, Harness, SearchConfig
from e2nas.search.e2nas import E2NAS, GradientNormaliser, complement_terms, encode_cell
from e2nas.search.harness import GENERATORS, EpochStats, straight_through
from e2nas.search.novelty import kde_novelty, nearest_neighbour_median
from e2nas.search.schedules import eta_at, geometric_tau
from e2nas.spaces import nb201
from e2nas.spaces.nb201 import complement_cell
from e2nas.training import stage_generators
from search_helpers import LATENT, NUM_OPS, LinearCost, batches, make_e2nas, tiny_cfg, tiny_supernet

# ---------------------------------------------------------------- schedules, stats, config


def test_methods_are_the_pipeline_names():
    assert set(METHODS) == {"e2nas", "e2nas-paper", "e2nas-noexplore", "e2nas-nocomplement", "gdas", "darts", "rsps", "random-search", "params", "synflow"}


def test_schedules_explore_early_exploit_late():
    assert eta_at(0, 10, 10.0) > 0.99 and eta_at(9, 10, 10.0) < 0.01
    assert geometric_tau(0, 5, 10.0, 0.1) == pytest.approx(10.0)
    assert geometric_tau(4, 5, 10.0, 0.1) == pytest.approx(0.1)
    assert geometric_tau(2, 5, 10.0, 0.1) == pytest.approx(1.0)  # geometric: the middle is the geometric mean


def test_default_latent_settings():
    cfg = SearchConfig()
    assert cfg.tau_min == cfg.tau_max >= 10  # no annealing towards a saturated decoder
    assert cfg.archive_size == 50 and cfg.manifold_weight == 0.3 and cfg.grad_rms_decay == 0.9
    assert cfg.sigma_max is None and cfg.sigma_lr_scale == 0.1 and not hasattr(cfg, "kl_weight")


def test_epoch_stats_reads_means_and_set_values():
    stats = EpochStats()
    for v in (1.0, 2.0, 6.0):
        stats.add("loss", torch.tensor(v))
    stats.set("before", torch.tensor(5.0))
    stats.add_host("same", True)
    stats.add_host("same", False)
    assert stats.read() == {"loss": 3.0, "before": 5.0, "same": 0.5}


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="tau_min"):
        SearchConfig(tau_min=40.0, tau_max=30.0)
    with pytest.raises(ValueError, match="sigma_max"):
        SearchConfig(sigma_max=0.001)
    with pytest.raises(TypeError):
        SearchConfig(kl_weight=1e-4)


# ---------------------------------------------------------------- complementation (pure)


def test_complement_cell_rules_on_many_random_pairs():
    g = torch.Generator().manual_seed(0)
    same = 0
    for _ in range(300):
        prev, cur = (tuple(c) for c in nb201.sample_archs(2, g).tolist())
        if torch.rand(1, generator=g) < 0.5:  # also pairs that agree on most edges
            prev = tuple(c if torch.rand(1, generator=g) < 0.8 else p for p, c in zip(prev, cur))
        comp = complement_cell(prev, cur, g)
        for e in range(nb201.NUM_EDGES):
            if prev[e] == cur[e]:
                assert comp[e] != prev[e]
            else:
                assert comp[e] == cur[e]
            assert len({prev[e], cur[e], comp[e]}) == 2  # exactly two distinct ops per edge
        same += comp == cur
    assert 0 < same < 300  # a_c == a_t exactly when a_t differs from a_{t-1} everywhere


def test_complement_terms_weights():
    prev, cur, comp = (0,) * 6, (1,) * 6, (2,) * 6
    assert complement_terms(prev, cur, comp, 0.5) == [(cur, 0.5), (prev, 0.25), (comp, 0.25)]
    assert complement_terms(prev, cur, comp, 0.0) == [(cur, 1.0)]


# ---------------------------------------------------------------- complementation (in a weight step)


def _choice_seed_with_conv1x1_in_the_complement(prev, cur):
    """A seed of the choice stream whose a_c puts conv 1x1 (an op with weights) on an edge where it differs."""
    conv1x1 = nb201.OPS.index("nor_conv_1x1")
    for seed in range(200):
        comp = complement_cell(prev, cur, torch.Generator().manual_seed(seed))
        if any(comp[e] == conv1x1 != cur[e] and comp[e] != prev[e] for e in range(6)):
            return seed, comp
    raise AssertionError("no seed found")


@pytest.mark.parametrize("lam", [0.5, 0.0])
def test_each_weight_loss_term_has_its_exact_gradient(lam):
    """The ops only a_t, only a_{t−1} or only a_c runs get exactly (1 − λ), λ/2 and λ/2 times their
    path's gradient: fails if L(a_c) or L(a_{t−1}) is dropped, detached or mis-weighted."""
    method = make_e2nas(complement_lambda=lam)
    net, harness = method.harness.net, method.harness
    prev = (3, 2, 1, 3, 2, 4)  # no `none`: every edge reaches the output, so every op can get a gradient
    cur = (3, 3, 2, 3, 1, 2)  # agrees with prev on edges 0 and 3 (conv 3x3): a_c differs there
    seed, comp = _choice_seed_with_conv1x1_in_the_complement(prev, cur)
    harness.gens["choice"].manual_seed(seed)
    method.prev = prev
    method.start_epoch(0, 2)
    xw, yw, xa, ya = batches()
    reference = copy.deepcopy(net)
    captured = {}

    def capture():
        captured.update({name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None})

    harness._weight_update = capture
    method.step(xw, yw, xa, ya, cell=cur)

    def path_grads(cell):
        reference.zero_grad(set_to_none=True)
        F.cross_entropy(reference(xw, cell), yw).backward()
        return {n: p.grad.clone() for n, p in reference.named_parameters() if p.grad is not None}

    terms = {cur: 1 - lam, prev: lam / 2, comp: lam / 2}
    want = {}
    for cell, coef in terms.items():
        for name, grad in path_grads(cell).items():
            want[name] = want.get(name, 0.0) + coef * grad
    for name, grad in want.items():
        torch.testing.assert_close(captured.get(name, torch.zeros_like(grad)), grad, rtol=1e-4, atol=1e-7, msg=name)
    # The check has teeth: a_{t−1} and a_c each run ops with weights that no other term runs.
    exclusive = lambda cell, *others: [e for e in range(6) if cell[e] not in [o[e] for o in others]  # noqa: E731
                                       and net.op_parameters(e, cell[e])]
    assert exclusive(prev, cur, comp) and exclusive(comp, cur, prev)
    if lam > 0:
        assert all(captured[n].abs().sum() > 0 for n in want if ".edges." in n)


def test_complement_same_fraction_is_recorded():
    method = make_e2nas()
    method.prev = (0, 0, 0, 0, 0, 0)
    method.start_epoch(0, 2)
    xw, yw, xa, ya = batches()
    method.step(xw, yw, xa, ya, cell=(1, 1, 1, 1, 1, 1))  # differs everywhere: a_c == a_t
    method.step(xw, yw, xa, ya, cell=(1, 1, 1, 1, 1, 2))  # agrees on five edges: a_c != a_t
    assert method.harness.stats.read()["complement_same"] == 0.5


# ---------------------------------------------------------------- the step's structure


def test_a_step_draws_one_sample_trains_weights_first_on_the_weight_batch_then_the_arch_on_its_batch():
    method = make_e2nas(sigma_init=0.5)
    harness = method.harness
    events = []
    real_train, real_val = harness.train_paths, method.validation_loss

    def train_paths(x, y, terms, probe=None):
        events.append(("weights", x, terms[0][0]))
        return real_train(x, y, terms, probe=probe)

    def validation_loss(x, y, cell, weights):
        events.append(("arch", x, cell))
        return real_val(x, y, cell, weights)

    harness.train_paths, method.validation_loss = train_paths, validation_loss
    noise = harness.gens["noise"]
    method.start_epoch(0, 2)
    for _ in range(3):
        events.clear()
        state = noise.get_state()
        xw, yw, xa, ya = batches()
        method.step(xw, yw, xa, ya)
        # The weights, then L_val of the sample and (search.estimator: swap) of each of its one-edge swaps, on xa.
        assert [e[0] for e in events] == ["weights"] + ["arch"] * (1 + 6 * 4)
        assert events[0][1] is xw and all(e[1] is xa for e in events[1:])
        assert events[0][2] == events[1][2] == method.prev  # both halves use the one decoded sample
        assert sorted(sum(a != b for a, b in zip(e[2], method.prev)) for e in events[2:]) == [1] * 24
        # Exactly one d-dimensional draw of ε per step, and it is the step's ε.
        replay = torch.Generator().manual_seed(0)
        replay.set_state(state)
        eps = torch.randn(LATENT, generator=replay)
        assert torch.equal(eps, method.last["eps"]) and torch.equal(noise.get_state(), replay.get_state())


def test_the_sample_is_reparameterised():
    method = make_e2nas(sigma_init=0.3)
    method.start_epoch(0, 2)
    mu, sigma = method.mu.detach().clone(), method.sigma().detach().clone()
    method.step(*batches())
    z, eps = method.last["z"], method.last["eps"]
    assert eps.abs().min() > 0 and (z - mu).abs().max() > 1e-3
    torch.testing.assert_close(z, mu + sigma * eps)


def test_forgetting_probe_measures_the_previous_cell():
    method = make_e2nas()
    probed = []
    real = method.harness.probe_accuracy
    method.harness.probe_accuracy = lambda cell: probed.append(tuple(cell)) or real(cell)
    method.prev = (1, 1, 1, 1, 1, 1)
    method.start_epoch(0, 2)
    method.step(*batches(), cell=(3, 3, 3, 3, 3, 3), probe=True)
    assert probed == [(1, 1, 1, 1, 1, 1)] * 2  # a_{t−1}, just before and just after the step on a_t


def test_sampling_uses_the_epochs_temperature():
    """P = softmax(logits(z) / τ_t) with τ annealed geometrically when tau_min < tau_max (10, 1, 0.1 over 3 epochs)."""
    method = make_e2nas(tau_max=10.0, tau_min=0.1, epochs=3)
    decoder = method.decoder
    for epoch, tau in enumerate([10.0, 1.0, 0.1]):
        assert method.start_epoch(epoch, 3)["tau"] == pytest.approx(tau)
        method.step(*batches())
        z = method.last["z"]
        torch.testing.assert_close(method.last["probs"], torch.softmax(decoder.decode_logits(z[None])[0] / tau, -1))


def test_validation_gradient_is_the_chain_rule_through_the_decoder():
    """∂L_val/∂μ = (∂P/∂z)ᵀ ∂L_val/∂P exactly, with the decoder's own Jacobian at the step's z (the straight-through
    estimator; swap's: tests/search/test_estimator.py): fails if the decoder is bypassed (e.g. softmax of z as op
    logits) while its weights still scale the gradient."""
    method = make_e2nas(estimator="straight-through")
    method.start_epoch(0, 2)
    xw, yw, xa, ya = batches()
    method.step(xw, yw, xa, ya)
    z, probs, cell = method.last["z"], method.last["probs"], method.prev
    leaf = probs.clone().requires_grad_()
    index = torch.tensor(cell).reshape(probs.shape[:-1])
    loss = method.validation_loss(xa, ya, cell, straight_through(leaf, index))  # the weights are the arch step's
    (dloss_dprobs,) = torch.autograd.grad(loss, leaf)
    # The decoder's own Jacobian, taken here from decode_logits (not from the method's path_probs).
    jac = torch.autograd.functional.jacobian(lambda v: torch.softmax(method.decoder.decode_logits(v[None])[0] / method.tau, -1), z)
    expected = torch.einsum("po,pod->d", dloss_dprobs, jac)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(method.last["grad_val"], expected, rtol=1e-4, atol=1e-10)
    assert not any(p.requires_grad for p in method.decoder.parameters())  # frozen


# ---------------------------------------------------------------- the latent terms on μ and σ


def test_terms_are_combined_on_mu_by_normalised_gradients():
    """μ.grad = (1 − η) g_val/rms_val + η g_novelty/rms_novelty + β_m g_M/rms_M (first step: rms = RMS of g)."""
    method = make_e2nas(manifold_weight=0.3, sigma_init=0.3)
    method.start_epoch(0, 2)
    method.eta = 0.3
    method.step(*batches())
    last = method.last
    rms = lambda g: g.pow(2).mean().sqrt()  # noqa: E731
    want = 0.7 * last["grad_val"] / rms(last["grad_val"]) + 0.3 * last["grad_novelty"] / rms(last["grad_novelty"])
    want = want + 0.3 * last["grad_manifold"] / rms(last["grad_manifold"])
    torch.testing.assert_close(method.mu.grad, want)
    # The manifold term is M(μ) = −log ρ_E(μ)/d at μ (before the step), the novelty −g of −log ρ_A.
    assert last["grad_manifold"].abs().sum() > 0 and last["grad_novelty"].abs().sum() > 0


def test_gradient_normaliser_tracks_a_running_rms_per_term():
    norm = GradientNormaliser(("a", "b"), decay=0.9, device="cpu")
    g1, g2 = torch.tensor([3.0, 4.0]), torch.tensor([1.0, 1.0])
    out = norm.combine({"a": g1, "b": g1 * 1e-6}, {"a": 1.0, "b": 0.5})
    torch.testing.assert_close(out, 1.5 * g1 / g1.pow(2).mean().sqrt())  # both terms weigh by their weights, not their size
    norm.combine({"a": g2, "b": g2}, {"a": 1.0, "b": 0.0})  # weight 0: b is neither added nor tracked
    ms = (0.9 * 0.1 * 12.5 + 0.1 * 1.0) / (1 - 0.81)
    assert norm.rms("a").item() == pytest.approx(math.sqrt(ms)) and norm.steps == {"a": 2, "b": 1}


def test_at_eta_one_the_validation_loss_does_not_move_mu():
    """Pure exploration: μ's gradient is the novelty's alone; fails if (1 − η) no longer weighs L_val."""
    grads = []
    for sign in (1.0, -1.0):
        method = make_e2nas(method_cls=LinearCost, manifold_weight=0.0, sigma_init=0.3)
        method.cost = sign * torch.randn(6, NUM_OPS, generator=torch.Generator().manual_seed(4))
        method.start_epoch(0, 2)
        method.eta = 1.0
        method.step(*batches())
        assert method.last["grad_val"].abs().sum() > 0
        grads.append(method.mu.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_exploration_moves_mu_away_from_the_archive():
    method = make_e2nas(manifold_weight=0.0)  # only the novelty may move μ (η = 1)
    g = torch.Generator().manual_seed(3)
    method.archive.fill(method.mu.detach() + 0.02 * torch.randn(method.archive.size, LATENT, generator=g))
    snapshot = method.archive.buffer.clone()
    before = kde_novelty(method.mu.detach(), snapshot).item()
    method.start_epoch(0, 2)
    method.eta = 1.0
    method.step(*batches())
    after = kde_novelty(method.mu.detach(), snapshot).item()
    assert after > before + 1.0


def test_novelty_is_taken_at_the_sample_against_the_archive_without_it():
    """Novelty(z̃) at z̃ = μ + sg(σ) ε (the step's sample, not μ), against the K latents before it; then
    the sample (not μ) joins the archive, overwriting the oldest."""
    method = make_e2nas(sigma_init=0.5, archive_size=7)
    assert method.archive.buffer.shape == (7, LATENT) and method.archive.full  # K from the config, full from the start
    before = method.archive.buffer.clone()
    method.start_epoch(0, 2)
    mu = method.mu.detach().clone()
    method.step(*batches())
    z = method.last["z"].clone().requires_grad_()
    novelty = kde_novelty(z, before)
    (want,) = torch.autograd.grad(-novelty, z)
    assert method.harness.stats.read()["novelty"] == pytest.approx(novelty.item(), rel=1e-5)
    torch.testing.assert_close(method.last["grad_novelty"], want)
    leaf = mu.clone().requires_grad_()
    (at_mu,) = torch.autograd.grad(-kde_novelty(leaf, before), leaf)
    assert not torch.allclose(at_mu, want, rtol=1e-2)  # z and μ are far enough apart to tell
    assert torch.equal(method.archive.buffer[0], method.last["z"]) and torch.equal(method.archive.buffer[1:], before[1:])


def test_archive_starts_with_samples_of_the_initial_q():
    method = make_e2nas(sigma_init=0.2, archive_size=50)
    standardised = (method.archive.buffer - method.mu.detach()) / 0.2
    assert standardised.mean().abs() < 0.2 and 0.8 < standardised.std() < 1.2


def test_sigma_learns_from_the_validation_loss_alone_at_a_tenth_of_the_lr():
    method = make_e2nas(arch_lr=0.05)
    method.start_epoch(0, 2)  # η ≈ 1: the novelty leads μ, but must not touch σ
    before = method.log_sigma.detach().clone()
    method.step(*batches())
    g = method.last["grad_log_sigma"]
    moved = (method.log_sigma.detach() - before).abs()
    live = g.abs() > 1e-6
    assert live.any()
    assert moved[live] == pytest.approx(torch.full((int(live.sum()),), 0.005), rel=1e-2)  # Adam's first step: lr/10

    frozen = make_e2nas(method_cls=LinearCost)  # an L_val whose gradient is exactly zero
    frozen.cost = torch.zeros(6, NUM_OPS)
    frozen.start_epoch(0, 2)
    before = frozen.log_sigma.detach().clone()
    frozen.step(*batches())
    assert frozen.last["grad_novelty"].abs().sum() > 0
    assert torch.equal(frozen.log_sigma.detach(), before)  # novelty and manifold never reach σ


def test_sigma_stays_in_its_bounds():
    method = make_e2nas(sigma_min=0.05, sigma_max=0.2)
    method.start_epoch(0, 2)
    with torch.no_grad():
        method.log_sigma.fill_(math.log(5.0))
    method.step(*batches())
    assert method.sigma().max().item() <= 0.2 + 1e-6
    with torch.no_grad():
        method.log_sigma.fill_(math.log(1e-4))
    method.step(*batches())
    assert method.sigma().min().item() >= 0.05 - 1e-8
    assert make_e2nas(sigma_init=1.0).sigma_max == 1.0  # no VGAE median passed: the bound defaults to 1


def test_the_result_is_the_decoded_mean_not_a_sample():
    method = make_e2nas(sigma_init=3.0, sigma_max=3.0)
    method.start_epoch(0, 1)
    decoded_mean = []
    for _ in range(4):
        method.step(*batches())
        decoded_mean.append(tuple(method.decoder.decode_logits(method.mu.detach()[None])[0].argmax(-1).tolist()))
    cell, _ = method.epoch_arch()
    assert cell == decoded_mean[-1]
    assert method.prev != cell  # the last sample decoded elsewhere: returning it would fail here


def test_sampled_decoded_fraction_counts_steps_whose_sample_decodes_like_mu():
    stats = []
    for sigma in (1e-4, 3.0):
        method = make_e2nas(sigma_init=sigma, sigma_min=1e-4, sigma_max=3.0)
        method.start_epoch(0, 2)
        for _ in range(6):
            method.step(*batches())
        stats.append(method.harness.stats.read()["sampled_decoded"])
        assert 1 <= method.epoch_extras()["distinct_cells"] <= 6
    assert stats[0] == 1.0 and stats[1] < 1.0


def test_mu_starts_at_the_encoding_of_the_seeded_start_cell():
    from e2nas.graphs import build_graph_set
    from e2nas.vgae import VGAEConfig
    from e2nas.vgae.train import build_model

    cfg = VGAEConfig(latent_dim=LATENT, hidden_dim=16, num_layers=2, decoder_layers=1)
    vae = build_model(build_graph_set("nb201", nb201.all_archs()[:2]), cfg, torch.device("cpu")).eval()
    starts = []
    for seed in range(4):
        harness = Harness(tiny_supernet(), tiny_cfg(), "cpu", seed, space="nb201")
        method = E2NAS.for_method("e2nas", harness, vae)
        want = harness.space.sample(1, stage_generators(seed, GENERATORS)["init"], valid=True)[0]
        assert method.start_cell == want
        torch.testing.assert_close(method.mu.detach(), encode_cell(vae, want, "cpu", "nb201"))
        starts.append(want)
    assert len(set(starts)) >= 3  # seeds start apart
    # The methods one class runs: the ablations' switches, and e2nas-paper's step (the paper's estimator and paths).
    harness = Harness(tiny_supernet(), tiny_cfg(weight_paths="fair"), "cpu", 0, space="nb201")
    built = {m: E2NAS.for_method(m, harness, vae) for m in ("e2nas", "e2nas-paper", "e2nas-noexplore", "e2nas-nocomplement")}
    assert {m: (e.estimator, e.weight_paths, e.explore, e.lam) for m, e in built.items()} == {
        "e2nas": ("swap", "fair", True, 0.5), "e2nas-paper": ("straight-through", "sampled", True, 0.5),
        "e2nas-noexplore": ("swap", "fair", False, 0.5), "e2nas-nocomplement": ("swap", "fair", True, 0.0)}


# ---------------------------------------------------------------- the known optimum (the method's bar)


@pytest.fixture(scope="module")
def default_vgae(tmp_path_factory):
    """The default VGAE (VGAEConfig()) trained on all NB201 cells, and the graphs."""
    from e2nas.graphs import GraphSet, build_graph_set
    from e2nas.vgae import VGAEConfig, load_vgae, run_pretraining

    root = tmp_path_factory.mktemp("vgae")
    build_graph_set("nb201").save(root / "graphs.pt")
    run_pretraining(root / "graphs.pt", root / "model.pt", root / "metrics.json", VGAEConfig(), progress=False)
    return load_vgae(root / "model.pt"), GraphSet.load(root / "graphs.pt")


class KnownOptimum(LinearCost):
    """No supernet: the weight half is skipped, L_val = ⟨c, h⟩ with c = 1 off the target's ops, 0 on them."""

    def weight_step(self, x, y, prev, cur, probe):
        pass


def target_three_edges_away(start, seed):
    g = torch.Generator().manual_seed(100 + seed)
    target = list(start)
    for e in torch.randperm(6, generator=g)[:3].tolist():
        target[e] = (target[e] + int(torch.randint(1, NUM_OPS, (1,), generator=g))) % NUM_OPS
    return tuple(target)


def known_optimum_distances(vae, graphs, seeds, with_validation_loss: bool = True) -> list[int]:
    """Edges by which decode(μ) misses the target after a default-length search, per seed (0: an exact hit)."""
    cfg = SearchConfig()
    off = []
    for seed in seeds:
        method = KnownOptimum.for_method("e2nas", Harness(nn.Linear(1, 1), cfg, "cpu", seed, space="nb201"), vae, graphs)
        target = target_three_edges_away(method.start_cell, seed)
        method.cost = torch.ones(6, NUM_OPS)
        method.cost[torch.arange(6), torch.tensor(target)] = 0.0
        if not with_validation_loss:
            method.cost = torch.zeros(6, NUM_OPS)  # L_val carries no gradient: novelty and manifold alone move μ
        x = torch.zeros(1)
        for epoch in range(cfg.epochs):
            method.start_epoch(epoch, cfg.epochs)
            for _ in range(31):
                method.step(x, x, x, x)
        cell, _ = method.epoch_arch()
        off.append(sum(a != b for a, b in zip(cell, target)))
    return off


# The known-optimum criterion: of KNOWN_OPTIMUM_SEEDS seeds, at least KNOWN_OPTIMUM_HITS exact (see the test).
KNOWN_OPTIMUM_SEEDS, KNOWN_OPTIMUM_HITS = 8, 4


def test_e2nas_steers_to_a_known_optimum(default_vgae):
    """Default schedules and step counts (5 epochs × 31 steps, the default profile's): decode(μ) must reach a
    target cell three edges from the seeded start cell exactly — all six edges right; a cell one edge off does
    not count — for at least 4 of seeds 0–7.

    The bar, from a measurement (2026-12-07, this suite's 2-core CPU; `known_optimum_distances` on seeds
    0–99): E2NAS hits 90 of 100 exactly (the other 10 one edge off); without L_val (`with_validation_loss=False`)
    0 of 100 (2–5 edges off). Clopper–Pearson 95% bounds: hit rate p ≥ p_L = 0.824 (the 2.5% quantile of
    Beta(90, 11)); without L_val p₀ ≤ p_U = 0.0362 (1 − 0.025^(1/100), the 97.5% quantile of Beta(1, 100)).
    X, the exact hits among n = 8 seeds, is Binomial(8, p) under a change that only reshuffles the random
    streams, so with k = 4:

        P(pass)              = P(X ≥ 4 | p_L) = 1 − Σ_{j=0}^{3} C(8, j) p_L^j (1 − p_L)^(8−j) = 0.9941 ≥ 0.99
        P(pass without L_val) = P(X ≥ 4 | p_U) = Σ_{j=4}^{8} C(8, j) p_U^j (1 − p_U)^(8−j) = 1.1e-4 ≤ 0.001

    (at the measured p = 0.90 the test passes with 0.9996). The old bar (≥ 4 of 5 exact) passed with
    P(X ≥ 4 | 5, 0.90) = 0.92 here, and failed on this machine (3 of 5).
    """
    vae, graphs = default_vgae
    off = known_optimum_distances(vae, graphs, range(KNOWN_OPTIMUM_SEEDS))
    assert sum(d == 0 for d in off) >= KNOWN_OPTIMUM_HITS, off


@pytest.mark.slow  # 8 more searches: the criterion's other side, measured once more
def test_without_the_validation_loss_the_known_optimum_is_missed(default_vgae):
    """The known-optimum criterion has teeth: with L_val silenced, novelty and the manifold term alone do not
    reach the target (0 of 100 seeds measured; this test fails only with probability 1.1e-4, see above)."""
    vae, graphs = default_vgae
    off = known_optimum_distances(vae, graphs, range(KNOWN_OPTIMUM_SEEDS), with_validation_loss=False)
    assert sum(d == 0 for d in off) < KNOWN_OPTIMUM_HITS and min(off) >= 1, off


def test_sigma_max_defaults_to_the_median_posterior_sigma(default_vgae):
    vae, graphs = default_vgae
    method = E2NAS.for_method("e2nas", Harness(nn.Linear(1, 1), SearchConfig(), "cpu", 0, space="nb201"), vae, graphs)
    _, sigma = vae.encode_posterior(graphs)
    assert method.sigma_max == pytest.approx(float(sigma.flatten().quantile(0.5)))
    assert method.sigma().max().item() <= method.sigma_max + 1e-6
    assert method.encoding_nn_median == pytest.approx(nearest_neighbour_median(vae.encode_archs(graphs)))
    extras = method.epoch_extras()
    assert extras["decoder_confidence"] > 0.9 and extras["mu_nearest_distance"] < 1e-3  # μ₀ is an encoding
    assert extras["decoder_jacobian"] > 0




# ---------------------------------------------------------------- diagnostics of the latent terms (issue 29)


def test_the_running_rms_takes_the_configured_decay_across_steps():
    """After two steps each term is divided by sqrt of the bias-corrected average (decay grad_rms_decay) of both
    steps' mean squares: fails if the decay is ignored (decay 0: the first step alone cannot tell, bias
    correction hides it)."""
    decay = 0.5
    method = make_e2nas(manifold_weight=0.3, sigma_init=0.3, grad_rms_decay=decay)
    method.start_epoch(0, 2)
    method.eta = 0.3
    method.step(*batches())
    first = {k: method.last[f"grad_{k}"].clone() for k in ("val", "novelty", "manifold")}
    method.step(*batches())
    second = {k: method.last[f"grad_{k}"] for k in first}
    weights = {"val": 0.7, "novelty": 0.3, "manifold": 0.3}
    want = 0
    for k, w in weights.items():
        ms = decay * (1 - decay) * first[k].pow(2).mean() + (1 - decay) * second[k].pow(2).mean()
        want = want + w * second[k] / (ms / (1 - decay**2)).sqrt()
    torch.testing.assert_close(method.mu.grad, want)
    ratio = [(first[k].pow(2).mean() / second[k].pow(2).mean()).item() for k in first]
    assert max(abs(math.log(r)) for r in ratio) > 0.05  # the steps' sizes differ: decay 0 would give another gradient


def test_the_manifold_gradient_is_that_of_minus_log_density_at_mu():
    """g_M = ∇ M(μ) with M(μ) = −log ρ_E(μ)/d, the KDE over the encodings, at μ before the step — not at the
    step's sample z̃, and with M's own sign (the combined step then descends M)."""
    method = make_e2nas(sigma_init=0.5, manifold_weight=0.3)
    method.start_epoch(0, 2)
    mu = method.mu.detach().clone()
    method.step(*batches())
    points = method.manifold.points
    leaf = mu.clone().requires_grad_()
    (want,) = torch.autograd.grad(kde_novelty(leaf, points), leaf)  # −log ρ_E / d: the same KDE formula
    torch.testing.assert_close(method.last["grad_manifold"], want)
    z = method.last["z"].clone().requires_grad_()
    (at_sample,) = torch.autograd.grad(kde_novelty(z, points), z)
    assert not torch.allclose(at_sample, want, rtol=1e-2)  # μ and z̃ are far enough apart to tell


def test_the_manifold_term_alone_pulls_mu_to_the_encoded_cells():
    """With L_val silent and no exploration, only β_m·M moves μ: M(μ) falls step by step (its sign flipped, it rises)."""
    method = make_e2nas(method_cls=LinearCost, manifold_weight=0.3, sigma_init=0.05)
    method.cost, method.explore = torch.zeros(6, NUM_OPS), False  # η ≡ 0 (e2nas-noexplore)
    with torch.no_grad():
        method.mu.add_(1.5)  # off the encodings
    method.start_epoch(0, 2)
    penalty = [method.manifold.penalty(method.mu.detach()).item()]
    for _ in range(5):
        method.step(*batches())
        penalty.append(method.manifold.penalty(method.mu.detach()).item())
    assert all(b < a for a, b in zip(penalty, penalty[1:])), penalty

"""Stage 4: E2NAS (decoder gradient, exploration, complementation, latent terms), baselines, determinism, resume.

Tiny sizes throughout (C=4, N=1, 8x8 images, batch 8–16). Each E2NAS test is built to fail
on one shortcut: a decoder that is bypassed or never differentiated, a novelty without
gradient, at the wrong point or against the wrong archive, complementation losses taken with
`.item()`, a schedule or bound that is not applied, a step that draws two samples or runs its
halves in the wrong order or on the wrong batch. The module `known optimum` test is the
method's bar: it must steer μ to a target cell with the default schedules.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2nas.search import METHODS, Harness, SearchConfig
from e2nas.search.baselines import DARTS, GDAS, RSPS
from e2nas.search.common import EpochStats, eta_at, geometric_tau, seeded_generators, straight_through
from e2nas.search.e2nas import E2NAS, GradientNormaliser, complement_terms, encode_cell
from e2nas.search.novelty import (
    LatentArchive,
    ManifoldDensity,
    kde_log_density,
    kde_novelty,
    nearest_neighbour_median,
    scott_bandwidth,
)
from e2nas.search.space import complement_cell
from e2nas.spaces import nb201

torch.set_num_threads(1)

LATENT = 4
NUM_OPS = len(nb201.OPS)


class LinearDecoder(nn.Module):
    """logits(z) = W z + b, (B, d) -> (B, 6, 5): a decoder the test can reason about."""

    def __init__(self, dim: int = LATENT, seed: int = 0):
        super().__init__()
        self.lin = nn.Linear(dim, nb201.NUM_EDGES * NUM_OPS)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.lin.weight.copy_(torch.randn(self.lin.weight.shape, generator=g))
            self.lin.bias.zero_()

    def decode_logits(self, z):
        return self.lin(z).view(-1, nb201.NUM_EDGES, NUM_OPS)


def tiny_supernet(seed: int = 0):
    from e2nas.supernet.nb201 import SuperNet

    torch.manual_seed(seed)
    return SuperNet(4, 1, 10, 1)


def images(n: int, seed: int = 0, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(10, (n,), generator=g)


def tiny_cfg(**kw) -> SearchConfig:
    base = dict(epochs=2, batch_size=8, archive_size=4, rsps_num_candidates=3, rsps_eval_images=16, eval_batch_size=16)
    return SearchConfig(**{**base, **kw})


def make_e2nas(net=None, decoder=None, seed=0, encodings=True, method_cls=None, **cfg):
    """E2NAS on the tiny supernet and a linear decoder; `encodings`: 32 points around μ₀ make the manifold."""
    net = tiny_supernet(seed) if net is None else net
    x, y = images(16, seed=99)
    harness = Harness(net, tiny_cfg(**cfg), "cpu", seed, x, y)
    decoder = LinearDecoder() if decoder is None else decoder
    mu0 = torch.randn(LATENT, generator=torch.Generator().manual_seed(seed + 1))
    points = mu0 + torch.randn(32, LATENT, generator=torch.Generator().manual_seed(seed + 2)) if encodings else None
    return (method_cls or E2NAS)(harness, decoder, mu0, encodings=points)


def batches():
    return (*images(8, seed=1), *images(8, seed=2))


class LinearCost(E2NAS):
    """E2NAS whose L_val is ⟨c, h⟩ for a fixed per-edge op cost c: the gradient's answer is known."""

    cost: torch.Tensor = torch.zeros(nb201.NUM_EDGES, NUM_OPS)

    def validation_loss(self, x, y, cell, weights):
        return (self.cost * weights).sum()


# ---------------------------------------------------------------- schedules, stats, config


def test_methods_are_the_pipeline_names():
    assert set(METHODS) == {"e2nas", "e2nas-noexplore", "e2nas-nocomplement", "gdas", "darts", "rsps"}


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


# ---------------------------------------------------------------- densities


def test_kde_log_density_matches_a_direct_gaussian_mixture():
    from scipy.stats import multivariate_normal

    g = torch.Generator().manual_seed(0)
    points, z = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    h = scott_bandwidth(points)
    assert torch.allclose(h, 30 ** (-1 / 7) * points.std(dim=0))
    direct = sum(multivariate_normal(p.numpy(), torch.diag(h**2).numpy()).pdf(z.numpy()) for p in points) / 30
    assert kde_log_density(z, points, h).item() == pytest.approx(math.log(direct), rel=1e-9)


def test_novelty_of_a_filled_archive_is_differentiable_and_the_ring_overwrites_the_oldest():
    archive = LatentArchive(3, 2, "cpu")
    z = torch.tensor([0.5, 0.5], requires_grad=True)
    assert archive.novelty(z).item() == 0.0  # empty: no density to be novel against
    archive.fill(torch.tensor([[0.0, 0.0], [0.1, -0.1], [0.2, -0.2]]))
    assert archive.full and archive.next == 0
    nov = archive.novelty(z)
    (grad,) = torch.autograd.grad(nov, z)
    assert grad.abs().sum() > 0
    # The gradient points away from the archive: a small step along it raises the novelty.
    assert kde_novelty(z.detach() + 1e-3 * grad, archive.buffer) > nov.detach()
    archive.append(torch.tensor([9.0, 9.0]))
    assert archive.buffer[0].tolist() == [9.0, 9.0] and archive.next == 1
    with pytest.raises(ValueError, match="archive of 3"):
        archive.fill(torch.zeros(4, 2))


def test_manifold_penalty_is_the_kde_over_the_encodings():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(50, 3, generator=g)
    density = ManifoldDensity(points)
    mu = torch.tensor([0.3, -0.2, 0.1])
    want = -kde_log_density(mu, points, scott_bandwidth(points)) / 3
    assert density.penalty(mu).item() == pytest.approx(want.item())
    assert density.nearest_distance(points[7] + 0.01).item() == pytest.approx(0.01 * math.sqrt(3), rel=1e-4)
    # Far from the points the penalty is larger, and its gradient pulls back towards them.
    far = torch.tensor([5.0, 5.0, 5.0], requires_grad=True)
    (grad,) = torch.autograd.grad(density.penalty(far), far)
    assert density.penalty(far.detach()) > density.penalty(mu) and (grad > 0).all()


def test_nearest_neighbour_median_on_a_known_set():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    # nearest other point: 1, 1, 2, 4 → median 1.5
    assert nearest_neighbour_median(points) == pytest.approx(1.5)
    assert nearest_neighbour_median(points, max_queries=2) in (1.0, 1.5, 2.0, 3.0, 4.0)


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
        assert [e[0] for e in events] == ["weights", "arch"]
        assert events[0][1] is xw and events[1][1] is xa
        assert events[0][2] == events[1][2] == method.prev  # both halves use the one decoded sample
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
    """∂L_val/∂μ = (∂P/∂z)ᵀ ∂L_val/∂P exactly, with the decoder's own Jacobian at the step's z:
    fails if the decoder is bypassed (e.g. softmax of z as op logits) while its weights still scale the gradient."""
    method = make_e2nas()
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
        harness = Harness(tiny_supernet(), tiny_cfg(), "cpu", seed)
        method = E2NAS.for_method("e2nas", harness, vae)
        want = harness.space.sample(1, seeded_generators(seed, torch.device("cpu"))["init"], valid=True)[0]
        assert method.start_cell == want
        torch.testing.assert_close(method.mu.detach(), encode_cell(vae, want, "cpu", "nb201"))
        starts.append(want)
    assert len(set(starts)) >= 3  # seeds start apart


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


def test_e2nas_steers_to_a_known_optimum(default_vgae):
    """Default schedules and step counts (5 epochs × 31 steps, the default profile's): decode(μ) reaches a
    target cell three edges from the seeded start cell for ≥ 4 of 5 seeds, and lands within one edge for all."""
    vae, graphs = default_vgae
    cfg = SearchConfig()
    off = []
    for seed in range(5):
        method = KnownOptimum.for_method("e2nas", Harness(nn.Linear(1, 1), cfg, "cpu", seed), vae, graphs)
        target = target_three_edges_away(method.start_cell, seed)
        method.cost = torch.ones(6, NUM_OPS)
        method.cost[torch.arange(6), torch.tensor(target)] = 0.0
        x = torch.zeros(1)
        for epoch in range(cfg.epochs):
            method.start_epoch(epoch, cfg.epochs)
            for _ in range(31):
                method.step(x, x, x, x)
        cell, _ = method.epoch_arch()
        off.append(sum(a != b for a, b in zip(cell, target)))
    assert sum(d == 0 for d in off) >= 4 and max(off) <= 1, off


def test_sigma_max_defaults_to_the_median_posterior_sigma(default_vgae):
    vae, graphs = default_vgae
    method = E2NAS.for_method("e2nas", Harness(nn.Linear(1, 1), SearchConfig(), "cpu", 0), vae, graphs)
    _, sigma = vae.encode_posterior(graphs)
    assert method.sigma_max == pytest.approx(float(sigma.flatten().quantile(0.5)))
    assert method.sigma().max().item() <= method.sigma_max + 1e-6
    assert method.encoding_nn_median == pytest.approx(nearest_neighbour_median(vae.encode_archs(graphs)))
    extras = method.epoch_extras()
    assert extras["decoder_confidence"] > 0.9 and extras["mu_nearest_distance"] < 1e-3  # μ₀ is an encoding
    assert extras["decoder_jacobian"] > 0


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
        harness = Harness(net, tiny_cfg(), "cpu", 0, *images(16, seed=99))
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
    harness = Harness(tiny_supernet(), tiny_cfg(), "cpu", 0, *images(16, seed=99))
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
    harness = Harness(tiny_supernet(), tiny_cfg(rsps_num_candidates=4, rsps_eval_images=16), "cpu", 0)
    harness.set_eval(x[:16], y[:16], pool=(x, y))
    method = RSPS(harness)
    import e2nas.supernet.warmup as warmup

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


# ---------------------------------------------------------------- run_search: files, determinism, resume


class FakeTable:
    """Any object with lookup(arch_string) serves as the NB201 table."""

    def lookup(self, arch):
        return {"cifar10": 90.0 + nb201.parse_arch(arch)[0], "cifar100": 70.0, "imagenet16_120": 40.0}


@pytest.fixture(scope="module")
def stage_files(tmp_path_factory):
    """A tiny dataset, its split, a 1-epoch warm-up file and an (untrained) VGAE model file."""
    from e2nas.data import ImageData, make_split
    from e2nas.graphs import build_graph_set
    from e2nas.supernet.warmup import SupernetConfig, WarmupConfig, run_warmup
    from e2nas.vgae import VGAEConfig, save_vgae
    from e2nas.vgae.train import build_model

    root = tmp_path_factory.mktemp("search")
    (x, y), (tx, ty) = images(128, seed=5), images(16, seed=6)
    data = ImageData("toy", 10, 1, 8, x, y, tx, ty, augment=True, pad=1)
    split = make_split(len(y), 0)
    warmup = root / "warmup.pt"
    run_warmup(data, split, SupernetConfig(4, 1), WarmupConfig(epochs=1, batch_size=16), 0, warmup, root / "w.ckpt", progress=False)
    vcfg = VGAEConfig(latent_dim=LATENT, hidden_dim=16, num_layers=2, decoder_layers=1)
    graphs = build_graph_set("nb201", nb201.sample_archs(64, torch.Generator().manual_seed(0)))
    graphs.save(root / "graphs.pt")
    vae = build_model(graphs, vcfg, torch.device("cpu"))
    vgae = root / "model.pt"
    save_vgae(vae, vcfg, "nb201", vgae)
    return {"data": data, "warmup": warmup, "vgae": vgae, "graphs": root / "graphs.pt"}


def search(files, method, out, seed=0, **kw):
    from e2nas.search import run_search

    cfg = tiny_cfg(batch_size=16, **kw)
    e2nas = method.startswith("e2nas")
    return run_search(
        method, files["data"], files["warmup"], files["vgae"] if e2nas else None, cfg, seed, out / "result.json",
        out / "search.ckpt", table=FakeTable(), progress=False, graphs_path=files["graphs"] if e2nas else None,
    )


def without_seconds(result):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in result["trajectory"]]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["e2nas", "rsps"])
def test_search_is_deterministic_and_resumes_after_an_interrupted_epoch(stage_files, tmp_path, monkeypatch, method):
    first = search(stage_files, method, tmp_path / "a")
    again = search(stage_files, method, tmp_path / "b")
    assert again["arch"] == first["arch"]
    assert without_seconds(again) == without_seconds(first)

    # Kill the run in the middle of its second epoch (4 weight steps per epoch).
    from e2nas.search.common import Harness as H

    real, calls = H.train_paths, {"n": 0}

    def dying(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise Interrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(H, "train_paths", dying)
    out = tmp_path / "c"
    with pytest.raises(Interrupt):
        search(stage_files, method, out)
    assert (out / "search.ckpt").exists() and not (out / "result.json").exists()
    monkeypatch.setattr(H, "train_paths", real)
    resumed = search(stage_files, method, out)
    assert resumed["arch"] == first["arch"]
    assert without_seconds(resumed) == without_seconds(first)
    assert not (out / "search.ckpt").exists()


def test_e2nas_result_file_and_trajectory(stage_files, tmp_path):
    from e2nas.vgae import load_vgae

    result = search(stage_files, "e2nas", tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == result
    assert result["method"] == "e2nas" and result["space"] == "nb201" and result["epochs"] == 2
    assert nb201.parse_arch(result["arch"]) and nb201.parse_arch(result["start_arch"])
    assert result["nb201"] == FakeTable().lookup(result["arch"])
    assert result["arch"] == result["trajectory"][-1]["arch"]
    # The result is the decode of the last epoch's μ (not a sample).
    vae = load_vgae(stage_files["vgae"])
    final_mu = torch.tensor(result["trajectory"][-1]["mu"])
    assert result["arch"] == nb201.format_arch(vae.decode_logits(final_mu[None])[0].argmax(-1).tolist())
    assert result["sigma_max"] > 0 and result["encoding_nn_median"] > 0
    first, last = result["trajectory"]
    assert first["eta"] == pytest.approx(1 - 1 / (1 + math.exp(10))) and last["eta"] == pytest.approx(0.5)  # T = 2
    assert first["tau"] == last["tau"] == pytest.approx(SearchConfig().tau_max)
    assert len(last["mu"]) == LATENT and 0.01 <= last["sigma"] <= result["sigma_max"] + 1e-6
    assert 0.0 <= last["complement_same_fraction"] <= 1.0
    assert last["forgetting"] == pytest.approx(last["forgetting_before"] - last["forgetting_after"])
    assert 0.0 <= last["acc_val"] <= 100.0
    assert last["novelty"] is not None  # the archive is full from the first step
    assert last["nb201_cifar10"] == FakeTable().lookup(last["arch"])["cifar10"]
    for record in result["trajectory"]:
        assert 0.0 <= record["sampled_decoded_fraction"] <= 1.0 and 1 <= record["distinct_cells"] <= 4
        assert record["mu_nearest_distance"] >= 0 and 0 < record["decoder_confidence"] <= 1
        assert record["decoder_jacobian"] >= 0 and record["alpha_entropy"] is None


def test_ablations_switch_off_their_part(stage_files, tmp_path):
    noexplore = search(stage_files, "e2nas-noexplore", tmp_path / "ne")
    nocomp = search(stage_files, "e2nas-nocomplement", tmp_path / "nc")
    assert all(r["eta"] == 0.0 for r in noexplore["trajectory"])
    assert all(r["complement_same_fraction"] is None for r in nocomp["trajectory"])
    assert all(r["complement_same_fraction"] is not None for r in noexplore["trajectory"])


@pytest.mark.parametrize("method", ["gdas", "darts", "rsps"])
def test_baselines_return_valid_cells_without_the_vgae(stage_files, tmp_path, method):
    result = search(stage_files, method, tmp_path, epochs=1)
    assert nb201.format_arch(nb201.parse_arch(result["arch"])) == result["arch"]
    assert result["method"] == method and len(result["trajectory"]) == 1
    record = result["trajectory"][0]
    assert record["mu"] is None and record["sigma"] is None and 0.0 <= record["acc_val"] <= 100.0
    if method != "rsps":
        assert 0 < record["alpha_entropy"] <= math.log(NUM_OPS) + 1e-6
    if method == "rsps":  # the best of its candidates under the supernet
        assert record["acc_val"] == max(record["candidate_accuracies"])
        assert result["arch"] in result["candidates"]
    if method == "darts":
        assert record["forgetting"] is None
    else:
        assert record["forgetting_before"] is not None


def test_e2nas_needs_the_vgae_and_the_right_dataset(stage_files, tmp_path):
    from dataclasses import replace

    from e2nas.search import run_search

    with pytest.raises(ValueError, match="vgae_path"):
        run_search("e2nas", stage_files["data"], stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")
    with pytest.raises(ValueError, match="graphs_path"):
        run_search("e2nas", stage_files["data"], stage_files["warmup"], stage_files["vgae"], tiny_cfg(), 0, tmp_path / "r.json",
                   tmp_path / "c")
    with pytest.raises(ValueError, match="trained on"):
        other = replace(stage_files["data"], name="cifar10")
        run_search("gdas", other, stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")
    with pytest.raises(ValueError, match="unknown search method"):
        run_search("enas", stage_files["data"], stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on a CUDA device")
def test_a_step_syncs_with_the_host_at_most_once():
    """E2NAS copies the step's 6 op indices to the host, GDAS both halves' draws in one transfer; nothing else waits."""
    from conftest import host_syncs_of_a_step

    device = torch.device("cuda")
    from e2nas.supernet.nb201 import SuperNet

    net = SuperNet(4, 1, 10, 1).to(device)
    x, y = (t.to(device) for t in images(16, seed=1))
    expected = {"e2nas": 1, "gdas": 1, "darts": 0, "rsps": 0}
    for name, want in expected.items():
        harness = Harness(net, tiny_cfg(), device, 0, x, y)
        if name == "e2nas":
            method = E2NAS(harness, LinearDecoder().to(device), torch.zeros(LATENT, device=device))
        else:
            method = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}[name](harness)
        syncs = host_syncs_of_a_step(method, x, y)
        assert len(syncs) == want, (name, syncs)

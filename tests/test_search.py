"""Stage 4: E2NAS (decoder gradient, exploration, complementation), baselines, determinism, resume.

Tiny sizes throughout (C=4, N=1, 8x8 images, batch 8–16). Several tests are built to fail on
the authors' shortcuts: a decoder that is never differentiated, a novelty without gradient,
complementation losses taken with `.item()`.
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
from e2nas.search.common import EpochStats, eta_at, geometric_tau, straight_through
from e2nas.search.e2nas import E2NAS, complement_terms, gaussian_kl
from e2nas.search.space import complement_cell
from e2nas.search.novelty import LatentArchive, kde_log_density, kde_novelty, scott_bandwidth
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


def make_e2nas(net=None, decoder=None, seed=0, **cfg):
    net = tiny_supernet(seed) if net is None else net
    x, y = images(16, seed=99)
    harness = Harness(net, tiny_cfg(**cfg), "cpu", seed, x, y)
    decoder = LinearDecoder() if decoder is None else decoder
    mu0 = torch.randn(LATENT, generator=torch.Generator().manual_seed(seed + 1))
    return E2NAS(harness, decoder, mu0)


# ---------------------------------------------------------------- schedules, stats


def test_methods_are_the_pipeline_names():
    assert set(METHODS) == {"e2nas", "e2nas-noexplore", "e2nas-nocomplement", "gdas", "darts", "rsps"}


def test_schedules_explore_early_exploit_late():
    assert eta_at(0, 10, 10.0) > 0.99 and eta_at(9, 10, 10.0) < 0.01
    assert geometric_tau(0, 5, 10.0, 0.1) == pytest.approx(10.0)
    assert geometric_tau(4, 5, 10.0, 0.1) == pytest.approx(0.1)
    assert geometric_tau(2, 5, 10.0, 0.1) == pytest.approx(1.0)  # geometric: the middle is the geometric mean


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
        SearchConfig(tau_min=20.0)
    with pytest.raises(TypeError):
        SearchConfig(no_such_key=1)


# ---------------------------------------------------------------- novelty


def test_kde_log_density_matches_a_direct_gaussian_mixture():
    from scipy.stats import multivariate_normal

    g = torch.Generator().manual_seed(0)
    points, z = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    h = scott_bandwidth(points)
    assert torch.allclose(h, 30 ** (-1 / 7) * points.std(dim=0))
    direct = sum(multivariate_normal(p.numpy(), torch.diag(h**2).numpy()).pdf(z.numpy()) for p in points) / 30
    assert kde_log_density(z, points, h).item() == pytest.approx(math.log(direct), rel=1e-9)


def test_novelty_is_zero_until_the_archive_is_full_then_differentiable():
    archive = LatentArchive(3, 2, "cpu")
    z = torch.tensor([0.5, 0.5], requires_grad=True)
    for i in range(3):
        assert archive.novelty(z).item() == 0.0
        archive.append(torch.tensor([0.1 * i, -0.1 * i]))
    assert archive.full and archive.next == 0
    nov = archive.novelty(z)
    (grad,) = torch.autograd.grad(nov, z)
    assert grad.abs().sum() > 0
    # The gradient points away from the archive: a small step along it raises the novelty.
    assert kde_novelty(z.detach() + 1e-3 * grad, archive.buffer) > nov.detach()
    archive.append(torch.tensor([9.0, 9.0]))  # the ring overwrites the oldest
    assert archive.buffer[0].tolist() == [9.0, 9.0] and archive.next == 1


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


# ---------------------------------------------------------------- gradient through the decoder


def test_validation_gradient_reaches_mu_through_the_decoder():
    """∂L_val/∂μ is non-zero and depends on the decoder's weights (fails if the decoder is bypassed)."""
    xw, yw = images(8, seed=1)
    xa, ya = images(8, seed=2)
    grads, cells = [], []
    for bump in (0.0, 0.05):
        decoder = LinearDecoder()
        with torch.no_grad():
            decoder.lin.weight.add_(bump * torch.randn(decoder.lin.weight.shape, generator=torch.Generator().manual_seed(7)))
        method = make_e2nas(decoder=decoder, kl_weight=0.0, arch_weight_decay=0.0)
        method.explore = False
        method.start_epoch(0, 2)
        method.tau = 1.0  # an unsaturated softmax
        method.step(xw, yw, xa, ya)
        grads.append(method.mu.grad.clone())
        cells.append(method.prev)
        assert not any(p.requires_grad for p in decoder.parameters())  # frozen
    assert cells[0] == cells[1]  # same path, so only the decoder's Jacobian differs
    assert grads[0].abs().sum() > 0
    assert not torch.allclose(grads[0], grads[1])


class FavourOp(nn.Module):
    """A stand-in supernet whose loss is lower the more edge `edge` carries op `op`.

    Its logit for the (always correct) class 0 grows with the straight-through weight
    h[edge, op], as a supernet's loss reacts to the h_k it multiplies: the validation loss
    favours `op` on `edge` whatever the decoder currently picks.
    """

    def __init__(self, edge: int, op: int):
        super().__init__()
        self.edge, self.op = edge, op
        self.lin = nn.Linear(64, 10)

    def forward(self, x, cell, weights=None):
        on = weights[self.edge, self.op] if weights is not None else float(cell[self.edge] == self.op)
        return self.lin(x.flatten(1)) + 4.0 * on * F.one_hot(torch.zeros(len(x), dtype=torch.long), 10)


def test_architecture_steps_steer_the_decoded_cell():
    decoder = LinearDecoder()
    mu0 = torch.zeros(LATENT)
    start = decoder.decode_logits(mu0[None])[0].argmax(-1).tolist()
    edge = 2
    op = (start[edge] + 2) % NUM_OPS  # an op the start cell does not use there
    x, _ = images(8)
    y = torch.zeros(8, dtype=torch.long)
    harness = Harness(FavourOp(edge, op), tiny_cfg(kl_weight=0.0, arch_lr=0.1), "cpu", 0, x, y)
    method = E2NAS(harness, decoder, mu0, explore=False, complement_lambda=0.0)
    method.start_epoch(0, 1)
    method.tau = 1.0
    for _ in range(30):
        method.step(x, y, x, y)
    cell, _ = method.epoch_arch()
    assert cell[edge] == op != start[edge]


# ---------------------------------------------------------------- exploration


def _clustered_archive(method, spread=0.02, seed=3):
    g = torch.Generator().manual_seed(seed)
    for _ in range(method.archive.size):
        method.archive.append(method.mu.detach() + spread * torch.randn(LATENT, generator=g))


def test_exploration_moves_mu_away_from_the_archive():
    method = make_e2nas(kl_weight=0.0, arch_weight_decay=0.0)  # only the novelty may move μ
    _clustered_archive(method)
    snapshot = method.archive.buffer.clone()
    before = kde_novelty(method.mu.detach(), snapshot).item()
    method.start_epoch(0, 2)
    method.eta = 1.0  # pure exploration
    xw, yw = images(8, seed=1)
    method.step(xw, yw, *images(8, seed=2))
    after = kde_novelty(method.mu.detach(), snapshot).item()
    assert after > before + 1.0


def test_without_exploration_the_archive_has_no_effect():
    xw, yw = images(8, seed=1)
    xa, ya = images(8, seed=2)
    mus = []
    for fill in (False, True):
        method = make_e2nas(kl_weight=1e-3)
        method.explore = False
        if fill:
            _clustered_archive(method)
        method.start_epoch(0, 2)
        assert method.eta == 0.0
        method.step(xw, yw, xa, ya)
        mus.append(method.mu.detach().clone())
    assert torch.equal(mus[0], mus[1])


# ---------------------------------------------------------------- complementation (in a weight step)


def _grad_norm(params):
    return sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)


@pytest.mark.parametrize("lam", [0.5, 0.0])
def test_complementation_trains_the_ops_of_the_previous_and_complementary_cells(lam):
    method = make_e2nas(complement_lambda=lam)
    net = method.harness.net
    prev = (3, 2, 1, 3, 2, 4)  # no `none`: every edge reaches the output, so every op can get a gradient
    cur = (3, 3, 2, 3, 1, 2)  # agrees with prev on edges 0 and 3 (conv 3x3)
    method.prev = prev
    method.start_epoch(0, 2)
    xw, yw = images(8, seed=1)
    gen_state = method.harness.gens["choice"].get_state()
    method.step(xw, yw, *images(8, seed=2), cell=cur)
    method.harness.gens["choice"].set_state(gen_state)
    comp = complement_cell(prev, cur, method.harness.gens["choice"])  # the a_c the step drew
    assert comp[0] != 3 and comp[3] != 3 and comp[1:3] + comp[4:] == cur[1:3] + cur[4:]
    only_prev = [(e, prev[e]) for e in range(6) if prev[e] not in (cur[e], comp[e])]
    only_comp = [(e, comp[e]) for e in range(6) if comp[e] not in (cur[e], prev[e])]
    parametric = lambda pairs: [(e, o) for e, o in pairs if net.op_parameters(e, o)]  # noqa: E731
    assert parametric(only_prev), "the test needs a_{t-1}-only ops with weights"
    for e, o in parametric(only_prev) + parametric(only_comp):
        if lam > 0:
            assert _grad_norm(net.op_parameters(e, o)) > 0, f"edge {e} op {o} got no gradient"
        else:
            assert _grad_norm(net.op_parameters(e, o)) == 0
    # a_t's own ops are trained either way.
    assert _grad_norm(net.op_parameters(1, 3)) > 0


def test_complement_same_fraction_is_recorded():
    method = make_e2nas()
    method.prev = (0, 0, 0, 0, 0, 0)
    method.start_epoch(0, 2)
    xw, yw = images(8, seed=1)
    method.step(xw, yw, *images(8, seed=2), cell=(1, 1, 1, 1, 1, 1))  # differs everywhere: a_c == a_t
    method.step(xw, yw, *images(8, seed=2), cell=(1, 1, 1, 1, 1, 2))  # agrees on five edges: a_c != a_t
    assert method.harness.stats.read()["complement_same"] == 0.5


def test_gaussian_kl_matches_torch_distributions():
    mu, log_sigma = torch.tensor([0.3, -1.0]), torch.tensor([-2.0, 0.1])
    q = torch.distributions.Normal(mu, log_sigma.exp())
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    assert gaussian_kl(mu, log_sigma).item() == pytest.approx(torch.distributions.kl_divergence(q, p).sum().item())


def test_straight_through_is_one_hot_in_value_with_the_softmax_gradient():
    logits = torch.randn(6, 5, requires_grad=True)
    probs = torch.softmax(logits, -1)
    h = straight_through(probs, probs.argmax(-1))
    assert torch.equal(h.detach(), F.one_hot(probs.argmax(-1), 5).float())
    (g1,) = torch.autograd.grad((h * torch.arange(5.0)).sum(), logits)
    (g2,) = torch.autograd.grad((torch.softmax(logits, -1) * torch.arange(5.0)).sum(), logits)
    assert torch.allclose(g1, g2)


# ---------------------------------------------------------------- baselines (unit)


def test_gdas_darts_rsps_steps_update_what_they_should():
    xw, yw = images(8, seed=1)
    xa, ya = images(8, seed=2)
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
        cell, _ = method.epoch_arch()
        assert nb201.parse_arch(nb201.format_arch(cell)) == tuple(cell)


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
    vae = build_model(build_graph_set("nb201", nb201.all_archs()[:2]), vcfg, torch.device("cpu"))
    vgae = root / "model.pt"
    save_vgae(vae, vcfg, "nb201", vgae)
    return {"data": data, "warmup": warmup, "vgae": vgae}


def search(files, method, out, seed=0, **kw):
    from e2nas.search import run_search

    cfg = tiny_cfg(batch_size=16, **kw)
    vgae = files["vgae"] if method.startswith("e2nas") else None
    return run_search(
        method, files["data"], files["warmup"], vgae, cfg, seed, out / "result.json", out / "search.ckpt",
        table=FakeTable(), progress=False,
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
    result = search(stage_files, "e2nas", tmp_path)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk == result
    assert result["method"] == "e2nas" and result["space"] == "nb201" and result["epochs"] == 2
    assert nb201.parse_arch(result["arch"]) and nb201.parse_arch(result["start_arch"])
    assert result["nb201"] == FakeTable().lookup(result["arch"])
    assert result["arch"] == result["trajectory"][-1]["arch"]
    first, last = result["trajectory"]
    assert first["eta"] == pytest.approx(1 - 1 / (1 + math.exp(10))) and last["eta"] == pytest.approx(0.5)  # T = 2
    assert first["tau"] == pytest.approx(10.0) and last["tau"] == pytest.approx(0.1)
    assert len(last["mu"]) == LATENT and 0.01 <= last["sigma"] <= 1.0
    assert 0.0 <= last["complement_same_fraction"] <= 1.0
    assert last["forgetting"] == pytest.approx(last["forgetting_before"] - last["forgetting_after"])
    assert 0.0 <= last["acc_val"] <= 100.0
    assert last["novelty"] is not None  # archive of 4 fills in the first epoch
    assert last["nb201_cifar10"] == FakeTable().lookup(last["arch"])["cifar10"]


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
    assert record["mu"] is None and 0.0 <= record["acc_val"] <= 100.0
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
    with pytest.raises(ValueError, match="trained on"):
        other = replace(stage_files["data"], name="cifar10")
        run_search("gdas", other, stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")
    with pytest.raises(ValueError, match="unknown search method"):
        run_search("enas", stage_files["data"], stage_files["warmup"], None, tiny_cfg(), 0, tmp_path / "r.json", tmp_path / "c")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs are only observable on a CUDA device")
def test_a_step_syncs_with_the_host_at_most_once():
    """E2NAS and GDAS copy the step's 6 op indices to the host; nothing else in a step waits on the GPU."""
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

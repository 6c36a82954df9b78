"""e2nas.vgae: decoder masking and gradients, injective encoder, model files, metric definitions, training."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from e2nas.checkpoint import CheckpointError
from e2nas.figures import PCAProjection, latent_projection
from e2nas.graphs import GraphSet, build_graph_set
from e2nas.spaces import nb201
from e2nas.vgae import (
    MASK_VALUE,
    GraphVAE,
    VGAEConfig,
    evaluate_vgae,
    heldout_split,
    load_vgae,
    prior_metrics,
    reconstruction_accuracy,
    run_pretraining,
    save_vgae,
    smoothness,
    train_vgae,
    unique_means,
)

TINY = VGAEConfig(latent_dim=8, hidden_dim=32, num_layers=2, epochs=15, batch_size=32, lr=1e-2, kl_warmup=2)


@pytest.fixture(scope="module")
def all_graphs() -> GraphSet:
    return build_graph_set("nb201")


@pytest.fixture(scope="module")
def subset() -> GraphSet:
    """400 distinct NB201 cells, drawn with a fixed seed."""
    idx = torch.randperm(nb201.NUM_ARCHS, generator=torch.Generator().manual_seed(1))[:400]
    return build_graph_set("nb201", nb201.all_archs()[idx])


def untrained(cfg: VGAEConfig = TINY, choice_sizes=nb201.CHOICE_SIZES, num_features: int = 15) -> GraphVAE:
    torch.manual_seed(0)
    return GraphVAE(num_features, choice_sizes, cfg).eval()


# -- decoder


def test_decoding_is_differentiable_at_temperature_above_one():
    model = untrained()
    model.requires_grad_(False)  # as stage 4 freezes it: the gradient must still reach z
    z = torch.randn(3, TINY.latent_dim, requires_grad=True)
    probs = torch.softmax(model.decode_logits(z) / 2.0, dim=-1)
    weights = torch.randn(probs.shape, generator=torch.Generator().manual_seed(0))
    (probs * weights).sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0


def test_unequal_choice_sizes_are_masked():
    sizes = (3, 5, 2, 1)
    model = untrained(choice_sizes=sizes)
    z = 50 * torch.randn(256, TINY.latent_dim, generator=torch.Generator().manual_seed(0))
    logits = model.decode_logits(z)
    assert logits.shape == (256, 4, 5)
    for p, size in enumerate(sizes):
        assert (logits[:, p, size:] == MASK_VALUE).all()
        assert (logits[:, p, :size] > MASK_VALUE / 2).all()
    probs = torch.softmax(logits / 10.0, dim=-1)
    assert torch.allclose(probs.sum(-1), torch.ones(256, 4))
    archs = model.decode_archs(z)
    assert archs.shape == (256, 4) and archs.dtype == torch.long
    assert (archs < torch.tensor(sizes)).all()
    assert (archs[:, 3] == 0).all()


def test_invalid_choice_sizes_are_rejected():
    with pytest.raises(ValueError, match="choice_sizes"):
        GraphVAE(15, (), TINY)


# -- encoder


def test_untrained_encoder_tells_every_cell_apart(all_graphs):
    model = untrained(VGAEConfig())
    mu = model.encode_archs(all_graphs)
    assert mu.shape == (nb201.NUM_ARCHS, VGAEConfig().latent_dim)
    assert unique_means(mu) == nb201.NUM_ARCHS


def test_encode_archs_matches_a_direct_encode_and_keeps_the_mode(subset):
    model = untrained().train()
    index = torch.tensor([5, 0, 399])
    mu = model.encode_archs(subset, index)
    b = subset.batch(index)
    with torch.no_grad():
        direct, _ = model.encode(b.x, b.edge_index, b.batch)
    assert torch.allclose(mu, direct, atol=1e-6)
    assert model.training and not mu.requires_grad


# -- model.pt


def test_saved_model_reloads_identically_in_a_fresh_process(tmp_path, subset):
    model = untrained()
    path = tmp_path / "model.pt"
    save_vgae(model, TINY, "nb201", path)
    z = torch.randn(64, TINY.latent_dim, generator=torch.Generator().manual_seed(3))
    torch.save({"z": z}, tmp_path / "z.pt")
    subset.save(tmp_path / "graphs.pt")
    script = textwrap.dedent(
        f"""
        import torch
        torch.set_num_threads(1)
        from e2nas.graphs import GraphSet
        from e2nas.vgae import load_vgae
        model = load_vgae({str(path)!r})
        z = torch.load({str(tmp_path / "z.pt")!r}, weights_only=True)["z"]
        graphs = GraphSet.load({str(tmp_path / "graphs.pt")!r})
        out = {{"logits": model.decode_logits(z).detach(), "archs": model.decode_archs(z),
                "mu": model.encode_archs(graphs), "space": model.space}}
        torch.save(out, {str(tmp_path / "out.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        assert torch.equal(out["logits"], model.decode_logits(z))
    assert torch.equal(out["archs"], model.decode_archs(z))
    assert torch.equal(out["mu"], model.encode_archs(subset))
    assert out["space"] == "nb201"


def test_corrupt_model_file_names_the_path(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match=str(path)):
        load_vgae(path)


def test_foreign_model_file_names_the_path(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3), "config": {}}, path)
    with pytest.raises(CheckpointError, match=f"{path}.*lacks"):
        load_vgae(path)


def test_mismatched_weights_or_config_name_the_path(tmp_path):
    path = tmp_path / "model.pt"
    save_vgae(untrained(replace(TINY, hidden_dim=16)), TINY, "nb201", path)  # weights of another width
    with pytest.raises(CheckpointError, match=f"{path}.*does not match"):
        load_vgae(path)
    obj = torch.load(path, weights_only=True)
    obj["config"]["no_such_key"] = 1
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_vgae(path)


# -- metric definitions on hand-made cases


def test_unique_means_counts_near_duplicates_out():
    # Two pairs: one 5e-4 apart (both count out), one 2e-3 apart (both count in), far from
    # the origin so that float32 matrix-product distances would blur them.
    base = torch.tensor([[0.0, 0.0], [5e-4, 0.0], [1.0, 0.0], [1.0, 2e-3], [3.0, 3.0]]) + 100.0
    assert unique_means(base) == 3
    assert unique_means(base, chunk=2) == 3
    assert unique_means(base, tol=1e-5) == 5
    assert unique_means(torch.zeros(4, 3)) == 0
    assert unique_means(torch.zeros(1, 3)) == 1


class StubDecoder:
    """decode_archs: the all-conv cell where z[:, 0] > 0, the all-`none` (degenerate) cell elsewhere."""

    cfg = SimpleNamespace(latent_dim=2)
    device = torch.device("cpu")

    def decode_archs(self, z):
        return torch.where(z[:, :1] > 0, 3, 0).expand(-1, nb201.NUM_EDGES).long()


def test_reconstruction_accuracy_counts_only_exact_cells():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    archs = torch.tensor([[3] * 6, [0] * 6, [3] * 5 + [2], [0] * 5 + [1]])
    assert reconstruction_accuracy(StubDecoder(), mu, archs) == 0.5


def test_prior_metrics_on_a_two_cell_decoder():
    m = prior_metrics(StubDecoder(), "nb201", num_samples=4000, seed=0)
    assert abs(m["prior_validity"] - 0.5) < 0.05  # half the prior decodes to the all-`none` cell
    assert m["prior_uniqueness"] == 2
    assert m["prior_coverage"] == 2 / nb201.NUM_ARCHS


def test_smoothness_is_one_when_latent_distance_follows_edit_distance():
    archs = nb201.all_archs()[:: 7]
    one_hot = torch.nn.functional.one_hot(archs, 5).flatten(1).float()  # L2 = sqrt(2 · Hamming)
    assert smoothness(one_hot, archs, num_pairs=2000) == pytest.approx(1.0)
    noise = torch.randn(len(archs), 4, generator=torch.Generator().manual_seed(0))
    assert abs(smoothness(noise, archs, num_pairs=2000)) < 0.1


def test_heldout_split_is_seeded_disjoint_and_complete():
    cfg = VGAEConfig(heldout_fraction=0.2, seed=4)
    train, held = heldout_split(1000, cfg)
    assert len(held) == 200 and len(train) == 800
    assert torch.equal(torch.cat([train, held]).sort().values, torch.arange(1000))
    assert torch.equal(held, heldout_split(1000, cfg)[1])
    assert not torch.equal(held, heldout_split(1000, replace(cfg, seed=5))[1])
    with pytest.raises(ValueError, match="heldout_fraction"):
        heldout_split(10, replace(cfg, heldout_fraction=1.0))


def test_latent_projection_recovers_a_plane_and_projects_new_points():
    gen = torch.Generator().manual_seed(0)
    coords = torch.randn(200, 2, generator=gen) * torch.tensor([3.0, 1.0])
    axes = torch.linalg.qr(torch.randn(6, 2, generator=gen))[0]  # orthonormal plane in 6-D
    mu = coords @ axes.T + 5.0
    xy = latent_projection(mu)
    assert xy.shape == (200, 2)
    exact = "donot_use_mm_for_euclid_dist"  # the matrix-product form is off by ~1e-3 near 0
    assert torch.allclose(torch.cdist(xy, xy, compute_mode=exact), torch.cdist(coords, coords, compute_mode=exact), atol=1e-4)
    proj = PCAProjection.fit(mu)
    assert torch.allclose(proj(mu[:5]), xy[:5])
    assert torch.equal(PCAProjection.fit(mu).basis, proj.basis)  # deterministic signs


# -- training


def test_short_training_improves_reconstruction(subset):
    records = []
    rng = torch.get_rng_state()
    model, history = train_vgae(subset, TINY, progress=False, on_epoch=lambda e, r: records.append((e, r)))
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is left alone
    assert [e for e, _ in records] == list(range(TINY.epochs))
    assert history["recon_loss"][-1] < 0.85 * history["recon_loss"][0]
    assert history["beta"][0] == 0.0 and history["beta"][-1] == TINY.beta
    # 180 steps on 360 cells are far from exact cells, so compare per-edge accuracy (chance 0.2).
    mu = model.encode_archs(subset)
    per_edge = (model.decode_archs(mu) == subset.archs).float().mean()
    before = (untrained().decode_archs(untrained().encode_archs(subset)) == subset.archs).float().mean()
    assert per_edge > 0.35 and per_edge > before + 0.1
    z = mu[:4].clone().requires_grad_(True)  # a trained decoder still passes gradient at τ = 2
    torch.softmax(model.decode_logits(z) / 2.0, dim=-1)[..., 3].sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    again, _ = train_vgae(subset, TINY, progress=False)  # seeded: the same weights again
    assert torch.equal(again.encode_archs(subset), mu)


def test_run_pretraining_writes_model_and_metrics(tmp_path, subset):
    subset.save(tmp_path / "graphs.pt")
    cfg = replace(TINY, epochs=1)
    metrics, history = run_pretraining(
        tmp_path / "graphs.pt", tmp_path / "vgae" / "model.pt", tmp_path / "vgae" / "metrics.json", cfg, progress=False
    )
    on_disk = json.loads((tmp_path / "vgae" / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    for key in (
        "reconstruction_accuracy", "heldout_reconstruction_accuracy", "unique_means", "num_archs", "latent_dim",
        "prior_validity", "prior_uniqueness", "prior_coverage", "smoothness", "train_seconds", "final_loss",
    ):
        assert key in metrics, key
    assert metrics["num_archs"] == 400 and metrics["num_heldout"] == 40 and metrics["latent_dim"] == 8
    assert 0 <= metrics["heldout_reconstruction_accuracy"] <= 1 and metrics["final_loss"] == history["loss"][-1]
    model = load_vgae(tmp_path / "vgae" / "model.pt")
    assert model.cfg == cfg and model.space == "nb201"
    again = evaluate_vgae(model, subset, heldout_split(400, cfg)[1], cfg)
    assert again["reconstruction_accuracy"] == metrics["reconstruction_accuracy"]

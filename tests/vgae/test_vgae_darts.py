"""e2nas.vgae on the DARTS space: the position-aware ("concat") readout, its model file, and a short
training run on sampled genotypes that decodes both input choices and ops of held-out cells."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from e2nas.graphs import build_graph_set
from e2nas.spaces import darts
from e2nas.vgae import GraphVAE, VGAEConfig, heldout_split, load_vgae, save_vgae, train_vgae, unique_means

# The DARTS profile's vgae section (benchmarks/vgae.py DARTS_CONFIG), shrunk to seconds.
SMALL = VGAEConfig(
    readout="concat", latent_dim=64, hidden_dim=32, decoder_dim=256, epochs=6, batch_size=64, kl_warmup=2, heldout_fraction=0.05
)


@pytest.fixture(scope="module")
def graphs():
    return build_graph_set("darts", darts.sample_archs(400, torch.Generator().manual_seed(0)))


def test_concat_readout_needs_the_node_count_and_checks_it(graphs):
    with pytest.raises(ValueError, match="num_nodes"):
        GraphVAE(graphs.num_features, darts.CHOICE_SIZES, SMALL)
    with pytest.raises(ValueError, match="readout"):
        GraphVAE(graphs.num_features, darts.CHOICE_SIZES, replace(SMALL, readout="mean"), num_nodes=30)
    model = GraphVAE(graphs.num_features, darts.CHOICE_SIZES, SMALL, num_nodes=graphs.x.shape[1] + 1)
    b = graphs.batch(torch.arange(3))
    with pytest.raises(ValueError, match="31 nodes"):
        model.encode(b.x, b.edge_index, b.batch)


def test_concat_readout_tells_apart_cells_that_swap_two_ops(graphs):
    # The same ops at two positions, swapped: only where each op sits tells the cells apart.
    arch = graphs.archs[0].clone()
    a, b = darts.OP_POSITIONS[0], darts.OP_POSITIONS[5]
    arch[a], arch[b] = 1, 4
    swapped = arch.clone()
    swapped[a], swapped[b] = 4, 1
    pair = build_graph_set("darts", torch.stack([arch, swapped]))
    torch.manual_seed(0)
    model = GraphVAE(pair.num_features, darts.CHOICE_SIZES, SMALL, num_nodes=pair.x.shape[1]).eval()
    assert unique_means(model.encode_archs(pair)) == 2


def test_concat_model_file_reloads_identically(tmp_path, graphs):
    torch.manual_seed(0)
    model = GraphVAE(graphs.num_features, darts.CHOICE_SIZES, SMALL, num_nodes=graphs.x.shape[1]).eval()
    save_vgae(model, SMALL, "darts", tmp_path / "model.pt")
    again = load_vgae(tmp_path / "model.pt")
    assert again.num_nodes == 30 and again.cfg == SMALL and again.space == "darts"
    assert torch.equal(again.encode_archs(graphs), model.encode_archs(graphs))


def test_short_training_decodes_heldout_genotypes():
    """16,000 sampled genotypes, 6 epochs (~20 s): most held-out cells decode exactly.

    The ≥ 99.9% exact held-out bar needs 10 epochs at 20,000 cells; benchmarks/vgae.py
    --space darts checks it. (Fewer cells learn slower per step, not just overfit: at 4,000
    cells ops stay near 70% even on training cells.)
    """
    data = build_graph_set("darts", darts.sample_archs(16000, torch.Generator().manual_seed(1)))
    model, history = train_vgae(data, SMALL, progress=False)
    _, held = heldout_split(len(data), SMALL)
    pred = model.decode_archs(model.encode_archs(data, held))
    right = pred == data.archs[held]
    inputs, ops = right[:, list(darts.INPUT_POSITIONS)], right[:, list(darts.OP_POSITIONS)]
    assert inputs.float().mean() > 0.99, inputs.float().mean()
    assert ops.float().mean() > 0.97, ops.float().mean()
    assert right.all(dim=1).float().mean() > 0.8, right.all(dim=1).float().mean()
    assert darts.valid_mask(pred).float().mean() > 0.9  # decoded cells are canonical DARTS cells
    assert history["recon_loss"][-1] < 0.5 * history["recon_loss"][0]

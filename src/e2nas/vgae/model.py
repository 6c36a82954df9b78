"""The graph VAE: a GIN encoder over cell graphs and an MLP decoder to per-position choice logits.

The encoder reads the stage-1 graphs (one-hot [cell-node | op | edge position] node features,
directed edges frm → op → to), so two cells with the same ops on different edges get different
embeddings. The decoder is space-independent: a space describes itself by `CHOICE_SIZES`,
the number of options at each position; logits come out as (B, P, max(CHOICE_SIZES)) with the
options a position does not have filled with MASK_VALUE, so softmax gives them probability 0
and argmax never picks them. The decoder is a plain MLP because stage 4 calls it (and
backpropagates through it) at every search step.

DARTS (32 choices) needs two settings NB201 (6) does not: readout "concat" (each op node keeps
its own slot in the graph embedding instead of a sum that must bind op to position) and a wider
decoder (decoder_dim 256); with them 20,000 sampled genotypes train to exact held-out
reconstruction (benchmarks/vgae.py --space darts).

`GraphVAE` subclasses PyG's `VGAE` to reuse its `reparametrize` and `kl_loss`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MLP, GINConv, global_add_pool
from torch_geometric.nn.models import VGAE
from torch_geometric.nn.models.autoencoder import MAX_LOGSTD

from e2nas.checkpoint import CheckpointError, atomic_save, safe_load

# Fill value for options a position does not have. Finite (not -inf) so that a softmax over a
# row stays defined and 0·MASK_VALUE terms in a loss stay 0; after division by any τ ≤ 1e4 it
# is still far below every real logit.
MASK_VALUE = -1e9
INIT_LOGSTD = -3.0  # log σ of every cell before training (σ ≈ 0.05)


@dataclass
class VGAEConfig:
    """Config section `vgae`; the defaults reach exact (also held-out) reconstruction of NB201 in < 1 min on 2 cores."""

    latent_dim: int = 16  # d, the dimension of the latent ("equivalent") space
    hidden_dim: int = 64  # width of the GIN layers (and of the decoder MLP unless decoder_dim is set)
    num_layers: int = 3  # GIN layers (message-passing hops along frm → op → to)
    decoder_layers: int = 2  # hidden layers of the decoder MLP
    # Width of the decoder MLP (None: hidden_dim). Its hidden layers must hold every choice at
    # once: 6 for NB201, but 32 for DARTS, where a width of 64 caps op accuracy near 50-80%.
    decoder_dim: int | None = None
    epochs: int = 20  # passes over the training cells (held-out reconstruction reaches 1.0 after ~8)
    batch_size: int = 256  # cells per mini-batch
    lr: float = 4e-3  # Adam learning rate, cosine-annealed to lr / 20
    beta: float = 0.05  # KL weight β in recon + β·KL, reached after the warm-up
    kl_warmup: int = 5  # epochs over which β ramps linearly from 0 (lets the encoder separate cells first)
    heldout_fraction: float = 0.1  # share of cells never trained on, for the held-out reconstruction accuracy
    seed: int = 0  # seeds initialisation, split, batch order and reparametrisation noise
    # Graph readout: "sum" pools every layer's node embeddings (permutation-invariant; NB201
    # reaches 1.0 with it); "concat" concatenates them in the graph's node order, for spaces
    # whose graphs all share one node layout (DARTS: with a sum, μ must bind each op to its
    # position inside the pooled vector; measured, ops then decode at 15-75% per position
    # while inputs reach 100%; in fixed order each op node keeps its own slot).
    readout: str = "sum"


READOUTS = ("sum", "concat")


class GINEncoder(nn.Module):
    """GIN layers over the directed cell graph; every layer's output, read out per graph, feeds μ and log σ.

    readout "sum": global_add_pool per layer. readout "concat": the node embeddings of each
    graph side by side in node order (needs `num_nodes`, the same for every graph; a batch
    must hold each graph's nodes contiguously, as `GraphSet.batch` does).
    """

    def __init__(
        self, num_features: int, hidden_dim: int, latent_dim: int, num_layers: int, readout: str = "sum", num_nodes: int | None = None
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"vgae.readout must be one of {READOUTS}, got {readout!r}")
        if readout == "concat" and not num_nodes:
            raise ValueError("vgae.readout 'concat' needs the number of nodes per graph (num_nodes)")
        self.readout, self.num_nodes = readout, num_nodes
        dims = [num_features] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            GINConv(MLP([dims[i], hidden_dim, hidden_dim], norm=None), train_eps=True) for i in range(num_layers)
        )
        # Jumping-knowledge readout (as in the GIN paper): early layers keep the local op
        # identity that later, smoother layers mix away.
        width = hidden_dim * num_layers * (num_nodes if readout == "concat" else 1)
        self.mu = nn.Linear(width, latent_dim)
        self.logstd = nn.Linear(width, latent_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default inits, but σ starts at exp(INIT_LOGSTD) for every cell (PyG's VGAE calls this)."""
        for conv in self.convs:
            conv.reset_parameters()
        self.mu.reset_parameters()
        # Untrained means differ between cells by only ~0.05, so unit noise would drown them
        # and the decoder would learn nothing until the encoder had spread them out.
        nn.init.zeros_(self.logstd.weight)
        nn.init.constant_(self.logstd.bias, INIT_LOGSTD)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        layers = []
        h = x
        for conv in self.convs:
            h = F.relu(conv(h, edge_index))
            layers.append(h)
        if self.readout == "concat":
            if h.shape[0] % self.num_nodes:
                raise ValueError(f"readout 'concat' expects graphs of {self.num_nodes} nodes, got {h.shape[0]} nodes in all")
            g = torch.cat(layers, dim=-1).reshape(-1, self.num_nodes * h.shape[-1] * len(layers))
        else:
            g = torch.cat([global_add_pool(h, batch) for h in layers], dim=-1)
        return self.mu(g), self.logstd(g)


class ChoiceDecoder(nn.Module):
    """z (B, d) → masked logits (B, P, K) over each position's options, K = max(choice_sizes)."""

    def __init__(self, latent_dim: int, hidden_dim: int, num_layers: int, choice_sizes: tuple[int, ...]):
        super().__init__()
        self.num_positions, self.num_options = len(choice_sizes), max(choice_sizes)
        self.mlp = MLP([latent_dim] + [hidden_dim] * num_layers + [self.num_positions * self.num_options], norm=None)
        options = torch.arange(self.num_options)
        self.register_buffer("valid", options.unsqueeze(0) < torch.tensor(choice_sizes).unsqueeze(1), persistent=False)

    def forward(self, z: Tensor) -> Tensor:
        logits = self.mlp(z).view(-1, self.num_positions, self.num_options)
        return logits.masked_fill(~self.valid, MASK_VALUE)


class GraphVAE(VGAE):
    """Variational graph autoencoder from cell graphs to per-position choice logits."""

    def __init__(self, num_features: int, choice_sizes: tuple[int, ...], cfg: VGAEConfig, num_nodes: int | None = None):
        """num_nodes: nodes per graph, needed by readout "concat" (all graphs of a space share it)."""
        choice_sizes = tuple(int(c) for c in choice_sizes)
        if not choice_sizes or min(choice_sizes) < 1:
            raise ValueError(f"choice_sizes must be a non-empty tuple of positive option counts, got {choice_sizes}")
        super().__init__(
            encoder=GINEncoder(num_features, cfg.hidden_dim, cfg.latent_dim, cfg.num_layers, cfg.readout, num_nodes),
            decoder=ChoiceDecoder(cfg.latent_dim, cfg.decoder_dim or cfg.hidden_dim, cfg.decoder_layers, choice_sizes),
        )
        self.num_features, self.choice_sizes, self.cfg, self.num_nodes = num_features, choice_sizes, cfg, num_nodes
        self.space: str | None = None  # set by load_vgae from model.pt

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ), each (B, d); log σ clamped as PyG's VGAE does."""
        mu, logstd = self.encoder(x, edge_index, batch)
        return mu, logstd.clamp(max=MAX_LOGSTD)

    def decode_logits(self, z: Tensor) -> Tensor:
        """Masked logits (B, P, K); differentiable in z."""
        return self.decoder(z)

    def decode_archs(self, z: Tensor) -> Tensor:
        """The cells z decodes to: argmax per position, (B, P) long."""
        with torch.no_grad():
            return self.decode_logits(z).argmax(dim=-1)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits of a reparametrised sample, μ, log σ); the sample is μ itself in eval mode."""
        mu, logstd = self.encode(x, edge_index, batch)
        return self.decode_logits(self.reparametrize(mu, logstd)), mu, logstd

    def recon_loss(self, logits: Tensor, archs: Tensor) -> Tensor:
        """Cross-entropy of the true choices, summed over positions and averaged over cells."""
        return F.cross_entropy(logits.flatten(0, 1), archs.flatten(), reduction="sum") / archs.shape[0]

    def encode_archs(self, graphs, index: Tensor | None = None, batch_size: int = 4096) -> Tensor:
        """μ of the cells `graphs[index]` (all when None), (N, d) on the model's device, without grad."""
        return self.encode_posterior(graphs, index, batch_size)[0]

    def encode_posterior(self, graphs, index: Tensor | None = None, batch_size: int = 4096) -> tuple[Tensor, Tensor]:
        """(μ, σ) of the posterior of the cells `graphs[index]` (all when None), each (N, d), without grad."""
        index = torch.arange(len(graphs)) if index is None else torch.as_tensor(index, dtype=torch.long).cpu()
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                means, logstds = [], []
                for chunk in index.split(batch_size):
                    b = graphs.batch(chunk).to(self.device)
                    mean, logstd = self.encode(b.x, b.edge_index, b.batch)
                    means.append(mean)
                    logstds.append(logstd)
        finally:
            self.train(was_training)
        if not means:
            empty = torch.empty(0, self.cfg.latent_dim, device=self.device)
            return empty, empty.clone()
        return torch.cat(means), torch.cat(logstds).exp()


# -- model.pt

MODEL_KEYS = ("state_dict", "config", "num_features", "choice_sizes", "space")


def save_vgae(model: GraphVAE, cfg: VGAEConfig, space: str, path: str | os.PathLike) -> None:
    """Write model.pt: the weights and everything needed to rebuild the model (loadable with weights_only)."""
    atomic_save(
        {
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "config": asdict(cfg),
            "num_features": int(model.num_features),
            "choice_sizes": list(model.choice_sizes),
            "space": space,
            "num_nodes": model.num_nodes,  # None unless readout "concat" needs it
        },
        path,
    )


def load_vgae(path: str | os.PathLike, device: str | torch.device = "cpu") -> GraphVAE:
    """Rebuild a saved model on `device`, in eval mode; a corrupt or mismatched file raises CheckpointError."""
    path = Path(path)
    obj = safe_load(path, "VGAE model")
    rerun = "delete it and rerun stage 2 (rule pretrain_vgae)"
    missing = [k for k in MODEL_KEYS if k not in obj]
    if missing:
        raise CheckpointError(f"VGAE model {path} lacks {missing}; it is not a stage-2 model.pt: {rerun}")
    try:
        cfg = VGAEConfig(**obj["config"])
        model = GraphVAE(obj["num_features"], tuple(obj["choice_sizes"]), cfg, num_nodes=obj.get("num_nodes"))
        model.load_state_dict(obj["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"VGAE model {path} does not match this code's GraphVAE ({type(exc).__name__}: {str(exc)[:300]}); {rerun}"
        ) from None
    model.space = obj["space"]
    return model.to(device).eval()


def encode_stage_graphs(model_path: str | os.PathLike, graphs_path: str | os.PathLike, device="cpu") -> Tensor:
    """The latent means of every stage-1 graph under a saved model (stage 2's model.pt), (N, d)."""
    from e2nas.graphs import GraphSet

    return load_vgae(model_path, device).encode_archs(GraphSet.load(graphs_path))

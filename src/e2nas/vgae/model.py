"""The graph VAE: a GIN encoder over cell graphs and an MLP decoder to per-position choice logits.

The encoder reads the stage-1 graphs (one-hot [cell-node | op | edge position] node features,
directed edges frm → op → to), so two cells with the same ops on different edges get different
embeddings. The decoder is space-independent: a space describes itself by `CHOICE_SIZES`,
the number of options at each position; logits come out as (B, P, max(CHOICE_SIZES)) with the
options a position does not have filled with MASK_VALUE, so softmax gives them probability 0
and argmax never picks them. The decoder is a plain MLP because stage 4 calls it (and
backpropagates through it) at every search step.

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
    hidden_dim: int = 64  # width of the GIN layers and of the decoder MLP
    num_layers: int = 3  # GIN layers (message-passing hops along frm → op → to)
    decoder_layers: int = 2  # hidden layers of the decoder MLP
    epochs: int = 20  # passes over the training cells (held-out reconstruction reaches 1.0 after ~8)
    batch_size: int = 256  # cells per mini-batch
    lr: float = 4e-3  # Adam learning rate, cosine-annealed to lr / 20
    beta: float = 0.05  # KL weight β in recon + β·KL, reached after the warm-up
    kl_warmup: int = 5  # epochs over which β ramps linearly from 0 (lets the encoder separate cells first)
    heldout_fraction: float = 0.1  # share of cells never trained on, for the held-out reconstruction accuracy
    seed: int = 0  # seeds initialisation, split, batch order and reparametrisation noise


class GINEncoder(nn.Module):
    """GIN layers over the directed cell graph; the sum-pooled output of every layer feeds μ and log σ."""

    def __init__(self, num_features: int, hidden_dim: int, latent_dim: int, num_layers: int):
        super().__init__()
        dims = [num_features] + [hidden_dim] * num_layers
        self.convs = nn.ModuleList(
            GINConv(MLP([dims[i], hidden_dim, hidden_dim], norm=None), train_eps=True) for i in range(num_layers)
        )
        # Jumping-knowledge readout (as in the GIN paper): early layers keep the local op
        # identity that later, smoother layers mix away.
        self.mu = nn.Linear(hidden_dim * num_layers, latent_dim)
        self.logstd = nn.Linear(hidden_dim * num_layers, latent_dim)
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
        pooled = []
        h = x
        for conv in self.convs:
            h = F.relu(conv(h, edge_index))
            pooled.append(global_add_pool(h, batch))
        g = torch.cat(pooled, dim=-1)
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

    def __init__(self, num_features: int, choice_sizes: tuple[int, ...], cfg: VGAEConfig):
        choice_sizes = tuple(int(c) for c in choice_sizes)
        if not choice_sizes or min(choice_sizes) < 1:
            raise ValueError(f"choice_sizes must be a non-empty tuple of positive option counts, got {choice_sizes}")
        super().__init__(
            encoder=GINEncoder(num_features, cfg.hidden_dim, cfg.latent_dim, cfg.num_layers),
            decoder=ChoiceDecoder(cfg.latent_dim, cfg.hidden_dim, cfg.decoder_layers, choice_sizes),
        )
        self.num_features, self.choice_sizes, self.cfg = num_features, choice_sizes, cfg
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
        index = torch.arange(len(graphs)) if index is None else torch.as_tensor(index, dtype=torch.long).cpu()
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                parts = []
                for chunk in index.split(batch_size):
                    b = graphs.batch(chunk).to(self.device)
                    parts.append(self.encode(b.x, b.edge_index, b.batch)[0])
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else torch.empty(0, self.cfg.latent_dim, device=self.device)


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
        model = GraphVAE(obj["num_features"], tuple(obj["choice_sizes"]), cfg)
        model.load_state_dict(obj["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"VGAE model {path} does not match this code's GraphVAE ({type(exc).__name__}: {str(exc)[:300]}); {rerun}"
        ) from None
    model.space = obj["space"]
    return model.to(device).eval()

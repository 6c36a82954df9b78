"""E2NAS: search a Gaussian in the VGAE's latent space, through the decoder, with exploration and complementation.

One step (in this order; both halves use the step's single latent sample):
  1. sample z = μ + σ ⊙ ε, decode logits(z), P = softmax(logits / τ), a_t = the most probable
     path under P (NB201: argmax per edge; DARTS: see e2nas.search.space) — its indices are
     copied to the host (the step's one sync: they pick the path to run);
  2. weight half, on a batch of the weights half of the split:
     L_w = (1 − λ) L(a_t) + λ/2 [L(a_{t−1}) + L(a_c)], every term with gradient;
  3. architecture half, on a batch of the arch half, with the weights just updated:
     L_arch = (1 − η_t) L_val(a_t; h) − η_t Novelty(z) + β_q KL(q ‖ N(0, I)), where the supernet runs
     a_t's single path with straight-through weights h = onehot(a_t) − stopgrad(P) + P, so ∂L/∂z
     flows through the (frozen) decoder into μ and log σ; Adam updates them; σ is projected
     into [σ_min, 1]; then z joins the novelty archive (its novelty was computed without it).

Ablations run the same code: `e2nas-noexplore` fixes η ≡ 0, `e2nas-nocomplement` fixes λ = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from e2nas.search.common import (
    Cell,
    Harness,
    SearchMethod,
    eta_at,
    geometric_tau,
    hard_cell,
    straight_through,
)
from e2nas.search.novelty import LatentArchive


def complement_terms(prev: Cell, cur: Cell, comp: Cell, lam: float) -> list[tuple[Cell, float]]:
    """The weight loss's terms: (1 − λ) L(a_t) + λ/2 L(a_{t−1}) + λ/2 L(a_c); λ = 0 keeps only a_t."""
    if lam == 0:
        return [(cur, 1.0)]
    return [(cur, 1.0 - lam), (prev, lam / 2), (comp, lam / 2)]


def gaussian_kl(mu: Tensor, log_sigma: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)), summed over the latent dimensions."""
    return 0.5 * (torch.exp(2 * log_sigma) + mu.pow(2) - 1.0 - 2 * log_sigma).sum()


def encode_cell(vae, cell: Cell, device, space: str = "nb201") -> Tensor:
    """The VGAE mean μ(cell) (d,), where E2NAS's q(z) starts."""
    from e2nas.graphs import build_graph_set

    graphs = build_graph_set(space, torch.tensor([cell], dtype=torch.long))
    with torch.no_grad():
        return vae.encode_archs(graphs).reshape(-1).to(device).float()


class E2NAS(SearchMethod):
    """q(z) = N(μ, diag σ²) over the decoder's latent space; see the module doc for one step."""

    def __init__(
        self,
        harness: Harness,
        decoder: nn.Module,
        mu0: Tensor,
        explore: bool = True,
        complement_lambda: float | None = None,
        name: str = "e2nas",
        start_cell: Cell | None = None,
    ):
        super().__init__(harness)
        cfg, device = self.cfg, harness.device
        self.name, self.explore = name, explore
        self.lam = cfg.complement_lambda if complement_lambda is None else complement_lambda
        self.decoder = decoder.eval().requires_grad_(False)  # frozen: the gradient passes through it only
        self.dim = mu0.numel()
        self.mu = nn.Parameter(mu0.detach().reshape(self.dim).clone().to(device))
        self.log_sigma = nn.Parameter(torch.full((self.dim,), math.log(cfg.sigma_init), device=device))
        self.opt = torch.optim.Adam(
            [
                {"params": [self.mu], "weight_decay": cfg.arch_weight_decay},
                # No weight decay on log σ: decaying it towards 0 would pull σ towards 1.
                {"params": [self.log_sigma], "weight_decay": 0.0},
            ],
            lr=cfg.arch_lr,
            betas=(cfg.arch_beta1, cfg.arch_beta2),
        )
        self.archive = LatentArchive(cfg.archive_size, self.dim, device)
        self.prev: Cell | None = None  # a_{t−1}
        self.start_cell = start_cell
        self.tau, self.eta = cfg.tau_max, 0.0
        self._check_decoder()

    @classmethod
    def for_method(cls, method: str, harness: Harness, vae) -> "E2NAS":
        """The method or ablation `method`, starting at the VGAE encoding of a seeded random (valid) cell."""
        space = harness.space.name
        if getattr(vae, "space", None) not in (None, space):
            raise ValueError(f"the VGAE was trained on the {vae.space!r} space, but the supernet is {space!r}: "
                             f"use stage 2's model for space {space!r}")
        start = harness.space.sample(1, harness.gens["init"], valid=True)[0]
        mu0 = encode_cell(vae, start, harness.device, space)
        return cls(
            harness,
            vae,
            mu0,
            explore=method != "e2nas-noexplore",
            complement_lambda=0.0 if method == "e2nas-nocomplement" else None,
            name=method,
            start_cell=start,
        )

    def _check_decoder(self) -> None:
        shape = tuple(self.decoder.decode_logits(self.mu.detach().reshape(1, -1)).shape)
        want = (1, *self.harness.space.decoder_shape)
        if shape != want:
            raise ValueError(
                f"decoder.decode_logits gives {shape} for one latent; a {self.harness.space.name} search needs {want}"
            )

    # -- schedules and q(z)

    def start_epoch(self, epoch: int, epochs: int) -> dict:
        self.tau = geometric_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)
        self.eta = eta_at(epoch, epochs, self.cfg.explore_r) if self.explore else 0.0
        return {"eta": self.eta, "tau": self.tau}

    def sigma(self) -> Tensor:
        return self.log_sigma.exp()  # kept in [σ_min, 1] by the projection after each update

    def sample(self) -> tuple[Tensor, Tensor]:
        """z = μ + σ ⊙ ε and P(z) = softmax(decoder logits / τ) (positions × options), both with gradient."""
        eps = torch.randn(self.dim, generator=self.harness.gens["noise"], device=self.harness.device)
        z = self.mu + self.sigma() * eps
        logits = self.decoder.decode_logits(z.unsqueeze(0))[0]
        return z, self.harness.space.path_probs(logits, self.tau)

    # -- the step

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        z, probs = self.sample()
        decoded, probs = self.harness.space.decode(probs)  # probs' rows follow the decoded path's slots
        cell, index = hard_cell(probs, cell, decoded)
        prev = self.prev if self.prev is not None else cell
        self.weight_step(xw, yw, prev, cell, probe)
        self.arch_step(xa, ya, z, probs, cell, index)
        self.prev = cell

    def weight_step(self, x, y, prev: Cell, cur: Cell, probe: bool) -> None:
        comp = cur
        if self.lam > 0:
            comp = self.harness.space.complement(prev, cur, self.harness.gens["choice"])
            self.harness.stats.add_host("complement_same", comp == cur)
        self.harness.train_paths(x, y, complement_terms(prev, cur, comp, self.lam), probe=prev if probe else None)

    def arch_step(self, x, y, z: Tensor, probs: Tensor, cell: Cell, index: Tensor) -> None:
        loss_val = self.harness.path_loss(x, y, cell, straight_through(probs, index))
        full = self.archive.full
        novelty = self.archive.novelty(z)  # against the archive without z
        if not self.explore:
            novelty = novelty.detach()  # η ≡ 0: recorded, never a gradient
        loss = (1 - self.eta) * loss_val - self.eta * novelty + self.cfg.kl_weight * gaussian_kl(self.mu, self.log_sigma)
        self.opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.mu, self.log_sigma])  # weight gradients are neither needed nor computed
        self.opt.step()
        with torch.no_grad():
            self.log_sigma.clamp_(math.log(self.cfg.sigma_min), 0.0)
        self.archive.append(z)
        stats = self.harness.stats
        stats.add("loss_val", loss_val)
        if full:
            stats.add("novelty", novelty)

    # -- what the loop records

    def epoch_arch(self) -> tuple[Cell, None]:
        with torch.no_grad():
            return self.harness.space.decode_cell(self.decoder.decode_logits(self.mu.detach().reshape(1, -1))[0]), None

    def epoch_extras(self) -> dict:
        return {"mu": self.mu.detach().cpu().tolist(), "sigma": float(self.sigma().detach().mean())}

    def result_extras(self) -> dict:
        return {
            "start_arch": None if self.start_cell is None else self.harness.space.format(self.start_cell),
            "latent_dim": self.dim,
        }

    def state_dict(self) -> dict:
        return {
            "mu": self.mu.detach().cpu(),
            "log_sigma": self.log_sigma.detach().cpu(),
            "opt": self.opt.state_dict(),
            "archive": self.archive.state_dict(),
            "prev": None if self.prev is None else list(self.prev),
            "start_cell": None if self.start_cell is None else list(self.start_cell),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.mu.copy_(state["mu"])
            self.log_sigma.copy_(state["log_sigma"])
        self.opt.load_state_dict(state["opt"])
        self.archive.load_state_dict(state["archive"])
        self.prev = None if state["prev"] is None else tuple(state["prev"])
        self.start_cell = None if state["start_cell"] is None else tuple(state["start_cell"])

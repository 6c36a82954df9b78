"""E2NAS: search a Gaussian in the VGAE's latent space, through the decoder, with exploration and complementation.

One step (in this order; both halves use the step's single latent sample ε):
  1. z = μ + σ ⊙ ε, P = softmax(decoder logits(z) / τ), a_t = the most probable path under P
     (NB201: argmax per edge; DARTS: see e2nas.spaces.darts.space) — its indices are copied to the
     host (the step's one sync: they pick the path to run);
  2. weight half, on a batch of the weights half of the split:
     L_w = (1 − λ) L(a_t) + λ/2 [L(a_{t−1}) + L(a_c)], every term with gradient;
  3. architecture half, on a batch of the arch half, with the weights just updated:
       L_val(a_t; h), the supernet running a_t's single path with straight-through weights
         h = onehot(a_t) − stopgrad(P) + P, so ∂L_val/∂z flows through the (frozen) decoder;
       Novelty(z̃) = −log ρ_A(z̃) / d at z̃ = μ + stopgrad(σ) ⊙ ε, against the archive A of
         the last K samples (without this one): it moves μ, never σ;
       M(μ) = −log ρ_E(μ) / d, the KDE over the encodings of the space's cells;
     on μ the three gradients are combined as (1 − η_t)·ĝ_val − η_t·ĝ_novelty + β_m·ĝ_M, each
     ĝ a gradient divided by its own running RMS (`GradientNormaliser`), so the weights, not
     the six orders of magnitude between the raw terms, decide the direction; log σ takes
     ∂L_val/∂log σ alone at a tenth of the lr. Adam steps; σ is clamped into [σ_min, σ_max];
     then z joins the archive.

No KL(q ‖ N(0, I)) and no weight decay on μ: measured, both pulled μ to the origin, far from
every encoded cell, and σ to its clamp (docs/method.md, "Why the latent terms are what they are").
Ablations run the same code: `e2nas-noexplore` fixes η ≡ 0, `e2nas-nocomplement` fixes λ = 0, and `e2nas-paper` is
the paper's step (the straight-through estimator and the sampled weight paths, whatever `search` sets).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from e2nas.search.harness import Harness, hard_cell, straight_through
from e2nas.search.method import SearchMethod
from e2nas.search.novelty import LatentArchive, ManifoldDensity, nearest_neighbour_median
from e2nas.search.schedules import eta_at, geometric_tau
from e2nas.spaces import Cell

TERMS = ("val", "novelty", "manifold")


def complement_terms(prev: Cell, cur: Cell, comp: Cell, lam: float) -> list[tuple[Cell, float]]:
    """The weight loss's terms: (1 − λ) L(a_t) + λ/2 L(a_{t−1}) + λ/2 L(a_c); λ = 0 keeps only a_t."""
    if lam == 0:
        return [(cur, 1.0)]
    return [(cur, 1.0 - lam), (prev, lam / 2), (comp, lam / 2)]


def encode_cell(vae, cell: Cell, device, space) -> Tensor:
    """The VGAE mean μ(cell) (d,), where E2NAS's q(z) starts."""
    from e2nas.graphs import build_graph_set

    graphs = build_graph_set(space, torch.tensor([cell], dtype=torch.long))
    with torch.no_grad():
        return vae.encode_archs(graphs).reshape(-1).to(device).float()


class GradientNormaliser:
    """Running RMS of each latent term's gradient on μ; combines the terms as Σ w_k g_k / rms_k.

    rms_k is the square root of a bias-corrected exponential average (decay `decay`) of the
    mean square of g_k over steps: one scalar per term, so each term keeps its direction and
    the weights alone set how much of the step it takes. A term with weight 0 is neither
    added nor tracked. State stays on the device.
    """

    def __init__(self, names: tuple[str, ...], decay: float, device):
        self.decay = decay
        self.mean_square = {n: torch.zeros((), device=device) for n in names}
        self.steps = {n: 0 for n in names}

    def combine(self, grads: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
        total = None
        for name, grad in grads.items():
            w = weights[name]
            if w == 0:
                continue
            self.steps[name] += 1
            self.mean_square[name] = self.decay * self.mean_square[name] + (1 - self.decay) * grad.pow(2).mean()
            rms = (self.mean_square[name] / (1 - self.decay ** self.steps[name])).sqrt().clamp_min(1e-30)
            term = (w / rms) * grad
            total = term if total is None else total + term
        return total if total is not None else torch.zeros_like(next(iter(grads.values())))

    def rms(self, name: str) -> Tensor:
        """The bias-corrected RMS the term was last divided by (0 before its first step)."""
        if self.steps[name] == 0:
            return torch.zeros_like(self.mean_square[name])
        return (self.mean_square[name] / (1 - self.decay ** self.steps[name])).sqrt()

    def state_dict(self) -> dict:
        return {"mean_square": {k: v.detach().cpu() for k, v in self.mean_square.items()}, "steps": dict(self.steps)}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state["mean_square"].items():
            self.mean_square[k] = v.to(self.mean_square[k].device)
        self.steps = {k: int(v) for k, v in state["steps"].items()}


class E2NAS(SearchMethod):
    """q(z) = N(μ, diag σ²) over the decoder's latent space; see the module doc for one step.

    encodings: the VGAE means of the space's cells (NB201: all 15,625; DARTS: stage 1's
    sample), for the manifold term and the diagnostics; None switches the manifold term off.
    sigma_max: σ's upper bound (the config's, else the caller's median posterior σ; None: 1).
    """

    def __init__(
        self,
        harness: Harness,
        decoder: nn.Module,
        mu0: Tensor,
        explore: bool = True,
        complement_lambda: float | None = None,
        name: str = "e2nas",
        start_cell: Cell | None = None,
        encodings: Tensor | None = None,
        sigma_max: float | None = None,
        paper_step: bool = False,
    ):
        super().__init__(harness)
        cfg, device = self.cfg, harness.device
        self.name, self.explore = name, explore
        self.lam = cfg.complement_lambda if complement_lambda is None else complement_lambda
        # paper_step: the paper's arch and weight halves (docs/method.md, where the defaults depart from it).
        self.estimator = "straight-through" if paper_step else cfg.estimator
        self.weight_paths = "sampled" if paper_step else cfg.weight_paths
        self.decoder = decoder.eval().requires_grad_(False)  # frozen: the gradient passes through it only
        self.dim = mu0.numel()
        self.sigma_max = float(cfg.sigma_max if cfg.sigma_max is not None else (sigma_max if sigma_max is not None else 1.0))
        self.log_sigma_bounds = (math.log(cfg.sigma_min), math.log(max(self.sigma_max, cfg.sigma_min)))
        sigma0 = min(max(cfg.sigma_init, cfg.sigma_min), self.sigma_max)
        self.mu = nn.Parameter(mu0.detach().reshape(self.dim).clone().float().to(device))
        self.log_sigma = nn.Parameter(torch.full((self.dim,), math.log(sigma0), device=device))
        # No weight decay on either: decay pulls μ to the origin, where this VGAE has no cells.
        self.opt = torch.optim.Adam(
            [
                {"params": [self.mu], "lr": cfg.arch_lr},
                {"params": [self.log_sigma], "lr": cfg.arch_lr * cfg.sigma_lr_scale},
            ],
            betas=(cfg.arch_beta1, cfg.arch_beta2),
        )
        self.manifold = ManifoldDensity(encodings.to(device)) if encodings is not None else None
        self.normaliser = GradientNormaliser(TERMS, cfg.grad_rms_decay, device)
        self.archive = LatentArchive(cfg.archive_size, self.dim, device)
        # Exploration acts from the first step (where η ≈ 1): the archive starts with K samples of q₀.
        with torch.no_grad():
            self.archive.fill(torch.stack([self._draw_latent()[0] for _ in range(cfg.archive_size)]))
        self.prev: Cell | None = None  # a_{t−1}
        self.start_cell = start_cell
        self.tau, self.eta = cfg.tau_max, 0.0
        self.epoch_cells: list[Cell] = []  # the cell each step of the epoch sampled
        self.last: dict[str, Tensor] = {}  # the last step's sample, probabilities and raw term gradients (tests, benchmarks)
        self.encoding_nn_median = nearest_neighbour_median(encodings) if encodings is not None else None
        self._check_decoder()

    @classmethod
    def build(cls, method: str, harness: Harness, inputs: dict) -> E2NAS:
        """The method from stage 2's model.pt (`inputs["vgae"]`) and stage 1's graphs (`inputs["graphs"]`)."""
        from e2nas.graphs import GraphSet
        from e2nas.vgae import load_vgae

        if inputs.get("vgae") is None or inputs.get("graphs") is None:
            raise ValueError(
                f"method {method!r} searches the VGAE's latent space: pass vgae_path (stage 2's model.pt) "
                f"and graphs_path (stage 1's graphs, whose encodings make the manifold term)"
            )
        graphs = GraphSet.load(inputs["graphs"])
        if harness.space.name != graphs.space:  # a consistency check of the files, not a branch on the space
            raise ValueError(f"graphs {inputs['graphs']} are of the {graphs.space!r} space, but the supernet is {harness.space.name!r}")
        # The latent space holds the cells stage 1 drew: the search must start, decode and complement
        # under the same options (DARTS: whether a node may read one input twice, `graphs.distinct_inputs`).
        if graphs.configured_space.options != harness.space.options:
            raise ValueError(f"graphs {inputs['graphs']} were drawn with space options {graphs.options}, but the search "
                             f"runs the space with {harness.space.options}: rerun stage 1 (rule build_graphs) with this config")
        return cls.for_method(method, harness, load_vgae(inputs["vgae"], harness.device), graphs)

    @staticmethod
    def figures(result: dict, inputs: dict) -> dict:
        """Where q(z) stood per epoch, and μ's path over every encoded cell."""
        from e2nas.search import plots
        from e2nas.vgae import encode_stage_graphs

        title = f"{result['method']} seed {result['seed']}: μ across epochs"
        encodings = encode_stage_graphs(inputs["vgae"], inputs["graphs"])
        return {"latent_diagnostics.png": plots.latent_diagnostics(result),
                "search_path.png": plots.latent_path(encodings, result["trajectory"], title)}

    @classmethod
    def for_method(cls, method: str, harness: Harness, vae, graphs=None) -> E2NAS:
        """The method or ablation `method`, starting at the VGAE encoding of a seeded random (valid) cell.

        graphs: the stage-1 GraphSet whose encodings give the manifold term and σ_max's default.
        """
        space = harness.space
        if getattr(vae, "space", None) not in (None, space.name):
            raise ValueError(f"the VGAE was trained on the {vae.space!r} space, but the supernet is {space.name!r}: "
                             f"use stage 2's model for space {space.name!r}")
        start = space.sample(1, harness.gens["init"], valid=True)[0]
        mu0 = encode_cell(vae, start, harness.device, space)
        encodings = sigma_median = None
        if graphs is not None:
            mean, sigma = vae.encode_posterior(graphs)
            encodings, sigma_median = mean.to(harness.device), float(sigma.flatten().quantile(0.5))
        return cls(
            harness,
            vae,
            mu0,
            explore=method != "e2nas-noexplore",
            complement_lambda=0.0 if method == "e2nas-nocomplement" else None,
            paper_step=method == "e2nas-paper",
            name=method,
            start_cell=start,
            encodings=encodings,
            sigma_max=sigma_median,
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
        self.epoch_cells = []
        return {"eta": self.eta, "tau": self.tau}

    def sigma(self) -> Tensor:
        return self.log_sigma.exp()  # kept in [σ_min, σ_max] by the clamp after each update

    def _draw_latent(self) -> tuple[Tensor, Tensor]:
        """(z = μ + σ ⊙ ε, ε), ε from the seeded noise stream; z with gradient to μ and log σ."""
        eps = torch.randn(self.dim, generator=self.harness.gens["noise"], device=self.harness.device)
        return self.mu + self.sigma() * eps, eps

    def path_probs(self, z: Tensor, tau: float) -> Tensor:
        """P(z) = softmax(decoder logits(z) / τ) for a batch of latents (B, d) → (B, positions, options)."""
        return self.harness.space.path_probs(self.decoder.decode_logits(z), tau)

    # -- the step

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        z, eps = self._draw_latent()
        # The sample and μ in one decoder pass: μ's decode is a_t's reference (sampled_decoded_fraction).
        probs, probs_mu = self.path_probs(torch.stack([z, self.mu.detach()]), self.tau).unbind(0)
        space = self.harness.space
        decoded, probs = space.decode(probs)  # probs' rows follow the decoded path's slots
        mu_index, _ = space.decode(probs_mu)
        cell, index = hard_cell(probs, cell, decoded)
        self.harness.stats.add("sampled_decoded", (index.reshape(-1) == mu_index.reshape(-1)).all().float())
        self.epoch_cells.append(cell)
        prev = self.prev if self.prev is not None else cell
        self.weight_step(xw, yw, prev, cell, probe)
        self.arch_step(xa, ya, z, eps, probs, cell, index)
        self.prev = cell

    def weight_step(self, x, y, prev: Cell, cur: Cell, probe: bool) -> None:
        if self.weight_paths == "frozen":  # the warm-up supernet judges throughout
            return
        self.harness.train_paths(x, y, self.weight_terms(prev, cur), probe=prev if probe else None)

    def weight_terms(self, prev: Cell, cur: Cell) -> list[tuple[Cell, float]]:
        """The (cell, coefficient) terms of this step's weight loss under `search.weight_paths`."""
        space, gen = self.harness.space, self.harness.gens["choice"]
        if self.weight_paths == "broad":  # as many paths as complementation, two of them the space's, not the search's
            return [(cur, 1.0 - self.lam)] + ([(c, self.lam / 2) for c in space.sample(2, gen)] if self.lam > 0 else [])
        if self.weight_paths == "fair":  # a_t and a fair update: every edge takes every op once
            from e2nas.warmup import fair_paths

            paths = fair_paths(gen, space)
            return [(cur, 1.0 - self.lam)] + ([(c, self.lam / len(paths)) for c in paths] if self.lam > 0 else [])
        comp = cur
        if self.lam > 0:
            comp = space.complement(prev, cur, gen)
            self.harness.stats.add_host("complement_same", comp == cur)
        return complement_terms(prev, cur, comp, self.lam)

    def validation_loss(self, x: Tensor, y: Tensor, cell: Cell, weights: Tensor) -> Tensor:
        """L_val of the single path `cell` under straight-through weights (tests replace it by a known function)."""
        return self.harness.path_loss(x, y, cell, weights)

    def swap_loss(self, x: Tensor, y: Tensor, probs: Tensor, cell: Cell, index: Tensor) -> Tensor:
        """L_val(cell) in value; in gradient Σ_{p,o} L(cell with slot p set to o) · ∂P[p, o] (`search.estimator: swap`).

        With the slots drawn independently from P, E_P[L] is multilinear in P, and at the one-hot P of `cell` its
        partial derivative in P[p, o] is exactly the loss of `cell` with slot p swapped to o. The straight-through
        estimator linearises one path instead: every unchosen op of an edge gets the same gradient, so it can only say
        leave or stay (benchmarks/RESULTS.md, estimator_bias). One forward per alternative option, no backward."""
        flat_index = index.reshape(-1)
        live = (probs.detach().reshape(flat_index.numel(), -1) > 0).nonzero().tolist()  # options a slot may take
        with torch.no_grad():
            base = self.validation_loss(x, y, cell, straight_through(probs, index).detach())
            swapped = torch.full_like(probs, float(base)).reshape(flat_index.numel(), -1)
            for slot, option in live:
                if option == cell[slot]:
                    continue
                other = flat_index.clone()
                other[slot] = option
                other = other.reshape(index.shape)
                swapped[slot, option] = self.validation_loss(x, y, cell[:slot] + (option,) + cell[slot + 1:],
                                                             straight_through(probs, other).detach())
        # Σ_o ∂P[p, o] = 0 on each slot, so the common L(cell) in `swapped` adds nothing to the gradient.
        return base + ((probs - probs.detach()) * swapped.reshape(probs.shape)).sum()

    def arch_step(self, x, y, z: Tensor, eps: Tensor, probs: Tensor, cell: Cell, index: Tensor) -> None:
        if self.estimator == "swap":
            loss_val = self.swap_loss(x, y, probs, cell, index)
        else:
            loss_val = self.validation_loss(x, y, cell, straight_through(probs, index))
        g_val, g_log_sigma = torch.autograd.grad(loss_val, [self.mu, self.log_sigma])
        # z̃ = μ + stopgrad(σ) ⊙ ε: the same point as z, but its novelty cannot inflate σ.
        z_explore = self.mu + self.sigma().detach() * eps
        novelty = self.archive.novelty(z_explore)  # against the archive without z
        grads = {"val": g_val}
        weights = {"val": 1.0 - self.eta, "novelty": self.eta, "manifold": self.cfg.manifold_weight}
        if self.explore:
            (grads["novelty"],) = torch.autograd.grad(-novelty, self.mu)
        if self.manifold is not None:
            (grads["manifold"],) = torch.autograd.grad(self.manifold.penalty(self.mu), self.mu)
        self.mu.grad = self.normaliser.combine(grads, weights)
        self.log_sigma.grad = g_log_sigma
        self.opt.step()
        with torch.no_grad():
            self.log_sigma.clamp_(*self.log_sigma_bounds)
        self.archive.append(z)
        self.last = {"z": z.detach(), "eps": eps, "probs": probs.detach(), "loss_val": loss_val.detach(),
                     **{f"grad_{k}": g for k, g in grads.items()}, "grad_log_sigma": g_log_sigma}
        stats = self.harness.stats
        stats.add("loss_val", loss_val)
        stats.add("novelty", novelty)

    # -- what the loop records

    def epoch_arch(self) -> tuple[Cell, None]:
        with torch.no_grad():
            return self.harness.space.decode_cell(self.decoder.decode_logits(self.mu.detach().reshape(1, -1))[0]), None

    def diagnostics(self) -> dict[str, Tensor]:
        """Where μ stands (device scalars): confidence and Jacobian of the decoder, distance to the cells."""
        mu = self.mu.detach()
        with torch.no_grad():
            confidence = self.path_probs(mu.unsqueeze(0), 1.0).amax(dim=-1).mean()
        jac = torch.autograd.functional.jacobian(lambda m: self.path_probs(m.unsqueeze(0), self.tau)[0], mu, vectorize=True)
        live = (self.path_probs(mu.unsqueeze(0), self.tau)[0] > 0).detach()  # options a path may take
        # ‖∂P/∂z‖ (Frobenius) over the options a path may take: how much gradient the decoder passes.
        out = {"decoder_confidence": confidence, "decoder_jacobian": jac[live].norm()}
        if self.manifold is not None:
            out["mu_nearest_distance"] = self.manifold.nearest_distance(mu)
        return out

    def epoch_extras(self) -> dict:
        values = {"sigma": self.sigma().detach().mean(), **self.diagnostics()}
        host = dict(zip(values, torch.stack(list(values.values())).tolist()))  # one transfer for all
        return {
            "mu": self.mu.detach().cpu().tolist(),
            "mu_nearest_distance": None,
            **host,
            "distinct_cells": len(set(self.epoch_cells)),
            "sampled_parameter_free_share": self.harness.space.parameter_free_share(self.epoch_cells) if self.epoch_cells else None,
        }

    def result_extras(self) -> dict:
        return {
            "start_arch": None if self.start_cell is None else self.harness.space.format(self.start_cell),
            "latent_dim": self.dim,
            "sigma_max": self.sigma_max,
            "encoding_nn_median": self.encoding_nn_median,
        }

    def state_dict(self) -> dict:
        return {
            "mu": self.mu.detach().cpu(),
            "log_sigma": self.log_sigma.detach().cpu(),
            "opt": self.opt.state_dict(),
            "archive": self.archive.state_dict(),
            "normaliser": self.normaliser.state_dict(),
            "prev": None if self.prev is None else list(self.prev),
            "start_cell": None if self.start_cell is None else list(self.start_cell),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.mu.copy_(state["mu"])
            self.log_sigma.copy_(state["log_sigma"])
        self.opt.load_state_dict(state["opt"])
        self.archive.load_state_dict(state["archive"])
        self.normaliser.load_state_dict(state["normaliser"])
        self.prev = None if state["prev"] is None else tuple(state["prev"])
        self.start_cell = None if state["start_cell"] is None else tuple(state["start_cell"])


METHOD_CLASSES = {name: E2NAS for name in ("e2nas", "e2nas-paper", "e2nas-noexplore", "e2nas-nocomplement")}

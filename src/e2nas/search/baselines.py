"""Baselines in E2NAS's harness: GDAS, DARTS (first order) and RSPS on the same supernet and budget.

None of them needs the VGAE. Each step is a weight half on a weights-half batch followed (GDAS,
DARTS) by an architecture half on an arch-half batch, like E2NAS's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.search.harness import Harness, hard_cell, straight_through
from e2nas.search.method import SearchMethod
from e2nas.search.schedules import linear_tau
from e2nas.spaces import Cell


class _EdgeLogits(SearchMethod):
    """Per-edge op logits α (NB201 (6, 5); DARTS (2, 14, 8), both cell types), initialised
    1e-3 · N(0, 1) from the seeded init stream, Adam on them."""

    def __init__(self, harness: Harness):
        super().__init__(harness)
        cfg = self.cfg
        init = 1e-3 * torch.randn(*harness.space.alpha_shape, generator=harness.gens["init"])
        self.alpha = nn.Parameter(init.to(harness.device))
        self.opt = torch.optim.Adam(
            [self.alpha], lr=cfg.arch_lr, betas=(cfg.arch_beta1, cfg.arch_beta2), weight_decay=cfg.arch_weight_decay
        )

    def arch_update(self, loss: Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.alpha])  # weight gradients are neither needed nor computed
        self.opt.step()
        self.harness.stats.add("loss_val", loss)

    def epoch_arch(self) -> tuple[Cell, None]:
        return self.harness.space.derive(self.alpha), None

    def epoch_extras(self) -> dict:
        logp = torch.log_softmax(self.alpha.detach(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1).mean()  # mean over edges of the per-edge entropy (nats)
        return {"alpha": self.alpha.detach().cpu().tolist(), "alpha_entropy": float(entropy)}

    def state_dict(self) -> dict:
        return {"alpha": self.alpha.detach().cpu(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.opt.load_state_dict(state["opt"])


class GDAS(_EdgeLogits):
    """GDAS (Dong & Yang, 2019): a hard Gumbel-softmax sample of α picks the path of each forward.

    As AutoDL-Projects' GDAS does, every forward draws its own sample: the weight half trains
    the path of one draw, the architecture half runs the path of another with straight-through
    weights h, so the validation loss reaches α; a draw with a non-finite Gumbel noise or
    probability is drawn again. α does not change in the weight half, so both draws are made at
    the step's start and their indices reach the host in one transfer (the step's one sync).
    In the DARTS space a draw is an op on every edge of both cell types (GDAS's own DARTS
    search), and the result is the genotype DARTS derives from softmax α.
    τ anneals linearly per epoch from gdas_tau_max to gdas_tau_min, as GDAS's code does.
    """

    name = "gdas"

    def __init__(self, harness: Harness):
        super().__init__(harness)
        self.prev: Cell | None = None  # the previous weight step's cell, for the forgetting measure
        self.tau = self.cfg.gdas_tau_max
        self.redraws = 0  # draws discarded as non-finite (recorded per epoch)

    def start_epoch(self, epoch: int, epochs: int) -> dict:
        self.tau = linear_tau(epoch, epochs, self.cfg.gdas_tau_max, self.cfg.gdas_tau_min)
        self.redraws = 0
        self.sampled: list[Cell] = []  # the cells the architecture half ran this epoch
        return {"eta": None, "tau": self.tau}

    def gumbel_sample(self) -> tuple[Tensor, Tensor]:
        """(softmax((log_softmax(α) + g) / τ), finite) with g ~ Gumbel(0, 1) from the seeded noise stream.

        The same as F.gumbel_softmax's soft sample (which takes no generator); `finite` is a
        device bool, False when g or the probabilities hold an inf or NaN.
        """
        gumbels = -torch.empty_like(self.alpha).exponential_(generator=self.harness.gens["noise"]).log()
        probs = torch.softmax((F.log_softmax(self.alpha, dim=-1) + gumbels) / self.tau, dim=-1)
        return probs, torch.isfinite(gumbels).all() & torch.isfinite(probs).all()

    # A Gumbel draw is non-finite with probability ~1e-7 per entry; draws that keep failing mean
    # α itself is not finite, and the epoch's divergence check reports that (no endless loop).
    MAX_REDRAWS = 10

    def draw_pair(self) -> tuple[tuple[Tensor, Cell, Tensor], tuple[Tensor, Cell, Tensor]]:
        """Two finite draws (probs, cell, device index): the weight half's and the architecture half's."""
        for _ in range(self.MAX_REDRAWS + 1):
            (p_w, ok_w), (p_a, ok_a) = self.gumbel_sample(), self.gumbel_sample()
            i_w, i_a = p_w.argmax(dim=-1), p_a.argmax(dim=-1)
            host = torch.cat([i_w.flatten(), i_a.flatten(), (ok_w & ok_a).long().reshape(1)]).tolist()
            if host[-1]:
                break
            self.redraws += 1
        n = i_w.numel()
        return (p_w, tuple(host[:n]), i_w), (p_a, tuple(host[n : 2 * n]), i_a)

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        (_, cell_w, _), (probs_a, cell_a, index_a) = self.draw_pair()
        if cell is not None:  # benchmarks fix the cell of both halves
            cell_w, (cell_a, index_a) = tuple(cell), hard_cell(probs_a, cell)
        prev = self.prev if self.prev is not None else cell_w
        self.harness.train_paths(xw, yw, [(cell_w, 1.0)], probe=prev if probe else None)
        self.arch_update(self.harness.path_loss(xa, ya, cell_a, straight_through(probs_a, index_a)))
        self.prev = cell_w
        self.sampled.append(cell_a)

    def epoch_extras(self) -> dict:
        sampled = getattr(self, "sampled", [])
        return {**super().epoch_extras(), "gumbel_redraws": self.redraws,
                "sampled_parameter_free_share": self.harness.space.parameter_free_share(sampled) if sampled else None}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "prev": None if self.prev is None else list(self.prev)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.prev = None if state["prev"] is None else tuple(state["prev"])


class DARTS(_EdgeLogits):
    """DARTS, first order (Liu et al., 2019): softmax(α) mixes every op on every edge.

    Weight half: the mixture with α fixed; architecture half: the mixture's validation loss,
    gradient to α only. The result is, in NB201, argmax α per edge (all five ops, `none`
    included, as NAS-Bench-201's DARTS does); in the DARTS space, DARTS's derived genotype. It
    trains no single path, so forgetting is not measured.
    """

    name = "darts"
    has_paths = False

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        self.harness.train_mixture(xw, yw, torch.softmax(self.alpha, dim=-1).detach())
        logits = self.harness.net.forward_mixture(xa, torch.softmax(self.alpha, dim=-1))
        self.arch_update(F.cross_entropy(logits, ya))


class RSPS(SearchMethod):
    """Random search with parameter sharing (Li & Talwalkar, 2019), as AutoDL-Projects runs it.

    Weight steps train uniformly sampled paths (the choice stream, on the CPU: no device sync);
    there are no architecture parameters. At each epoch's end rsps_num_candidates fresh cells
    are drawn uniformly, each scored by the supernet on its own fresh draw of rsps_eval_images
    arch-half images (AutoDL: 100 cells, one 512-image batch each); the epoch's cell is the
    best of them, and the last epoch's best is the result.
    """

    name = "rsps"

    def __init__(self, harness: Harness):
        super().__init__(harness)
        self.candidates: list[Cell] = []
        self.prev: Cell | None = None
        self.scores: list[float] = []

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        if cell is None:
            cell = self.harness.space.sample(1, self.harness.gens["choice"])[0]
        prev = self.prev if self.prev is not None else cell
        self.harness.train_paths(xw, yw, [(cell, 1.0)], probe=prev if probe else None)
        self.prev = cell

    def epoch_arch(self) -> tuple[Cell, float]:
        self.candidates = self.harness.space.sample(self.cfg.rsps_num_candidates, self.harness.gens["eval"], valid=True)
        self.scores = [self.harness.evaluate_fresh(c) for c in self.candidates]
        best = max(range(len(self.candidates)), key=lambda i: self.scores[i])  # first of ties
        return self.candidates[best], self.scores[best]

    def epoch_extras(self) -> dict:
        return {"candidates": [self.harness.space.format(c) for c in self.candidates], "candidate_accuracies": list(self.scores)}

    def result_extras(self) -> dict:
        return {"candidates": [self.harness.space.format(c) for c in self.candidates]}

    def state_dict(self) -> dict:
        # The last epoch's candidates are part of the result: a run resumed after its last epoch has them.
        return {"prev": None if self.prev is None else list(self.prev),
                "candidates": [list(c) for c in self.candidates], "scores": list(self.scores)}

    def load_state_dict(self, state: dict) -> None:
        self.prev = None if state["prev"] is None else tuple(state["prev"])
        self.candidates = [tuple(c) for c in state.get("candidates", [])]
        self.scores = list(state.get("scores", []))


METHOD_CLASSES = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}

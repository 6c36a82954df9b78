"""Baselines in E2NAS's harness: GDAS, DARTS (first order) and RSPS on the same supernet and budget.

None of them needs the VGAE. Each step is a weight half on a weights-half batch followed (GDAS,
DARTS) by an architecture half on an arch-half batch, like E2NAS's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.search.common import (
    Cell,
    Harness,
    SearchMethod,
    hard_cell,
    linear_tau,
    straight_through,
)


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
        return {"alpha": self.alpha.detach().cpu().tolist()}

    def state_dict(self) -> dict:
        return {"alpha": self.alpha.detach().cpu(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.opt.load_state_dict(state["opt"])


class GDAS(_EdgeLogits):
    """GDAS (Dong & Yang, 2019): a hard Gumbel-softmax sample of α picks one path per step.

    As in E2NAS, one sample per step serves both halves: the weight half trains its path, the
    architecture half runs it with straight-through weights h so the validation loss reaches α.
    In the DARTS space the sample is an op on every edge of both cell types (GDAS's own DARTS
    search), and the result is the genotype DARTS derives from softmax α.
    τ anneals linearly per epoch from gdas_tau_max to gdas_tau_min, as GDAS's code does.
    """

    name = "gdas"

    def __init__(self, harness: Harness):
        super().__init__(harness)
        self.prev: Cell | None = None  # the previous step's cell, for the forgetting measure
        self.tau = self.cfg.gdas_tau_max

    def start_epoch(self, epoch: int, epochs: int) -> dict:
        self.tau = linear_tau(epoch, epochs, self.cfg.gdas_tau_max, self.cfg.gdas_tau_min)
        return {"eta": None, "tau": self.tau}

    def gumbel_sample(self) -> Tensor:
        """softmax((log_softmax(α) + g) / τ), g ~ Gumbel(0, 1) from the seeded noise stream.

        The same as F.gumbel_softmax's soft sample (which takes no generator).
        """
        gumbels = -torch.empty_like(self.alpha).exponential_(generator=self.harness.gens["noise"]).log()
        return torch.softmax((F.log_softmax(self.alpha, dim=-1) + gumbels) / self.tau, dim=-1)

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        probs = self.gumbel_sample()
        cell, index = hard_cell(probs, cell)
        prev = self.prev if self.prev is not None else cell
        self.harness.train_paths(xw, yw, [(cell, 1.0)], probe=prev if probe else None)
        self.arch_update(self.harness.path_loss(xa, ya, cell, straight_through(probs, index)))
        self.prev = cell

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
    """Random search with parameter sharing (Li & Talwalkar, 2019).

    Weight steps train uniformly sampled paths (the choice stream, on the CPU: no device sync);
    there are no architecture parameters. rsps_num_candidates cells, drawn uniformly once from
    the seeded stream at the start, are ranked each epoch by supernet accuracy on the
    rsps_eval_images arch-half images; the epoch's cell is the best under the current supernet,
    and the last epoch's best is the result.
    """

    name = "rsps"

    def __init__(self, harness: Harness):
        super().__init__(harness)
        self.candidates = harness.space.sample(self.cfg.rsps_num_candidates, harness.gens["init"], valid=True)
        self.prev: Cell | None = None
        self.scores: list[float] = []

    def step(self, xw, yw, xa, ya, cell: Cell | None = None, probe: bool = False) -> None:
        if cell is None:
            cell = self.harness.space.sample(1, self.harness.gens["choice"])[0]
        prev = self.prev if self.prev is not None else cell
        self.harness.train_paths(xw, yw, [(cell, 1.0)], probe=prev if probe else None)
        self.prev = cell

    def epoch_arch(self) -> tuple[Cell, float]:
        self.scores = [self.harness.evaluate(c) for c in self.candidates]
        best = max(range(len(self.candidates)), key=lambda i: self.scores[i])  # first of ties
        return self.candidates[best], self.scores[best]

    def epoch_extras(self) -> dict:
        return {"candidate_accuracies": list(self.scores)}

    def result_extras(self) -> dict:
        return {"candidates": [self.harness.space.format(c) for c in self.candidates]}

    def state_dict(self) -> dict:
        return {"prev": None if self.prev is None else list(self.prev)}

    def load_state_dict(self, state: dict) -> None:
        self.prev = None if state["prev"] is None else tuple(state["prev"])


BASELINES = {"gdas": GDAS, "darts": DARTS, "rsps": RSPS}

"""The harness every method shares: the supernet, its weight optimiser and schedule, seeded streams, scoring.

One harness for E2NAS, its ablations and the baselines, so they differ only in how they choose
the path of a step and update their architecture parameters: the same warmed-up supernet, data
split, batches, epoch budget and weight optimiser (SGD, cosine lr, Nesterov, clip 5).

A step never waits on the device except for the one transfer of the sampled cell's op
indices that picks the path to run (E2NAS and GDAS). Per-step statistics stay on the device
as tensors (`EpochStats`) and are read once per epoch. What depends on the search space comes
from its `Space` (`e2nas.spaces.get`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from e2nas import spaces
from e2nas.checkpoint import rng_state, set_rng_state
from e2nas.runtime import memory_format
from e2nas.search.config import SearchConfig
from e2nas.spaces import Cell
from e2nas.training import stage_generators

# The search's seeded streams: data order of each half, discrete choices, scoring batches (CPU), noise (device).
GENERATORS = ("init", "data_w", "data_a", "choice", "noise", "eval")

# The parts of a space this module asks for (e2nas.code_inputs: a stage's code holds them).
# Space.grouped_losses (where the space has one).
SPACE_PARTS = ('grouped',)


class EpochStats:
    """Per-epoch sums kept as device tensors, read with one host transfer at the epoch's end."""

    def __init__(self):
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.values: dict[str, Tensor] = {}
        self.host: dict[str, list[float]] = {}  # values the host already knows (no transfer needed)

    def add(self, name: str, value: Tensor) -> None:
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.counts[name] = self.counts.get(name, 0) + 1

    def add_host(self, name: str, value: float) -> None:
        self.host.setdefault(name, []).append(float(value))

    def set(self, name: str, value: Tensor) -> None:
        self.values[name] = value.detach().float()

    def read(self) -> dict[str, float]:
        """{name: mean of what was added, or the value set}; one device→host copy for all."""
        out = {n: sum(v) / len(v) for n, v in self.host.items()}
        names = list(self.sums) + list(self.values)
        if names:
            tensors = [self.sums[n] / self.counts[n] for n in self.sums] + [self.values[n] for n in self.values]
            out.update(zip(names, torch.stack([t.reshape(()) for t in tensors]).tolist()))
        return out


class Harness:
    """The supernet, its weight optimiser and schedule, the seeded generators, the eval images."""

    def __init__(
        self,
        net: torch.nn.Module,
        cfg: SearchConfig,
        device: torch.device | str,
        seed: int,
        eval_x: Tensor | None = None,
        eval_y: Tensor | None = None,
        *,
        space: spaces.Space | str,
    ):
        self.net, self.cfg, self.device = net, cfg, torch.device(device)
        # Images and conv weights in the device's faster layout (channels_last on a CPU); batches
        # follow it (BatchIterator(memory_format=harness.layout)).
        self.layout = memory_format(self.device)
        net.to(memory_format=self.layout)
        self.space = spaces.resolve(space)  # configured once by the stage (run_search)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(
            self.params, lr=cfg.w_lr, momentum=cfg.w_momentum, nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay
        )
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
        self.gens = stage_generators(seed, GENERATORS, self.device, on_device=("noise",))
        self.stats = EpochStats()
        self.trained: list[Cell] = []  # the single paths the weight half trained this epoch (diagnostics)
        self.eval_x = self.eval_y = None
        if eval_x is not None:
            self.set_eval(eval_x, eval_y)

    def set_eval(self, x: Tensor, y: Tensor, pool: tuple[Tensor, Tensor] | None = None) -> None:
        """Images that score cells; the first eval_batch_size of them are the fixed forgetting batch.

        pool: the images fresh scoring batches are drawn from (RSPS; default: x, y themselves).
        """
        self.eval_x, self.eval_y = x.to(self.device).contiguous(memory_format=self.layout), y.to(self.device)
        n = min(self.cfg.eval_batch_size, len(y))
        self.probe_x, self.probe_y = self.eval_x[:n], self.eval_y[:n]
        if pool is None:
            self.pool_x, self.pool_y = self.eval_x, self.eval_y
        else:
            self.pool_x, self.pool_y = pool[0].to(self.device).contiguous(memory_format=self.layout), pool[1].to(self.device)

    def evaluate_fresh(self, cell: Cell) -> float:
        """Supernet accuracy (%) of `cell` on a fresh seeded draw of rsps_eval_images pool images (RSPS's scoring)."""
        from e2nas.warmup import evaluate_path

        n = min(self.cfg.rsps_eval_images, len(self.pool_y))
        idx = torch.randperm(len(self.pool_y), generator=self.gens["eval"])[:n].to(self.device)
        return float(evaluate_path(self.net, self.pool_x[idx], self.pool_y[idx], tuple(cell), batch_size=self.cfg.eval_batch_size))

    # -- losses

    def path_loss(self, x: Tensor, y: Tensor, cell: Cell, weights: Tensor | None = None) -> Tensor:
        return F.cross_entropy(self.net(x, cell, weights), y)

    # -- weight steps

    def _weight_update(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)  # no host sync: the norm stays a tensor
        self.w_opt.step()
        self.updated = True

    # Several paths of one weight step in one grouped pass (Space.grouped_losses; NB201 has one).
    # Off by default: on an H200 at paper size it was faster in 1 of 4 settings and took twice
    # the memory (benchmarks/RESULTS.md, gpu_check 2026-11-30); on a CPU the compute is the same
    # and separate passes keep one path's activations alive at a time.
    grouped_paths: bool = False

    def _use_grouped(self) -> bool:
        return self.grouped_paths and self.space.supports_grouped_paths

    def train_paths(self, x: Tensor, y: Tensor, terms: Sequence[tuple[Cell, float]], probe: Cell | None = None) -> Tensor:
        """One SGD step on Σ coef · L(cell) over single paths; returns the first term's loss (detached).

        Identical cells in `terms` are merged (their coefficients add): on the same batch they
        have the same loss and gradient, so one pass computes both exactly. The remaining paths
        run either in one grouped pass (see `grouped_paths`) or one after the other, each
        backpropagated as soon as it is built so that only one path's graph is alive at a time;
        both give the same gradient. With `probe`, the accuracy of that cell on the fixed batch
        is recorded just before and just after the step (the forgetting measure).
        """
        merged: dict[Cell, float] = {}
        for cell, coef in terms:
            merged[tuple(cell)] = merged.get(tuple(cell), 0.0) + coef
        self.trained.extend(cell for cell, coef in merged.items() if coef)
        if probe is not None:
            self.stats.set("forget_before", self.probe_accuracy(probe))
        self.w_opt.zero_grad(set_to_none=True)
        first = None
        if len(merged) > 1 and self._use_grouped():
            losses = self.space.grouped_losses(self.net, x, y, list(merged))
            # Python-float coefficients: a host tensor copied to the device would wait for the queue.
            sum(coef * loss for coef, loss in zip(merged.values(), losses.unbind())).backward()
            first = losses[0].detach()
        else:
            for cell, coef in merged.items():
                loss = self.path_loss(x, y, cell)
                (coef * loss).backward()
                first = loss.detach() if first is None else first
        self._weight_update()
        if probe is not None:
            self.stats.set("forget_after", self.probe_accuracy(probe))
        self.stats.add("loss_train", first)
        return first

    def train_mixture(self, x: Tensor, y: Tensor, probs: Tensor) -> Tensor:
        """One SGD step on the loss of the mixture supernet under fixed op probabilities (DARTS)."""
        self.w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.net.forward_mixture(x, probs.detach()), y)
        loss.backward()
        self._weight_update()
        self.stats.add("loss_train", loss)
        return loss.detach()

    # -- evaluation

    @torch.no_grad()
    def probe_accuracy(self, cell: Cell) -> Tensor:
        """Accuracy (%) of `cell` on the fixed batch, as a device tensor (no sync)."""
        logits = self.net(self.probe_x, cell, None)
        return (logits.argmax(dim=1) == self.probe_y).float().mean() * 100.0

    def evaluate(self, cell: Cell) -> float:
        """Supernet accuracy (%) of `cell` on the eval images."""
        from e2nas.warmup import evaluate_path

        return float(evaluate_path(self.net, self.eval_x, self.eval_y, tuple(cell), batch_size=self.cfg.eval_batch_size))

    # -- state

    updated = False  # whether a weight step ran (a frozen supernet's search takes none)

    def end_epoch(self) -> None:
        if self.updated:  # the schedule follows the weight steps (none: nothing to schedule)
            self.w_sched.step()

    def path_diagnostics(self) -> dict:
        """What the epoch's weight half trained: its distinct cells and the parameter-free share of their ops
        (a single-path search that trains its own favourites comes to prefer them); then starts a new epoch's."""
        trained, self.trained = self.trained, []
        return {"distinct_cells_trained": len(set(trained)) if trained else None,
                "trained_parameter_free_share": self.space.parameter_free_share(trained) if trained else None}

    def state_dict(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "rng": rng_state(self.gens),
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        set_rng_state(state["rng"], self.gens)


def straight_through(probs: Tensor, index: Tensor) -> Tensor:
    """h = onehot(index) − stopgrad(P) + P: one-hot in value, P's gradient (GDAS's trick)."""
    # A comparison, not F.one_hot: no value check of `index`, so no device sync.
    hard = (index.unsqueeze(-1) == torch.arange(probs.shape[-1], device=probs.device)).to(probs.dtype)
    return hard - probs.detach() + probs


def hard_cell(probs: Tensor, cell: Cell | None = None, index: Tensor | None = None) -> tuple[Cell, Tensor]:
    """The cell to run, as host ints and as a device index shaped like P's rows: `index` (a
    space's decode) or argmax of P, or a given `cell` (benchmarks fix the cells). The index's
    copy to the host is a step's one sync: it picks the path."""
    if cell is None:
        index = probs.argmax(dim=-1) if index is None else index
        return tuple(index.flatten().tolist()), index
    return tuple(cell), torch.tensor(cell, dtype=torch.long, device=probs.device).reshape(probs.shape[:-1])

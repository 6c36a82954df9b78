"""The search harness every method shares: config, schedules, weight steps, the epoch loop, result.

One harness for E2NAS, its ablations and the baselines, so they differ only in how they choose
the path of a step and update their architecture parameters: the same warmed-up supernet, data
split, batches, epoch budget and weight optimiser (SGD, cosine lr, Nesterov, clip 5).

A step never waits on the device except for the one transfer of the sampled cell's op
indices that picks the path to run (E2NAS and GDAS). What depends on the search space (NB201
or DARTS: sampling, decoding, complementation, derivation) comes from `e2nas.search.space`. Per-step statistics stay on the device
as tensors (`EpochStats`) and are read once per epoch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from e2nas.checkpoint import EpochCheckpoint, check_finite, rng_state, set_rng_state
from e2nas.search.space import SearchSpace, search_space

log = logging.getLogger(__name__)

E2NAS_METHODS = ("e2nas", "e2nas-noexplore", "e2nas-nocomplement")
BASELINE_METHODS = ("gdas", "darts", "rsps")
METHODS = E2NAS_METHODS + BASELINE_METHODS

Cell = tuple[int, ...]


@dataclass
class SearchConfig:
    """Config section `search`. Defaults are the quick default profile; paper values in comments."""

    epochs: int = 5  # search epochs T (paper: 250)
    batch_size: int = 64  # images per weight step and per architecture step (paper: 64)
    # Supernet weights: SGD, cosine schedule per epoch (paper values).
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = True
    w_weight_decay: float = 5e-4
    grad_clip: float = 5.0  # max global norm of the weight gradient
    # Architecture parameters (E2NAS's μ, log σ; GDAS's and DARTS's α): Adam. The paper's lr is
    # 3e-4 over 250 epochs; a quick profile takes ~100x fewer steps, so it needs a ~100x larger
    # lr or μ (and α) would not leave their start.
    arch_lr: float = 0.05
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3  # on GDAS's and DARTS's α only (the paper's); never on μ or log σ
    # E2NAS.
    # Decoder softmax temperature τ. It only shapes the straight-through gradient: below ~3 a
    # decoder trained to exact reconstruction is saturated, and on a known optimum τ in 15-60
    # steered 3 in 4 seeds to it against 1 in 2 at τ = 10 (docs/method.md); tau_min < tau_max
    # anneals it geometrically per epoch.
    tau_max: float = 30.0
    tau_min: float = 30.0
    sigma_init: float = 0.1  # initial σ of q(z) (clamped into [sigma_min, sigma_max])
    sigma_min: float = 0.01  # σ is kept in [sigma_min, sigma_max] ...
    sigma_max: float | None = None  # ... None: the median posterior σ of the VGAE over all encodings
    sigma_lr_scale: float = 0.1  # log σ learns from L_val alone at arch_lr × this
    manifold_weight: float = 0.3  # β_m: weight of the manifold term M(μ) = −log ρ_E(μ) / d
    grad_rms_decay: float = 0.9  # each latent term's gradient on μ is divided by its running RMS (this decay)
    archive_size: int = 50  # K: latents in the novelty archive (filled with K samples of q at the start)
    explore_r: float = 10.0  # r in η_t = 1 − sigmoid(r (2t/T − 1))
    complement_lambda: float = 0.5  # λ in L_w = (1 − λ) L(a_t) + λ/2 [L(a_{t−1}) + L(a_c)]
    # Baselines.
    gdas_tau_max: float = 10.0  # GDAS's Gumbel temperature, annealed linearly per epoch (as GDAS does) ...
    gdas_tau_min: float = 0.1  # ... to this
    rsps_num_candidates: int = 20  # cells RSPS ranks with the supernet
    rsps_eval_images: int = 512  # arch-half images that score a cell (every method's acc_val, RSPS's ranking)
    eval_batch_size: int = 256  # batch of those evaluations (and of the fixed forgetting batch)

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "tau_min": 0 < self.tau_min <= self.tau_max,
            "gdas_tau_min": 0 < self.gdas_tau_min <= self.gdas_tau_max,
            "sigma_min": 0 < self.sigma_min <= self.sigma_init,
            "sigma_max": self.sigma_max is None or self.sigma_max >= self.sigma_min,
            "sigma_lr_scale": self.sigma_lr_scale >= 0,
            "manifold_weight": self.manifold_weight >= 0,
            "grad_rms_decay": 0 <= self.grad_rms_decay < 1,
            "archive_size": self.archive_size >= 2,
            "complement_lambda": 0 <= self.complement_lambda <= 1,
            "rsps_num_candidates": self.rsps_num_candidates >= 1,
            "rsps_eval_images": self.rsps_eval_images >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid search config value(s) for {', '.join(bad)}: {asdict(self)}")


# ---------------------------------------------------------------- schedules


def eta_at(epoch: int, epochs: int, r: float) -> float:
    """Exploration weight η_t = 1 − sigmoid(r (2t/T − 1)): ≈1 early (explore), ≈0 late (exploit)."""
    return 1.0 - 1.0 / (1.0 + math.exp(-r * (2.0 * epoch / epochs - 1.0)))


def geometric_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """τ_t = τ_max (τ_min/τ_max)^(t/(T−1)); τ_max for a one-epoch search."""
    return tau_max * (tau_min / tau_max) ** (epoch / max(epochs - 1, 1))


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """GDAS's schedule: τ_t = τ_max − (τ_max − τ_min) t/(T−1)."""
    return tau_max - (tau_max - tau_min) * epoch / max(epochs - 1, 1)


# ---------------------------------------------------------------- statistics


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


# ---------------------------------------------------------------- the harness


def seeded_generators(seed: int, device: torch.device) -> dict[str, torch.Generator]:
    """Independent seeded streams: data order of each half, discrete choices, scoring batches (CPU), noise (device)."""
    base = torch.Generator().manual_seed(seed)
    seeds = torch.randint(2**62, (6,), generator=base).tolist()
    gens = {name: torch.Generator().manual_seed(s) for name, s in zip(("init", "data_w", "data_a", "choice"), seeds)}
    gens["noise"] = torch.Generator(device=device).manual_seed(seeds[4])
    gens["eval"] = torch.Generator().manual_seed(seeds[5])
    return gens


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
        space: str = "nb201",
    ):
        self.net, self.cfg, self.device = net, cfg, torch.device(device)
        self.space: SearchSpace = search_space(space)
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(
            self.params, lr=cfg.w_lr, momentum=cfg.w_momentum, nesterov=cfg.w_nesterov, weight_decay=cfg.w_weight_decay
        )
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
        self.gens = seeded_generators(seed, self.device)
        self.stats = EpochStats()
        self.eval_x = self.eval_y = None
        if eval_x is not None:
            self.set_eval(eval_x, eval_y)

    def set_eval(self, x: Tensor, y: Tensor, pool: tuple[Tensor, Tensor] | None = None) -> None:
        """Images that score cells; the first eval_batch_size of them are the fixed forgetting batch.

        pool: the images fresh scoring batches are drawn from (RSPS; default: x, y themselves).
        """
        self.eval_x, self.eval_y = x.to(self.device), y.to(self.device)
        n = min(self.cfg.eval_batch_size, len(y))
        self.probe_x, self.probe_y = self.eval_x[:n], self.eval_y[:n]
        self.pool_x, self.pool_y = (self.eval_x, self.eval_y) if pool is None else (t.to(self.device) for t in pool)

    def evaluate_fresh(self, cell: Cell) -> float:
        """Supernet accuracy (%) of `cell` on a fresh seeded draw of rsps_eval_images pool images (RSPS's scoring)."""
        from e2nas.supernet.warmup import evaluate_path

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

    # Several paths of one weight step in one grouped pass (e2nas.supernet.grouped), NB201
    # supernets only. Off by default: on an H200 at paper size it was faster in 1 of 4 settings
    # and took twice the memory (benchmarks/RESULTS.md, gpu_check 2026-11-30); on a CPU the
    # compute is the same and separate passes keep one path's activations alive at a time.
    grouped_paths: bool = False

    def _use_grouped(self) -> bool:
        from e2nas.supernet.nb201 import SuperNet

        return self.grouped_paths and isinstance(self.net, SuperNet)

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
        if probe is not None:
            self.stats.set("forget_before", self.probe_accuracy(probe))
        self.w_opt.zero_grad(set_to_none=True)
        first = None
        if len(merged) > 1 and self._use_grouped():
            from e2nas.supernet.grouped import grouped_losses

            losses = grouped_losses(self.net, x, y, list(merged))
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
        from e2nas.supernet.warmup import evaluate_path

        return float(evaluate_path(self.net, self.eval_x, self.eval_y, tuple(cell), batch_size=self.cfg.eval_batch_size))

    # -- state

    def end_epoch(self) -> None:
        self.w_sched.step()

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


def random_cells(n: int, generator: torch.Generator) -> list[Cell]:
    """n NB201 cells drawn uniformly (the step benchmarks' fixed cells)."""
    return search_space("nb201").sample(n, generator)


# ---------------------------------------------------------------- method interface


class SearchMethod:
    """What the loop needs from a method. Subclasses live in e2nas.py and baselines.py."""

    name: str = ""
    has_paths = True  # trains single paths (so forgetting is defined); False for DARTS

    def __init__(self, harness: Harness):
        self.harness = harness
        self.cfg = harness.cfg

    def start_epoch(self, epoch: int, epochs: int) -> dict:
        """Set the epoch's schedules; returns the values to record (eta, tau)."""
        return {"eta": None, "tau": None}

    def step(self, xw: Tensor, yw: Tensor, xa: Tensor, ya: Tensor, cell: Cell | None = None, probe: bool = False) -> None:
        """One search step: weight half on (xw, yw), architecture half on (xa, ya).

        `cell` forces the step's cell (the step benchmark uses it to time every method on the
        same cells); `probe` records the forgetting measure in this step.
        """
        raise NotImplementedError

    def epoch_arch(self) -> tuple[Cell, float | None]:
        """The cell the method would return now and, when it was scored for choosing it, its accuracy."""
        raise NotImplementedError

    def epoch_extras(self) -> dict:
        """Method-specific fields of the epoch's record (e.g. μ, σ)."""
        return {}

    def result_extras(self) -> dict:
        """Method-specific fields of result.json (e.g. the start cell)."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


# ---------------------------------------------------------------- the loop


def _record(epoch, method, schedule, stats, cell, acc, table, seconds) -> dict:
    before, after = stats.get("forget_before"), stats.get("forget_after")
    arch = method.harness.space.format(cell)
    looked = table.lookup(arch) if table is not None else None
    return {
        "epoch": epoch,
        "arch": arch,
        "eta": schedule.get("eta"),
        "tau": schedule.get("tau"),
        "loss_train": stats.get("loss_train"),
        "loss_val": stats.get("loss_val"),
        "acc_val": acc,
        "novelty": stats.get("novelty"),
        # E2NAS's latent diagnostics (its extras fill them); GDAS's and DARTS's alpha_entropy.
        "sigma": None,
        "mu_nearest_distance": None,
        "decoder_confidence": None,
        "decoder_jacobian": None,
        "distinct_cells": None,
        "sampled_decoded_fraction": stats.get("sampled_decoded"),
        "alpha_entropy": None,
        "complement_same_fraction": stats.get("complement_same"),
        "forgetting": None if before is None else before - after,
        "forgetting_before": before,
        "forgetting_after": after,
        "nb201_cifar10": None if looked is None else looked.get("cifar10"),
        "seconds": seconds,
        "mu": None,  # E2NAS's μ (its extras replace it)
        **method.epoch_extras(),
    }


def run_epoch(method: SearchMethod, batches_w, batches_a, epoch: int, epochs: int, progress: bool = True, label: str = "") -> dict:
    """Train one epoch; returns the schedule values and the epoch's statistics (floats)."""
    schedule = method.start_epoch(epoch, epochs)
    steps = min(len(batches_w), len(batches_a))
    bar = tqdm(total=steps, desc=f"{label} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
    for i, ((xw, yw), (xa, ya)) in enumerate(zip(batches_w, batches_a)):
        method.step(xw, yw, xa, ya, probe=method.has_paths and i == steps - 1)
        bar.update()
    bar.close()
    method.harness.end_epoch()
    return schedule


def _write_json(path: str | os.PathLike, obj: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def _build_method(method: str, harness: Harness, vgae_path, graphs_path, device) -> SearchMethod:
    if method in E2NAS_METHODS:
        if vgae_path is None or graphs_path is None:
            raise ValueError(
                f"method {method!r} searches the VGAE's latent space: pass vgae_path (stage 2's model.pt) "
                f"and graphs_path (stage 1's graphs, whose encodings make the manifold term)"
            )
        from e2nas.graphs import GraphSet
        from e2nas.search.e2nas import E2NAS
        from e2nas.vgae import load_vgae

        graphs = GraphSet.load(graphs_path)
        if graphs.space != harness.space.name:
            raise ValueError(f"graphs {graphs_path} are of the {graphs.space!r} space, but the supernet is {harness.space.name!r}")
        return E2NAS.for_method(method, harness, load_vgae(vgae_path, device), graphs)
    from e2nas.search.baselines import BASELINES

    return BASELINES[method](harness)


def _split_images(data, split, device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w, a = torch.as_tensor(split["weights"]).long(), torch.as_tensor(split["arch"]).long()
    return data.train_x[w], data.train_y[w], data.train_x[a], data.train_y[a]


def run_search(
    method: str,
    data,
    warmup_path: str | os.PathLike,
    vgae_path: str | os.PathLike | None,
    cfg: SearchConfig,
    seed: int,
    result_path: str | os.PathLike,
    checkpoint_path: str | os.PathLike,
    device: torch.device | str = "cpu",
    table=None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    graphs_path: str | os.PathLike | None = None,
) -> dict:
    """Search with `method` on the warmed-up supernet; write and return result.json's dict.

    data: an ImageData (the one the supernet was warmed up on); the warm-up file's split picks
    the weights half (weight steps) and the arch half (architecture steps, scoring).
    table: any object with lookup(arch_string) -> {"cifar10", ...} | None, or None (NB201 only;
    ignored in the DARTS space).
    The space (NB201 or DARTS) is the warm-up file's. graphs_path: stage 1's graphs (E2NAS
    methods: their encodings make the manifold term and σ_max's default).
    Checkpoints every epoch at checkpoint_path, resumes from it, deletes it on success.
    on_epoch(record) runs after each epoch's checkpoint (e.g. to log metrics).
    """
    if method not in METHODS:
        raise ValueError(f"unknown search method {method!r}; known: {', '.join(METHODS)}")
    from e2nas.supernet.warmup import load_warmup

    device = torch.device(device)
    net, meta = load_warmup(warmup_path, device)
    if meta.get("dataset") not in (None, data.name):
        raise ValueError(f"warm-up {warmup_path} was trained on {meta['dataset']!r}, but the search data is {data.name!r}")
    space = meta.get("space", "nb201")
    table = table if space == "nb201" else None
    xw, yw, xa, ya = _split_images(data, meta["split"], device)
    harness = Harness(net, cfg, device, seed, space=space)
    harness.set_eval(xa[: cfg.rsps_eval_images], ya[: cfg.rsps_eval_images], pool=(xa, ya))
    searcher = _build_method(method, harness, vgae_path, graphs_path, device)
    from e2nas.data import BatchIterator

    batches_w = BatchIterator(xw, yw, cfg.batch_size, device, harness.gens["data_w"], data.augment, data.pad)
    batches_a = BatchIterator(xa, ya, cfg.batch_size, device, harness.gens["data_a"], data.augment, data.pad)

    ckpt = EpochCheckpoint(
        checkpoint_path, {"method": method, "seed": seed, "dataset": data.name, "space": space, "search": asdict(cfg)}
    )
    trajectory, elapsed, start = [], 0.0, 0
    state = ckpt.load()
    if state is not None:
        harness.load_state_dict(state["harness"])
        searcher.load_state_dict(state["method"])
        trajectory, elapsed, start = list(state["trajectory"]), float(state["elapsed"]), int(state["epoch"]) + 1
        log.info("resuming %s seed %d from epoch %d (%s)", method, seed, start, checkpoint_path)

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        harness.stats = EpochStats()
        schedule = run_epoch(searcher, batches_w, batches_a, epoch, cfg.epochs, progress, method)
        stats = harness.stats.read()  # the epoch's one read of the step statistics
        kept = checkpoint_path if Path(checkpoint_path).exists() else None
        for key in ("loss_train", "loss_val"):
            if key in stats:
                check_finite(stats[key], epoch, kept)
        cell, acc = searcher.epoch_arch()
        acc = harness.evaluate(cell) if acc is None else acc
        seconds = time.perf_counter() - t0
        elapsed += seconds
        trajectory.append(_record(epoch, searcher, schedule, stats, cell, acc, table, seconds))
        ckpt.save(
            epoch, harness=harness.state_dict(), method=searcher.state_dict(), trajectory=trajectory, elapsed=elapsed
        )
        if on_epoch is not None:
            on_epoch(trajectory[-1])

    final = trajectory[-1]["arch"]
    forgetting = [r["forgetting"] for r in trajectory if r["forgetting"] is not None]
    result = {
        "arch": final,
        "method": method,
        "seed": seed,
        "dataset": data.name,
        "space": space,
        "epochs": cfg.epochs,
        "search_seconds": elapsed,
        "nb201": table.lookup(final) if table is not None else None,
        "forgetting_mean": sum(forgetting) / len(forgetting) if forgetting else None,
        "config": asdict(cfg),
        **searcher.result_extras(),
        "trajectory": trajectory,
    }
    _write_json(result_path, result)
    Path(checkpoint_path).unlink(missing_ok=True)
    return result

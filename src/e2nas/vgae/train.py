"""Stage 2: train the graph VAE on the stage-1 graphs, evaluate it, write model.pt and metrics.json.

The whole space sits in memory as dense tensors; a mini-batch is `GraphSet.batch(index)` over a
seeded permutation of the training cells, so an epoch has no per-graph Python work.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from e2nas.checkpoint import check_finite, write_json
from e2nas.graphs import GraphSet
from e2nas.progress import progress as progress_bar
from e2nas.vgae.metrics import evaluate_vgae, exact_match
from e2nas.vgae.model import GraphVAE, VGAEConfig, save_vgae


def heldout_split(n: int, cfg: VGAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, heldout_idx): a seeded `heldout_fraction` of range(n) held out, both sorted."""
    if not 0.0 <= cfg.heldout_fraction < 1.0:
        raise ValueError(f"vgae.heldout_fraction must be in [0, 1), got {cfg.heldout_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    num_heldout = round(n * cfg.heldout_fraction)
    return perm[num_heldout:].sort().values, perm[:num_heldout].sort().values


def kl_weight(epoch: int, cfg: VGAEConfig) -> float:
    """β at `epoch`: 0 at the first epoch, rising linearly to cfg.beta over cfg.kl_warmup epochs."""
    if cfg.kl_warmup <= 0:
        return cfg.beta
    return cfg.beta * min(1.0, epoch / cfg.kl_warmup)


@contextmanager
def seeded_global_rng(seed: int, device: torch.device):
    """Seed the global RNG inside a fork, leaving the caller's RNG state as it was.

    PyG's VGAE.reparametrize draws its noise from the global RNG; seeding it here makes a
    training run reproducible without a Generator threaded through PyG.
    """
    accel = device.type != "cpu"
    with torch.random.fork_rng(devices=[device] if accel else [], device_type=device.type if accel else "cuda"):
        torch.manual_seed(seed)
        yield


def build_model(graphs: GraphSet, cfg: VGAEConfig, device: torch.device) -> GraphVAE:
    """A fresh GraphVAE for the space of `graphs`, initialised from cfg.seed without touching the global RNG."""
    from e2nas import spaces

    with seeded_global_rng(cfg.seed, torch.device("cpu")):
        model = GraphVAE(graphs.num_features, spaces.get(graphs.space).choice_sizes, cfg, num_nodes=graphs.x.shape[1])
    model.space = graphs.space
    return model.to(device)


def train_epoch(model, graphs, archs, train_idx, opt, sched, beta, cfg, gen) -> dict:
    """One pass over the training cells in a seeded order; returns the epoch's mean losses."""
    model.train()
    device = model.device
    totals = torch.zeros(3, device=device)  # summed over cells: loss, recon, kl (one sync per epoch)
    order = train_idx[torch.randperm(len(train_idx), generator=gen)]
    for chunk in order.split(cfg.batch_size):
        b = graphs.batch(chunk).to(device)
        logits, mu, logstd = model(b.x, b.edge_index, b.batch)
        recon = model.recon_loss(logits, archs[chunk.to(device)])
        kl = model.kl_loss(mu, logstd)
        loss = recon + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        totals += torch.stack([loss, recon, kl]).detach() * len(chunk)
    loss, recon, kl = (totals / len(train_idx)).tolist()
    return {"loss": loss, "recon_loss": recon, "kl": kl}


def train_vgae(
    graphs: GraphSet,
    cfg: VGAEConfig,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> tuple[GraphVAE, dict]:
    """Train on all cells but the seeded held-out split; returns (model in eval mode, history).

    history holds per-epoch lists: loss, recon_loss, kl (means over training cells of the
    sampled-z losses), beta, heldout_reconstruction_accuracy (argmax decode of μ, fraction)
    and epoch_seconds. `on_epoch(epoch, record)` gets each epoch's record as it ends.
    """
    device = torch.device(device)
    train_idx, heldout_idx = heldout_split(len(graphs), cfg)
    model = build_model(graphs, cfg, device)
    archs = graphs.archs.to(device)
    steps = cfg.epochs * math.ceil(len(train_idx) / cfg.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=cfg.lr / 20)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: dict[str, list] = {}
    with seeded_global_rng(cfg.seed, device):
        bar = progress_bar(range(cfg.epochs), desc="vgae", unit="epoch", disable=not progress)
        for epoch in bar:
            start = time.perf_counter()
            beta = kl_weight(epoch, cfg)
            record = train_epoch(model, graphs, archs, train_idx, opt, sched, beta, cfg, gen)
            check_finite(record["loss"], epoch, None)
            record["beta"] = beta
            record["heldout_reconstruction_accuracy"] = _accuracy(model, graphs, archs, heldout_idx)
            record["epoch_seconds"] = time.perf_counter() - start
            for k, v in record.items():
                history.setdefault(k, []).append(v)
            bar.set_postfix(recon=f"{record['recon_loss']:.3f}", kl=f"{record['kl']:.2f}")
            if on_epoch is not None:
                on_epoch(epoch, record)
    return model.eval(), history


def _accuracy(model: GraphVAE, graphs: GraphSet, archs: torch.Tensor, index: torch.Tensor) -> float | None:
    if len(index) == 0:
        return None
    mu = model.encode_archs(graphs, index)
    return exact_match(model.decode_archs(mu), archs[index.to(archs.device)]).float().mean().item()


def run_pretraining(
    graphs_path: str | os.PathLike,
    model_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    cfg: VGAEConfig,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> tuple[dict, dict]:
    """Stage 2 end to end: load the graphs, train, evaluate, write model.pt and metrics.json; (metrics, history)."""
    graphs = GraphSet.load(graphs_path)
    start = time.perf_counter()
    model, history = train_vgae(graphs, cfg, device, progress, on_epoch)
    train_seconds = time.perf_counter() - start
    _, heldout_idx = heldout_split(len(graphs), cfg)
    start = time.perf_counter()
    metrics = evaluate_vgae(model, graphs, heldout_idx, cfg)
    metrics.update(
        space=graphs.space,
        num_heldout=len(heldout_idx),
        epochs=cfg.epochs,
        train_seconds=train_seconds,
        eval_seconds=time.perf_counter() - start,
        final_loss=history["loss"][-1] if cfg.epochs else None,
        final_recon_loss=history["recon_loss"][-1] if cfg.epochs else None,
        final_kl=history["kl"][-1] if cfg.epochs else None,
        device=str(device),
        torch_threads=torch.get_num_threads(),
    )
    save_vgae(model, cfg, graphs.space, model_path)
    write_json(metrics, metrics_path)  # atomically: a kill never leaves a torn output
    return metrics, history

"""The SGD loop the supernet warm-up and the final retraining share.

One epoch of steps with no host sync per step (loss and correct counts stay device tensors
and are read once at the end), an accuracy function, the paper's optimiser and schedule, and
the helpers both stages use to make their runs reproducible and resumable.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.checkpoint import EpochStage, check_finite, rng_state, set_rng_state
from e2nas.progress import progress as progress_bar

log = logging.getLogger(__name__)


def make_sgd(
    params, epochs: int, lr: float, lr_min: float, momentum: float, nesterov: bool, weight_decay: float
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.CosineAnnealingLR]:
    """SGD with a cosine schedule from lr to lr_min over `epochs` (stepped once per epoch)."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=lr_min)


def step_schedule(
    optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int, lr_min: float, warmup_epochs: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A schedule stepped after every optimiser step: linear warm-up from ~0 over `warmup_epochs`,
    then cosine from the optimiser's lr to lr_min at the last step.

    With few epochs, a per-epoch cosine never gets near lr_min (3 epochs end at lr/4), and
    the last steps' large updates are what makes two seeds of one cell disagree.
    """
    total = max(epochs * steps_per_epoch, 1)
    warm = min(round(warmup_epochs * steps_per_epoch), total - 1)
    base = optimizer.param_groups[0]["lr"]
    floor = lr_min / base if base > 0 else 0.0

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        t = (step - warm) / max(total - warm - 1, 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_epoch(
    model: nn.Module,
    batches,
    optimizer: torch.optim.Optimizer,
    grad_clip: float | None,
    forward: Callable[[Tensor], Tensor] | None = None,
    progress: bool = True,
    desc: str = "",
    loss_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    step_scheduler=None,
) -> dict[str, float]:
    """One pass over `batches`; returns {"loss": mean loss, "accuracy": % correct} on the training batches.

    forward(x) -> logits defaults to model(x) (the warm-up passes one that samples a path).
    loss_fn(x, y) -> (loss, logits), when given, replaces forward + cross-entropy (DARTS's
    auxiliary head adds a term to the loss; the accuracy is the returned logits'). A loss_fn that
    trains P paths on the batch (fair sampling) returns the sum of their losses and their logits
    stacked (P·B rows): the epoch records the mean over the paths.
    Parameters without a gradient in a step (ops off the path) are left alone by SGD, as
    zero_grad(set_to_none=True) keeps their grad None. `step_scheduler`, when given, is stepped
    after every optimiser step (`step_schedule`).
    """
    forward = forward or model
    params = [p for group in optimizer.param_groups for p in group["params"]]
    model.train()
    loss_sum = correct = None
    seen = 0
    for x, y in progress_bar(batches, total=len(batches), desc=desc, disable=not progress, leave=False):
        optimizer.zero_grad(set_to_none=True)
        if loss_fn is None:
            logits = forward(x)
            loss = F.cross_entropy(logits, y)
        else:
            loss, logits = loss_fn(x, y)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(params, grad_clip)  # the norm stays a tensor: no sync
        optimizer.step()
        if step_scheduler is not None:
            step_scheduler.step()
        paths = len(logits) // len(y)  # 1, or the P paths a fair update trains
        batch_loss = loss.detach() * (len(y) / paths)
        batch_correct = (logits.detach().argmax(dim=1) == y.repeat(paths)).sum() / paths
        loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
        correct = batch_correct if correct is None else correct + batch_correct
        seen += len(y)
    if seen == 0:
        raise ValueError("an epoch without a single batch: the training set is smaller than one batch")
    return {"loss": float(loss_sum / seen), "accuracy": float(correct * 100.0 / seen)}


@torch.no_grad()  # scores only: no autograd graph to build or hold
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256, forward=None) -> float:
    """Accuracy (%) of forward(x) (default model(x)) in eval mode, over batches moved to the model's device.

    The model's train/eval mode is restored afterwards (the search scores cells mid-training).
    """
    forward = forward or model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=device)
    try:
        for start in range(0, len(y), batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            yb = y[start : start + batch_size].to(device, non_blocking=True)
            correct += (forward(xb).argmax(dim=1) == yb).sum()
    finally:
        model.train(was_training)
    return float(correct) * 100.0 / max(len(y), 1)


def stage_generators(
    seed: int, names: tuple[str, ...], device: torch.device | str | None = None, on_device: tuple[str, ...] = ()
) -> dict[str, torch.Generator]:
    """Independent generators, one per named use, all derived from `seed`: on the CPU, but those
    named in `on_device` on `device` (noise drawn there never crosses to the host)."""
    base = torch.Generator().manual_seed(seed)
    seeds = torch.randint(2**62, (len(names),), generator=base).tolist()
    return {
        name: torch.Generator(device=device if name in on_device else "cpu").manual_seed(s) for name, s in zip(names, seeds)
    }


def seeded_init(build: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """Build a module on the CPU with its initial weights drawn from `generator`.

    nn.Module initialisers draw from the global RNG; fork it so the caller's state is untouched
    and the weights do not depend on the device they later move to.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        return build()


def split_digest(split: dict) -> str:
    """A short fingerprint of a data split: a checkpoint made on another split must not resume."""
    h = hashlib.sha1()
    for key in ("weights", "arch"):
        h.update(torch.as_tensor(split[key]).long().numpy().tobytes())
    return h.hexdigest()[:16]


def new_history() -> dict[str, list]:
    """Per-epoch records as columns (pandas.DataFrame(history) reads them directly)."""
    return {"epoch": [], "loss": [], "accuracy": [], "lr": [], "seconds": []}


def append_record(history: dict[str, list], record: dict) -> None:
    for key, column in history.items():
        column.append(record[key])


@dataclass
class Phase:
    """Epochs trained with one optimiser and its schedule: a retraining has one; a few-shot warm-up its
    one-shot part and then one per sub-supernet, each with a fresh SGD and its own cosine schedule.

    optimizer() -> (optimizer, scheduler) is called when the phase starts or resumes; start(), when
    given, runs before the phase's first epoch (also when a resume lands there: the checkpoint before
    it holds the previous phase's end). forward / loss_fn: as train_epoch's. paths: single paths one
    optimiser step trains (the budget a warm-up records).
    """

    name: str
    epochs: int
    optimizer: Callable[[], tuple]
    forward: Callable[[Tensor], Tensor] | None = None
    loss_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    start: Callable[[], None] | None = None
    paths: int = 1


def fit_epochs(
    net: nn.Module,
    batches,
    phases: list[Phase],
    generators: dict[str, torch.Generator],
    stage: EpochStage,
    grad_clip: float | None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    before_epoch: Callable[[int], dict | None] | None = None,
    per_step: bool = False,
) -> tuple[dict[str, list], float]:
    """The epochs of every phase in turn (`train_epoch`), checkpointed after each one by `stage` and resumed
    from its checkpoint.

    Returns (history, training seconds); with several phases the history has a `phase` column. A
    non-finite loss stops with DivergedError and keeps the previous epoch's checkpoint.
    before_epoch(epoch) runs before each epoch (also the first one after a resume), so per-epoch
    settings must derive from the epoch alone; the dict it may return is recorded as extra history
    columns. per_step: the schedule is stepped after every optimiser step (`step_schedule`), not per epoch.
    """
    starts = [sum(p.epochs for p in phases[:i]) for i in range(len(phases))]
    total = sum(p.epochs for p in phases)
    current: dict = {}

    def phase_at(epoch: int) -> int:
        return max(i for i, first in enumerate(starts) if first <= epoch)

    def enter(index: int) -> None:
        current.update(index=index, pair=phases[index].optimizer())

    def restore(state: dict) -> None:
        net.load_state_dict(state["model"])
        enter(phase_at(int(state["epoch"])))
        optimizer, scheduler = current["pair"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], generators)

    if not stage.log:
        stage.log = new_history()
    for epoch in range(stage.resume(restore), total):
        index = phase_at(epoch)
        phase = phases[index]
        if epoch == starts[index] and phase.start is not None:
            phase.start()
        if current.get("index") != index:
            enter(index)
        optimizer, scheduler = current["pair"]
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        extra = (before_epoch(epoch) if before_epoch is not None else None) or {}
        if len(phases) > 1:
            extra = {"phase": phase.name, **extra}
        desc = f"{stage.name}{f' ({phase.name})' if len(phases) > 1 else ''} epoch {epoch + 1}/{total}"
        stats = train_epoch(net, batches, optimizer, grad_clip, forward=phase.forward, progress=progress, desc=desc,
                            loss_fn=phase.loss_fn, step_scheduler=scheduler if per_step else None)
        if not per_step:
            scheduler.step()
        check_finite(stats["loss"], epoch, stage.kept())
        seconds = time.perf_counter() - t0
        record = {"epoch": epoch, **stats, "lr": lr, "seconds": seconds, **extra}
        for key in extra:
            stage.log.setdefault(key, [])
        append_record(stage.log, record)
        log.info("%s epoch %d/%d: loss %.4f, accuracy %.2f%%", stage.name, epoch + 1, total, stats["loss"], stats["accuracy"])
        stage.end_epoch(epoch, seconds, model=net.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=rng_state(generators))
        if on_epoch is not None:
            on_epoch(record)
    return stage.log, stage.elapsed

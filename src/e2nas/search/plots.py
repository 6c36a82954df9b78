"""Stage 4's figures from a result.json: losses and schedules, what the search picked, E2NAS's latent state.

Figures are built without pyplot (no global state): notebooks display them, MLflow logs them.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor


def _series(trajectory: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["epoch"] + 1, r[key]) for r in trajectory if r.get(key) is not None]
    return ([e for e, _ in points], [v for _, v in points]) if points else ([], [])


def search_curves(trajectory: list[dict], title: str, table_stats: dict | None = None) -> Figure:
    """Four panels over the epochs: the two losses, the schedules (η, τ), the accuracy of the epoch's
    cell (the NB201 table's CIFAR-10 accuracy when `table_stats` is given — a transfer proxy — else the
    supernet's validation accuracy), and the forgetting of a_{t−1}."""
    fig = Figure(figsize=(11, 7), layout="constrained")
    fig.suptitle(title)
    (losses, schedules), (accuracy, forgetting) = fig.subplots(2, 2)
    for key, label in (("loss_train", "training loss (weights half)"), ("loss_val", "validation loss (arch half)")):
        losses.plot(*_series(trajectory, key), marker="o", label=label)
    losses.set(xlabel="epoch", ylabel="cross-entropy", title="losses")
    losses.legend(fontsize=8)
    for key, label in (("eta", "exploration weight η"), ("tau", "temperature τ")):
        epochs, values = _series(trajectory, key)
        if values:
            schedules.plot(epochs, values, marker="o", label=label)
    schedules.set(xlabel="epoch", yscale="log", title="schedules")
    if schedules.lines:
        schedules.legend(fontsize=8)
    if table_stats is not None:
        accuracy.plot(*_series(trajectory, "nb201_cifar10"), marker="o", label="the epoch's cell")
        accuracy.axhline(table_stats["mean"], ls="--", c="grey", label=f"space mean ({table_stats['mean']:.2f})")
        accuracy.axhline(table_stats["best"], ls=":", c="green", label=f"best cell ({table_stats['best']:.2f})")
        accuracy.set(ylabel="NB201 CIFAR-10 test accuracy (%)", title="table accuracy of the epoch's cell (transfer proxy)")
        accuracy.legend(fontsize=8)
    else:
        accuracy.plot(*_series(trajectory, "acc_val"), marker="o")
        accuracy.set(ylabel="accuracy (%)", title="supernet validation accuracy of the epoch's cell")
    accuracy.set(xlabel="epoch")
    epochs, values = _series(trajectory, "forgetting")
    if values:
        forgetting.plot(epochs, values, marker="o")
        forgetting.axhline(0.0, color="black", lw=0.5)
    forgetting.set(xlabel="epoch", ylabel="accuracy points lost",
                   title="forgetting: a$_{t-1}$'s accuracy lost over one step on a$_t$")
    return fig


def latent_diagnostics(result: dict) -> Figure | None:
    """E2NAS's latent state per epoch (None for methods without one): distance from μ to the nearest
    encoded cell against the encodings' own spacing, decoder confidence at μ, σ against its bound, and
    how often the step's sample decoded like μ."""
    trajectory = result["trajectory"]
    if not any(r.get("mu_nearest_distance") is not None for r in trajectory):
        return None
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    fig.suptitle(f"{result['method']} seed {result['seed']}: where q(z) stands")
    (distance, confidence), (sigma, sampled) = fig.subplots(2, 2)
    distance.plot(*_series(trajectory, "mu_nearest_distance"), marker="o", label="μ to the nearest encoded cell")
    if result.get("encoding_nn_median") is not None:
        distance.axhline(result["encoding_nn_median"], ls="--", c="grey", label="median spacing of the encodings")
    distance.set(xlabel="epoch", ylabel="latent distance", title="distance from the cells", ylim=(0, None))
    distance.legend(fontsize=8)
    confidence.plot(*_series(trajectory, "decoder_confidence"), marker="o")
    confidence.set(xlabel="epoch", ylabel="mean largest probability (τ = 1)", title="decoder confidence at μ", ylim=(0, 1.02))
    sigma.plot(*_series(trajectory, "sigma"), marker="o", label="mean σ")
    if result.get("sigma_max") is not None:
        sigma.axhline(result["sigma_max"], ls="--", c="grey", label="σ_max")
    sigma.set(xlabel="epoch", ylabel="σ", title="spread of q(z)", ylim=(0, None))
    sigma.legend(fontsize=8)
    sampled.plot(*_series(trajectory, "sampled_decoded_fraction"), marker="o", label="steps whose sample decoded like μ")
    sampled.set(xlabel="epoch", ylabel="fraction of steps", title="how often the search sampled its own cell", ylim=(0, 1.02))
    sampled.legend(fontsize=8)
    return fig


def latent_path(encodings: Tensor, trajectory: list[dict], title: str) -> Figure:
    """μ after each epoch drawn over every encoded cell, on the encodings' two principal axes."""
    import torch

    from e2nas.figures import PCAProjection

    projection = PCAProjection.fit(encodings)
    cells, path = projection(encodings), projection(torch.tensor([r["mu"] for r in trajectory]))
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(cells[:, 0], cells[:, 1], s=1, c="lightgrey", label="encoded cells")
    ax.plot(path[:, 0], path[:, 1], "-o", c="crimson", ms=4, label="μ after each epoch")
    ax.annotate("epoch 1", path[0].tolist())
    ax.annotate("end", path[-1].tolist())
    ax.set(title=title, xlabel="first principal axis", ylabel="second principal axis")
    ax.legend(fontsize=8, loc="best")
    return fig

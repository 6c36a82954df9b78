"""Stage 2's figures: the VGAE's training curves and the latent map of every encoded cell."""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor


def training_curves(history: dict) -> Figure:
    """The losses per epoch (log scale) and the held-out reconstruction accuracy."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    fig.suptitle("VGAE training")
    losses, heldout = fig.subplots(1, 2)
    for key, label in (("loss", "total (recon + β·KL)"), ("recon_loss", "reconstruction"), ("kl", "KL to N(0, I)")):
        losses.plot(range(1, len(history[key]) + 1), history[key], label=label)
    losses.set(xlabel="epoch", ylabel="loss per cell", yscale="log", title="losses")
    losses.legend(fontsize=8)
    values = [v for v in history["heldout_reconstruction_accuracy"] if v is not None]
    heldout.plot(range(1, len(values) + 1), values, marker="o")
    heldout.set(xlabel="epoch", ylabel="fraction decoded exactly", title="held-out reconstruction", ylim=(0, 1.02))
    return fig


def latent_map(mu: Tensor, title: str, colour: list[float] | None = None, colour_label: str = "") -> Figure:
    """Every cell's latent mean on the two principal axes, coloured by `colour` (e.g. a table accuracy) when given."""
    from e2nas.figures import latent_projection

    coords = latent_projection(mu)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    if colour is not None:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, s=2, cmap="viridis", vmin=60)
        fig.colorbar(points, ax=ax, label=colour_label)
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=2)
    ax.set(title=title, xlabel="first principal axis", ylabel="second principal axis")
    return fig


def table_colours(graphs_path) -> tuple[list[float] | None, str]:
    """Each stage-1 cell's NB201 CIFAR-10 table accuracy and its label, for a space with that table
    when one is configured ($E2NAS_NB201_TABLE); (None, "") otherwise."""
    from e2nas import spaces
    from e2nas.graphs import GraphSet
    from e2nas.tables.nb201 import Nb201Table

    graphs = GraphSet.load(graphs_path)
    space = spaces.get(graphs.space)
    table = Nb201Table.from_env() if space.has_benchmark_table else None
    if table is None:
        return None, ""
    colour = [table.lookup(space.format(cell))["cifar10"] for cell in graphs.archs.tolist()]
    return colour, "NB201 CIFAR-10 test accuracy (%)"

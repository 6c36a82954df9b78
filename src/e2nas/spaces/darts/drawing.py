"""A DARTS genotype drawn as its two cells (normal, reduction), each as a DAG (matplotlib, no pyplot)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from e2nas.spaces.darts import cells as darts

# Short op names for cell drawings.
OP_LABELS = {"none": "none", "max_pool_3x3": "max3", "avg_pool_3x3": "avg3", "skip_connect": "skip",
             "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5"}
NODE_NAMES = ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3")


def _cell(ax: Axes, pairs, label: str) -> None:
    """One cell: inputs and nodes 0..3 in a row, each chosen (op, input) an arc into its node, then the concat."""
    xs = {i: float(i) for i in range(len(NODE_NAMES))}
    out = len(NODE_NAMES) + 0.6
    for i, name in enumerate(NODE_NAMES):
        ax.add_patch(FancyBboxPatch((xs[i] - 0.32, -0.16), 0.64, 0.32, boxstyle="round,pad=0.02",
                                    facecolor="#dde8f5" if i < darts.NUM_INPUTS else "white", edgecolor="black", zorder=3))
        ax.text(xs[i], 0, f"${name}$" if "_" in name else name, ha="center", va="center", fontsize=8, zorder=4)
    ax.add_patch(FancyBboxPatch((out - 0.32, -0.16), 0.64, 0.32, boxstyle="round,pad=0.02", facecolor="#f5e6dd",
                                edgecolor="black", zorder=3))
    ax.text(out, 0, "$c_k$", ha="center", va="center", fontsize=8, zorder=4)
    for k, (op, src) in enumerate(pairs):
        node = darts.NUM_INPUTS + k // darts.SLOTS
        above = k % darts.SLOTS == 0
        span = xs[node] - xs[src]
        rad = (-0.5 if above else 0.5) * (0.6 if span > 1 else 0.9)
        none = op == "none"
        ax.add_patch(FancyArrowPatch((xs[src], 0), (xs[node], 0), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=9, shrinkA=10, shrinkB=10, zorder=2, lw=0.9,
                                     color="grey" if none else "black", linestyle="--" if none else "-"))
        mx, my = (xs[src] + xs[node]) / 2, -0.5 * rad * span
        ax.text(mx, my, OP_LABELS[op], ha="center", va="center", fontsize=6.5, zorder=4,
                bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none"})
    for node in range(darts.NUM_INPUTS, len(NODE_NAMES)):  # the output concatenates nodes 0..3
        ax.plot([xs[node] + 0.32, out - 0.32], [0.0, 0.0] if node == len(NODE_NAMES) - 1 else [-0.12, -0.05],
                color="lightgrey", lw=0.6, zorder=1)
    ax.set_xlim(-0.5, out + 0.5)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(label, fontsize=8, loc="left")


def draw_genotype(arch, ax: Axes | None = None, title: str | None = None) -> Figure:
    """A genotype (text or 32-choice encoding) as two small DAGs side by side, normal then reduction cell.

    Given an Axes, the two cells are drawn in two insets of it (so a grid of found cells works).
    """
    cell = darts.parse_arch(arch) if isinstance(arch, str) else tuple(int(a) for a in arch)
    genotype = darts.to_genotype(cell)
    if ax is None:
        ax = Figure(figsize=(7.0, 1.9), layout="constrained").add_subplot()
    ax.axis("off")
    for i, (kind, pairs) in enumerate((("normal cell", genotype.normal), ("reduction cell", genotype.reduce))):
        _cell(ax.inset_axes((0.5 * i, 0.0, 0.5, 0.9)), pairs, kind)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure

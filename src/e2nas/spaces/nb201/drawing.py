"""An NB201 cell drawn as its DAG (matplotlib, no pyplot)."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch

from e2nas.spaces.nb201.cells import EDGES, NUM_NODES, OPS, format_arch, parse_arch

# Short op names for cell drawings.
OP_LABELS = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3",
             "avg_pool_3x3": "pool3x3"}


# Arc bends of the edges that skip a node: 0→2 and 0→3 above (0→3 higher), 1→3 below.
_ARC_RAD = {(2, 0): -0.4, (3, 0): -0.45, (3, 1): 0.4}


def draw_cell(arch, ax: Axes | None = None, title: str | None = None) -> Figure:
    """An NB201 cell as its DAG: nodes 0..3 in a row, each of the 6 edges labelled with its op.

    `none` edges are drawn dashed and grey (they cut the connection).
    """
    ops = parse_arch(arch) if isinstance(arch, str) else tuple(int(a) for a in arch)
    format_arch(ops)  # validates the op indices
    ax = ax if ax is not None else Figure(figsize=(6.0, 2.2), layout="constrained").add_subplot()
    pos = {n: (float(n), 0.0) for n in range(NUM_NODES)}
    for n, (x, y) in pos.items():
        ax.add_patch(Circle((x, y), 0.15, facecolor="white", edgecolor="black", zorder=3))
        ax.text(x, y, str(n), ha="center", va="center", zorder=4)
    for e, (to, frm) in enumerate(EDGES):
        rad = _ARC_RAD.get((to, frm), 0.0)
        name = OPS[ops[e]]
        none = name == "none"
        ax.add_patch(FancyArrowPatch(pos[frm], pos[to], connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                     mutation_scale=12, shrinkA=11, shrinkB=11, zorder=2,
                                     color="grey" if none else "black", linestyle="--" if none else "-"))
        # The arc's midpoint: a quadratic Bézier through matplotlib's arc3 control point.
        dx = pos[to][0] - pos[frm][0]
        mx, my = (pos[frm][0] + pos[to][0]) / 2, -0.5 * rad * dx
        ax.text(mx, my, OP_LABELS[name], ha="center", va="center", fontsize=8, zorder=4,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"})
    ax.set_xlim(-0.4, 3.4)
    ax.set_ylim(-0.65, 0.85)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure

"""NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops per edge.

A cell is a tuple of 6 op indices, one per edge, in the order of `EDGES`. The text form is
the benchmark's own: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import itertools
import re

import torch

NAME = "nb201"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_NODES = 4
# (to, from), in the order the text form lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
NUM_ARCHS = len(OPS) ** NUM_EDGES
# The decoder's view of the space: one categorical choice per edge.
CHOICE_SIZES = (len(OPS),) * NUM_EDGES

Arch = tuple[int, ...]

_NODE_RE = re.compile(r"^\|(?:[a-z0-9_]+~\d+\|)+$")


def format_arch(arch: Arch) -> str:
    """The canonical NB201 string of a cell."""
    arch = tuple(int(a) for a in arch)
    if len(arch) != NUM_EDGES or not all(0 <= a < len(OPS) for a in arch):
        raise ValueError(f"an NB201 cell is {NUM_EDGES} op indices in [0, {len(OPS)}), got {arch}")
    nodes = []
    for to in range(1, NUM_NODES):
        parts = [f"{OPS[arch[e]]}~{frm}" for e, (t, frm) in enumerate(EDGES) if t == to]
        nodes.append("|" + "|".join(parts) + "|")
    return "+".join(nodes)


def parse_arch(text: str) -> Arch:
    """Parse the canonical NB201 string; a malformed one raises ValueError naming the problem."""
    if not isinstance(text, str):
        raise ValueError(f"an NB201 cell string must be a str, got {type(text).__name__}")
    nodes = text.strip().split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"malformed NB201 cell {text!r}: expected {NUM_NODES - 1} nodes joined by '+', got {len(nodes)}; "
            f"example: {format_arch((3,) * NUM_EDGES)!r}"
        )
    arch = []
    for to, node in enumerate(nodes, start=1):
        if not _NODE_RE.match(node):
            raise ValueError(f"malformed NB201 cell {text!r}: node {to} part {node!r} is not of the form |op~j|...|")
        parts = node.strip("|").split("|")
        if len(parts) != to:
            raise ValueError(f"malformed NB201 cell {text!r}: node {to} must have {to} inputs, got {len(parts)}")
        for frm, part in enumerate(parts):
            op, _, src = part.partition("~")
            if op not in OPS:
                raise ValueError(f"malformed NB201 cell {text!r}: unknown op {op!r} (ops: {', '.join(OPS)})")
            if int(src) != frm:
                raise ValueError(f"malformed NB201 cell {text!r}: node {to} input {frm} names node {src}")
            arch.append(OPS.index(op))
    return tuple(arch)


def all_archs() -> torch.Tensor:
    """All 15,625 cells as a (15625, 6) long tensor, in lexicographic op-index order."""
    return torch.tensor(list(itertools.product(range(len(OPS)), repeat=NUM_EDGES)), dtype=torch.long)


def arch_index(arch: Arch) -> int:
    """Position of a cell in `all_archs()`."""
    idx = 0
    for a in arch:
        idx = idx * len(OPS) + int(a)
    return idx


def is_valid(arch: Arch) -> bool:
    """True if some input→output path uses no `none` edge (the cell is not degenerate)."""
    reach = {0}
    for e, (to, frm) in enumerate(EDGES):  # EDGES is topologically ordered by `to`
        if frm in reach and OPS[arch[e]] != "none":
            reach.add(to)
    return NUM_NODES - 1 in reach


def valid_mask(archs: torch.Tensor) -> torch.Tensor:
    """Vectorised `is_valid` over a (B, 6) tensor of op indices."""
    live = archs != OPS.index("none")
    reach = [torch.ones(archs.shape[0], dtype=torch.bool, device=archs.device)]
    reach += [torch.zeros_like(reach[0]) for _ in range(NUM_NODES - 1)]
    for e, (to, frm) in enumerate(EDGES):
        reach[to] = reach[to] | (reach[frm] & live[:, e])
    return reach[-1]


def sample_archs(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n cells drawn uniformly from the space, as an (n, 6) long tensor."""
    return torch.randint(len(OPS), (n, NUM_EDGES), generator=generator)

"""The NAS-Bench-201 cell space (4 nodes, 6 edges, 5 ops per edge): its cells, graphs, networks, drawing.

`SPACE` is the `Space` object the stages ask; the cell functions (`format_arch`, `parse_arch`,
`sample_archs`, ...) and constants (`OPS`, `EDGES`, ...) are re-exported from `cells`.
"""

from e2nas.spaces.nb201.cells import (
    CHOICE_SIZES,
    EDGES,
    NAME,
    NUM_ARCHS,
    NUM_EDGES,
    NUM_NODES,
    OPS,
    all_archs,
    arch_index,
    format_arch,
    is_valid,
    parse_arch,
    sample_archs,
    valid_mask,
)
from e2nas.spaces.nb201.space import Nb201Space, complement_cell

SPACE = Nb201Space()
# The networks are parts of the package, imported when first asked for (a stage's code holds
# only the parts it runs): e2nas.spaces.nb201.SuperNet still works.
_PARTS = {"SuperNet": "supernet", "FixedNet": "network"}


def __getattr__(name: str):
    if name in _PARTS:
        return getattr(SPACE.part(_PARTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CHOICE_SIZES", "EDGES", "NAME", "NUM_ARCHS", "NUM_EDGES", "NUM_NODES", "OPS", "SPACE", "FixedNet", "Nb201Space",
    "SuperNet", "all_archs", "arch_index", "complement_cell", "format_arch", "is_valid", "parse_arch", "sample_archs",
    "valid_mask",
]

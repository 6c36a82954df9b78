"""The DARTS cell space (a normal and a reduction cell, 4 nodes of 2 inputs, 8 ops): cells, graphs,
the search supernet, the evaluation network (DARTS's NetworkCIFAR), drawing, published cells.

`SPACE` is the `Space` object the stages ask (distinct inputs per node sampled and decoded, as
DARTS; `SPACE.configured(distinct_inputs=False)` the space whose nodes may repeat an input);
the cell functions and constants are re-exported from `cells`, the evaluation network and
DARTS's parameter count from `network`, the published cells (`REFERENCES`, also
`SPACE.reference_cells()`) from `references`.
"""

from e2nas.spaces.darts.cells import (
    CELL_TYPES,
    CHOICE_SIZES,
    CONCAT,
    DARTS_V2,
    FIELDS,
    INPUT_POSITIONS,
    NAME,
    NONE,
    NUM_ARCHS,
    NUM_INPUTS,
    NUM_NODES,
    NUM_POSITIONS,
    OP_POSITIONS,
    OPS,
    POSITIONS_PER_CELL,
    SLOTS,
    Genotype,
    canonicalize,
    cell_pairs,
    format_arch,
    from_genotype,
    is_valid,
    num_archs,
    op_choices,
    parse_arch,
    position,
    sample_archs,
    to_genotype,
    valid_mask,
)
from e2nas.spaces.darts.space import DartsSpace

SPACE = DartsSpace()
# The networks are parts of the package, imported when first asked for (a stage's code holds
# only the parts it runs): e2nas.spaces.darts.NetworkCIFAR still works.
_PARTS = {
    "NetworkCIFAR": "network",
    "count_params_darts": "network",
    "DartsSuperNet": "supernet",
    "REFERENCES": "references",
    "ReferenceCell": "references",
}


def __getattr__(name: str):
    if name in _PARTS:
        return getattr(SPACE.part(_PARTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CELL_TYPES", "CHOICE_SIZES", "CONCAT", "DARTS_V2", "FIELDS", "INPUT_POSITIONS", "NAME", "NONE", "NUM_ARCHS",
    "NUM_INPUTS", "NUM_NODES", "NUM_POSITIONS", "OPS", "OP_POSITIONS", "POSITIONS_PER_CELL", "SLOTS", "SPACE",
    "DartsSpace", "DartsSuperNet", "Genotype", "NetworkCIFAR", "REFERENCES", "ReferenceCell", "canonicalize", "cell_pairs", "count_params_darts",
    "format_arch", "from_genotype", "is_valid", "num_archs", "op_choices", "parse_arch", "position", "sample_archs", "to_genotype",
    "valid_mask",
]

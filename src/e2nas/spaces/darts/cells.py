"""The DARTS cell space (Liu et al., ICLR 2019): a normal and a reduction cell, 8 ops.

A cell has two inputs (the outputs of the two previous cells, c_{k-2} and c_{k-1}, numbered 0
and 1) and 4 intermediate nodes numbered 2..5; node i (i = 0..3, numbered i+2) sums two ops,
each applied to an earlier node chosen among the i+2 before it; the cell's output is the
concatenation of nodes 2..5. The text form is the `Genotype(...)` that DARTS papers print.

Repeated inputs: DARTS's search derives two *distinct* inputs per node, but its evaluation
network builds any genotype, and published cells use that: a node may read the same input
twice, with two ops or even the same op twice (the E2NAS authors' CIFAR-10 cell's normal
node 2 is ('sep_conv_5x5', 1), ('dil_conv_3x3', 1)). The encoding, the text form, validity,
the graphs and the evaluation network all take such cells. Whether a space *samples* and
*decodes* them is its `distinct_inputs` option (`sample_archs`, `DartsSpace`): True by
default, as DARTS (sampling and decoding give distinct inputs).

Encoding (what the VGAE decoder emits): an arch is a flat tuple of 32 choices, per cell
(normal, then reduce), per node i, per input slot j ∈ {0, 1}: (input index among i+2, op index
among 8), so `CHOICE_SIZES` is (2,8,2,8, 3,8,3,8, 4,8,4,8, 5,8,5,8) twice.

Canonical form: the two (input, op) pairs of a node are unordered (the node sums them), so the
canonical encoding lists them by ascending (input, op) — by input, and by op index where the
inputs are equal; a total order, so every cell has exactly one canonical encoding (two equal
pairs are simply listed twice). With distinct inputs this is the order by input alone, so
canonical encodings and texts of distinct-input cells are unchanged by allowing repeats.
`parse_arch` and `from_genotype` return it, `format_arch` prints it; so parse(format(a)) == a
for every canonical a and format(parse(t)) == t for every text `format_arch` produced. A DARTS
search lists a node's pairs in derivation order (strongest edge first), so a published
genotype can print with a node's two pairs swapped: it is the same cell (DARTS-V2's normal
node 4 is one). `canonicalize` maps any encoding to the canonical one (for decoded cells).

Validity (`is_valid`, `valid_mask`): the encoding is canonical (in range, a node's two pairs
in ascending (input, op) order; with distinct_inputs=True also two distinct inputs), and in
both cells some path of non-`none` ops links a cell input to the output; otherwise the cell's
output does not depend on its inputs (its every feed is `none`, directly or through nodes that
are themselves fed only by `none`).

`none`: a DARTS search never derives it (its argmax excludes `none`), but the space samples it
and the parser accepts it, as the VGAE must see (and may decode) it.
"""

from __future__ import annotations

import ast
import math
from collections import namedtuple
from collections.abc import Sequence

import torch

NAME = "darts"
OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE = OPS.index("none")
CELL_TYPES = ("normal", "reduce")
NUM_INPUTS = 2  # cell inputs c_{k-2}, c_{k-1}
NUM_NODES = 4  # intermediate nodes per cell
CONCAT = tuple(range(NUM_INPUTS, NUM_INPUTS + NUM_NODES))  # the cell output concatenates nodes 2..5
SLOTS = 2  # inputs per intermediate node
POSITIONS_PER_CELL = NUM_NODES * SLOTS * 2
# Per cell, per node i, per slot: (input among i+2, op among 8).
CHOICE_SIZES = tuple(
    size for _ in CELL_TYPES for i in range(NUM_NODES) for _ in range(SLOTS) for size in (NUM_INPUTS + i, len(OPS))
)
NUM_POSITIONS = len(CHOICE_SIZES)
INPUT_POSITIONS = tuple(range(0, NUM_POSITIONS, 2))
OP_POSITIONS = tuple(range(1, NUM_POSITIONS, 2))


def num_archs(distinct_inputs: bool = True, with_none: bool = True) -> int:
    """How many canonical cell pairs the space holds; both cells independent.

    distinct_inputs: per node C(i+2, 2) input pairs times k² op pairs (k ops); otherwise a node
    is any unordered pair (a multiset of 2) of its (i+2)·k (input, op) choices, C((i+2)k + 1, 2).
    with_none=False counts the k = 7 ops a DARTS search derives.
    """
    k = len(OPS) - (not with_none)
    if distinct_inputs:
        per_cell = math.prod(math.comb(NUM_INPUTS + i, 2) * k**SLOTS for i in range(NUM_NODES))
    else:
        per_cell = math.prod(math.comb((NUM_INPUTS + i) * k + 1, 2) for i in range(NUM_NODES))
    return per_cell ** len(CELL_TYPES)


NUM_ARCHS = num_archs()  # the DARTS space as DARTS defines it: two distinct inputs per node

# DARTS's own record type (genotypes.py), so DARTS code and ours read each other's genotypes.
Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
FIELDS = Genotype._fields

Arch = tuple[int, ...]

# DARTS-V2 (second-order DARTS, CIFAR-10), as the paper's code prints it.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def position(cell: int, node: int, slot: int) -> int:
    """Index of the input choice of (cell, node, slot) in the flat encoding; its op follows at +1."""
    return cell * POSITIONS_PER_CELL + node * SLOTS * 2 + slot * 2


def _check_encoding(arch: Sequence[int]) -> Arch:
    """The arch as a tuple of ints; ValueError unless 32 choices in range (a node may repeat an input)."""
    arch = tuple(int(a) for a in arch)
    if len(arch) != NUM_POSITIONS:
        raise ValueError(f"a DARTS arch is {NUM_POSITIONS} choices (input, op per node slot, 2 cells), got {len(arch)}")
    for p, (a, size) in enumerate(zip(arch, CHOICE_SIZES)):
        if not 0 <= a < size:
            raise ValueError(f"DARTS arch choice {p} is {a}, outside [0, {size}): {arch}")
    return arch


def canonicalize(archs: torch.Tensor) -> torch.Tensor:
    """Encodings (..., 32) with each node's two (input, op) pairs in ascending (input, op) order."""
    pairs = archs.reshape(*archs.shape[:-1], len(CELL_TYPES) * NUM_NODES, SLOTS, 2)
    first_in, second_in = pairs[..., 0, 0], pairs[..., 1, 0]
    swap = ((first_in > second_in) | ((first_in == second_in) & (pairs[..., 0, 1] > pairs[..., 1, 1]))).unsqueeze(-1)
    first = torch.where(swap, pairs[..., 1, :], pairs[..., 0, :])
    second = torch.where(swap, pairs[..., 0, :], pairs[..., 1, :])
    return torch.stack([first, second], dim=-2).reshape(archs.shape)


def _canonical_tuple(arch: Sequence[int]) -> Arch:
    """`canonicalize` for one encoding, in plain Python (the text round trip calls it per cell)."""
    out = []
    for k in range(0, len(arch), SLOTS * 2):
        first, second = tuple(arch[k : k + 2]), tuple(arch[k + 2 : k + 4])
        out += [*first, *second] if first <= second else [*second, *first]
    return tuple(out)


def cell_pairs(arch: Sequence[int], cell: int) -> list[tuple[str, int]]:
    """The (op name, input node) pairs of one cell (0 normal, 1 reduce), node by node, as a Genotype lists them."""
    return [
        (OPS[arch[position(cell, node, slot) + 1]], arch[position(cell, node, slot)])
        for node in range(NUM_NODES)
        for slot in range(SLOTS)
    ]


def to_genotype(arch: Sequence[int]) -> Genotype:
    """The canonical Genotype of an encoding (any order of a node's two pairs)."""
    arch = _check_encoding(arch)
    arch = _canonical_tuple(arch)
    normal, reduce = (cell_pairs(arch, cell) for cell in range(len(CELL_TYPES)))
    return Genotype(normal=normal, normal_concat=list(CONCAT), reduce=reduce, reduce_concat=list(CONCAT))


def _cell_choices(pairs, concat, cell_name: str) -> list[int]:
    """Check one cell's (op, input) list and concat; the choices in genotype order."""
    if not isinstance(pairs, (list, tuple)) or len(pairs) != NUM_NODES * SLOTS:
        raise ValueError(
            f"DARTS genotype: `{cell_name}` must list {NUM_NODES * SLOTS} (op, input) pairs "
            f"({SLOTS} per node, {NUM_NODES} nodes), got {pairs!r}"
        )
    choices = []
    for k, pair in enumerate(pairs):
        node = k // SLOTS
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"DARTS genotype: `{cell_name}` item {k} must be an (op name, input index) pair, got {pair!r}")
        op, src = pair
        if op not in OPS:
            raise ValueError(f"DARTS genotype: `{cell_name}` item {k}: unknown op {op!r} (ops: {', '.join(OPS)})")
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < NUM_INPUTS + node:
            raise ValueError(
                f"DARTS genotype: `{cell_name}` item {k}: node {node + NUM_INPUTS} takes input {src!r}, "
                f"but only nodes 0..{NUM_INPUTS + node - 1} come before it"
            )
        choices += [src, OPS.index(op)]
    try:
        concat_ok = [int(c) for c in concat] == list(CONCAT)
    except (TypeError, ValueError):
        concat_ok = False
    if not concat_ok:
        raise ValueError(f"DARTS genotype: `{cell_name}_concat` must be {list(CONCAT)} (this space concatenates all nodes), got {concat!r}")
    return choices


def from_genotype(genotype) -> Arch:
    """The canonical encoding of a Genotype (ours, DARTS's, or anything with its four fields)."""
    missing = [f for f in FIELDS if not hasattr(genotype, f)]
    if missing:
        raise ValueError(f"DARTS genotype lacks {missing}; expected fields {', '.join(FIELDS)}")
    choices = []
    for cell_name in CELL_TYPES:
        choices += _cell_choices(getattr(genotype, cell_name), getattr(genotype, f"{cell_name}_concat"), cell_name)
    return _canonical_tuple(choices)


def format_arch(arch: Sequence[int]) -> str:
    """The canonical Genotype(...) text of a cell pair, in the form DARTS papers print."""
    return repr(to_genotype(arch))


# Bounds of a genotype's text, checked before it is parsed: a published genotype is about 500 characters,
# a concat lists 4 nodes; `range(0, 200000000)` or a megabyte of text must fail here, not exhaust memory.
MAX_TEXT = 4096
MAX_CONCAT = 16
MAX_RANGE_ARG = 1000


def _literal(node: ast.expr, field: str):
    """A field's value: a Python literal, or range(a, b) (how a DARTS search log prints concat), read from the
    syntax tree (never evaluated); a range is expanded only when it is at most MAX_CONCAT long."""
    if (
        field.endswith("_concat")
        and isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
    ):
        args = [_literal(arg, "range argument") for arg in node.args]
        if not 1 <= len(args) <= 3 or any(isinstance(a, bool) or not isinstance(a, int) or abs(a) > MAX_RANGE_ARG for a in args):
            raise ValueError(f"DARTS genotype: `{field}` = {ast.unparse(node)[:80]!r} is not range(a, b) of small "
                             f"integers (|a|, |b| <= {MAX_RANGE_ARG})")
        if len(args) == 3 and args[2] == 0:
            raise ValueError(f"DARTS genotype: `{field}` = {ast.unparse(node)[:80]!r} has step 0")
        if len(range(*args)) > MAX_CONCAT:  # the length of a range is known without building it
            raise ValueError(f"DARTS genotype: `{field}` = {ast.unparse(node)[:80]!r} lists more than {MAX_CONCAT} nodes")
        return list(range(*args))
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"DARTS genotype: `{field}` is not a literal ({ast.unparse(node)[:80]!r})") from None
    if field.endswith("_concat") and isinstance(value, (list, tuple, set, dict)) and len(value) > MAX_CONCAT:
        raise ValueError(f"DARTS genotype: `{field}` lists {len(value)} nodes, more than {MAX_CONCAT}")
    return value


def _genotype_fields(call: ast.Call) -> dict[str, ast.expr]:
    """Map each Genotype field to its argument node (positional in field order, or by keyword)."""
    if len(call.args) > len(FIELDS):
        raise ValueError(f"DARTS genotype: Genotype takes {len(FIELDS)} fields, got {len(call.args)} positional arguments")
    fields = dict(zip(FIELDS, call.args))
    for kw in call.keywords:
        if kw.arg not in FIELDS:
            raise ValueError(f"DARTS genotype: unknown field {kw.arg!r} (fields: {', '.join(FIELDS)})")
        if kw.arg in fields:
            raise ValueError(f"DARTS genotype: field {kw.arg!r} given twice")
        fields[kw.arg] = kw.value
    missing = [f for f in FIELDS if f not in fields]
    if missing:
        raise ValueError(f"DARTS genotype: missing field(s) {', '.join(missing)}")
    return fields


def parse_arch(text: str) -> Arch:
    """Parse `Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])` text.

    Only literals are read (`ast.literal_eval` on each argument, never `eval`); concat may also
    be `range(2, 6)`. Sizes are bounded before anything is built (MAX_TEXT characters, a concat of
    at most MAX_CONCAT nodes). Returns the canonical encoding; malformed text raises ValueError
    naming the problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"a DARTS genotype must be a str, got {type(text).__name__}")  # noqa: TRY004 (callers catch ValueError)
    if len(text) > MAX_TEXT:
        raise ValueError(f"malformed DARTS genotype {text[:80]!r}...: {len(text):,} characters, more than a genotype's "
                         f"{MAX_TEXT:,}")
    form = "Genotype(normal=[(op, input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])"
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except (MemoryError, RecursionError):
        raise ValueError(f"malformed DARTS genotype {text[:80]!r}: nested too deeply") from None
    except SyntaxError as exc:
        raise ValueError(f"malformed DARTS genotype {text[:80]!r}: not of the form {form} ({exc.msg})") from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise ValueError(f"malformed DARTS genotype {text[:80]!r}: not of the form {form}")
    values = {field: _literal(node, field) for field, node in _genotype_fields(call).items()}
    return from_genotype(Genotype(**values))


def _node_pairs(archs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and ops as (B, cells, nodes, slots) tensors."""
    view = archs.reshape(archs.shape[0], len(CELL_TYPES), NUM_NODES, SLOTS, 2)
    return view[..., 0], view[..., 1]


def valid_mask(archs: torch.Tensor, distinct_inputs: bool = False) -> torch.Tensor:
    """(B,) bool over (B, 32) encodings: canonical, and each cell's output depends on its inputs.

    A node may read one input twice (DARTS's network builds it); distinct_inputs=True also
    requires two distinct inputs per node (the cells DARTS's search can derive).
    """
    archs = archs.long()
    sizes = torch.tensor(CHOICE_SIZES, device=archs.device)
    ok = ((archs >= 0) & (archs < sizes)).all(dim=1)
    safe = torch.where(archs >= 0, torch.minimum(archs, sizes - 1), torch.zeros_like(archs))
    inputs, ops = _node_pairs(safe)
    ascending = inputs[..., 0] < inputs[..., 1]
    if not distinct_inputs:  # equal inputs: the pairs by op
        ascending |= (inputs[..., 0] == inputs[..., 1]) & (ops[..., 0] <= ops[..., 1])
    ok &= ascending.all(dim=(1, 2))
    # live[:, c, k]: node k of cell c depends on the cell inputs through non-`none` ops.
    b = archs.shape[0]
    live = torch.zeros(b, len(CELL_TYPES), NUM_INPUTS + NUM_NODES, dtype=torch.bool, device=archs.device)
    live[..., :NUM_INPUTS] = True
    for node in range(NUM_NODES):
        fed = live.gather(2, inputs[:, :, node, :]) & (ops[:, :, node, :] != NONE)
        live[..., NUM_INPUTS + node] = fed.any(dim=-1)
    return ok & live[..., NUM_INPUTS:].any(dim=-1).all(dim=1)


def is_valid(arch: Sequence[int], distinct_inputs: bool = False) -> bool:
    """`valid_mask` for one encoding."""
    return bool(valid_mask(torch.tensor([list(arch)], dtype=torch.long), distinct_inputs)[0])


def sample_archs(
    n: int, generator: torch.Generator | None = None, with_none: bool = True, distinct_inputs: bool = True
) -> torch.Tensor:
    """n canonical encodings drawn uniformly (every cell pair equally likely), as an (n, 32) long tensor.

    Per node: an input pair uniform among the C(i+2, 2) pairs, each op uniform among all 8
    (`none` included, so a draw can be degenerate: see `valid_mask`). with_none=False draws
    the ops among the 7 others: the genotypes a DARTS search returns (its derivation never
    picks `none`), all valid — the random references and RSPS's candidates.

    distinct_inputs=False draws among the cells whose nodes may repeat an input: per node a
    pair uniform among the C(k(i+2) + 1, 2) unordered pairs of (input, op) choices (k ops),
    so each such cell pair is again equally likely (`num_archs(False, with_none)` of them).
    The default (True) draw is the one this function always made: a seed gives the same cells.
    """
    cells = len(CELL_TYPES)
    real = torch.tensor([o for o in range(len(OPS)) if o != NONE or with_none])
    choices = torch.empty(n, cells, NUM_NODES, SLOTS, 2, dtype=torch.long)
    if not distinct_inputs:
        k = len(real)
        for node in range(NUM_NODES):
            # Every unordered pair of the node's (input, op) items, item = input·k + op rank: the rows
            # (a, b) with a <= b, so each pair is listed in canonical (input, op) order.
            pairs = torch.triu_indices((NUM_INPUTS + node) * k, (NUM_INPUTS + node) * k).T
            drawn = pairs[torch.randint(len(pairs), (n, cells), generator=generator)]  # (n, cells, 2)
            choices[:, :, node, :, 0] = drawn // k
            choices[:, :, node, :, 1] = real[drawn % k]
        return choices.reshape(n, NUM_POSITIONS)
    for node in range(NUM_NODES):
        m = NUM_INPUTS + node
        first = torch.randint(m, (n, cells), generator=generator)
        # Uniform over the m-1 others: draw from [0, m-1) and skip `first`.
        second = torch.randint(m - 1, (n, cells), generator=generator)
        second = second + (second >= first).long()
        choices[:, :, node, 0, 0] = torch.minimum(first, second)
        choices[:, :, node, 1, 0] = torch.maximum(first, second)
    if with_none:
        choices[..., 1] = torch.randint(len(OPS), (n, cells, NUM_NODES, SLOTS), generator=generator)
    else:
        choices[..., 1] = real[torch.randint(len(real), (n, cells, NUM_NODES, SLOTS), generator=generator)]
    return choices.reshape(n, NUM_POSITIONS)


def op_choices(archs: torch.Tensor) -> torch.Tensor:
    """The op indices of (B, 32) encodings, (B, 16) (the input choices dropped)."""
    return archs[..., 1::2]

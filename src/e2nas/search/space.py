"""What a search needs to know about its space: sampling, decoding, complementation, derivation.

The harness, E2NAS and the baselines are written once; a `SearchSpace` supplies the parts that
depend on how a cell is encoded:

* NB201 (`Nb201Search`): a cell is 6 op indices, one per edge; the decoder's logits are (6, 5);
  GDAS and DARTS keep α (6, 5) and return argmax α per edge.
* DARTS (`DartsSearch`): a path is the 32-choice encoding of `e2nas.spaces.darts` (per cell type,
  node, slot: input, op). The decoder's logits are (32, 8), invalid options masked. E2NAS decodes
  a path per node as the pair of distinct inputs of highest joint probability and on each the
  most probable op, `none` excluded (as DARTS's derivation excludes it, so every decoded cell is
  valid), in canonical order (a node's pairs by ascending input; the probability rows move with
  them, so the straight-through weights stay those of the slot that chose). GDAS and DARTS keep
  α (2, 14, 8) over both cell types' edges: GDAS's sample is an op on every edge (28 indices,
  `DartsSuperNet.forward_edges`), and both return the genotype DARTS derives from softmax α.
"""

from __future__ import annotations

import torch
from torch import Tensor

from e2nas.spaces import darts, nb201

Cell = tuple[int, ...]


def complement_cell(prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
    """NB201's a_c: on edges where a_{t−1} and a_t agree a uniformly random other op, a_t's op elsewhere.

    A shift in [1, 5) per edge is drawn for every edge (a CPU generator, so no device sync and
    a fixed number of draws per step).
    """
    shifts = torch.randint(1, len(nb201.OPS), (len(cur),), generator=generator).tolist()
    return tuple((c + s) % len(nb201.OPS) if p == c else c for p, c, s in zip(prev, cur, shifts))


class SearchSpace:
    name = ""
    decoder_shape: tuple[int, int] = (0, 0)  # the decoder's logits for one latent
    alpha_shape: tuple[int, ...] = ()  # GDAS's and DARTS's edge logits

    def format(self, cell: Cell) -> str:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator, valid: bool = False) -> list[Cell]:
        """n cells drawn uniformly; valid=True: among the cells a search may return (its result space)."""
        raise NotImplementedError

    def path_probs(self, logits: Tensor, tau: float) -> Tensor:
        """P = softmax(logits / τ) per position, over the options a decoded path may take."""
        return torch.softmax(logits / tau, dim=-1)

    def decode(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """(index, probs) of the most probable path on the device: index (P,) and the rows of
        P aligned with it (the straight-through weights use these)."""
        return probs.argmax(dim=-1), probs

    def decode_cell(self, logits: Tensor) -> Cell:
        """The cell a latent's logits decode to (host ints; τ does not change it)."""
        index, _ = self.decode(self.path_probs(logits, 1.0))
        return tuple(index.tolist())

    def complement(self, prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
        """a_c: where a_{t−1} has a_t's op on the same edge, a uniformly random other op; a_t's elsewhere."""
        raise NotImplementedError

    def derive(self, alpha: Tensor) -> Cell:
        """The cell GDAS and DARTS return from their edge logits α."""
        raise NotImplementedError


class Nb201Search(SearchSpace):
    name = "nb201"
    decoder_shape = (nb201.NUM_EDGES, len(nb201.OPS))
    alpha_shape = (nb201.NUM_EDGES, len(nb201.OPS))

    def format(self, cell: Cell) -> str:
        return nb201.format_arch(cell)

    def sample(self, n: int, generator: torch.Generator, valid: bool = False) -> list[Cell]:
        # Every NB201 cell is a result NAS-Bench-201 lists (an all-`none` cell included).
        return [tuple(c) for c in nb201.sample_archs(n, generator).tolist()]

    def complement(self, prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
        return complement_cell(prev, cur, generator)

    def derive(self, alpha: Tensor) -> Cell:
        return tuple(alpha.detach().argmax(dim=-1).tolist())


def _darts_node_layout() -> tuple[Tensor, Tensor, Tensor]:
    """Per (cell type, node): positions of slot 0's input and op, slot 1's input and op; and the
    node's number of input options. Shapes (8, 4) and (8,)."""
    rows, sizes = [], []
    for cell in range(len(darts.CELL_TYPES)):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            rows.append([p0, p0 + 1, p1, p1 + 1])
            sizes.append(darts.NUM_INPUTS + node)
    return torch.tensor(rows), torch.tensor(sizes), torch.tensor(darts.OP_POSITIONS)


class DartsSearch(SearchSpace):
    name = "darts"
    decoder_shape = (darts.NUM_POSITIONS, max(darts.CHOICE_SIZES))
    alpha_shape = (len(darts.CELL_TYPES), 14, len(darts.OPS))

    def __init__(self):
        self.layout, self.num_inputs, self.op_positions = _darts_node_layout()
        width = max(darts.CHOICE_SIZES)
        # Options a decoded path may take: in range, and `none` never on an op position.
        allowed = torch.arange(width).unsqueeze(0) < torch.tensor(darts.CHOICE_SIZES).unsqueeze(1)
        allowed[self.op_positions, darts.NONE] = False
        self.allowed = allowed
        m = int(self.num_inputs.max())
        pair = torch.ones(m, m, dtype=torch.bool).triu(1) | torch.ones(m, m, dtype=torch.bool).tril(-1)
        # pair_ok[n, i, j]: inputs i ≠ j, both among node n's options.
        in_range = torch.arange(m).unsqueeze(0) < self.num_inputs.unsqueeze(1)
        self.pair_ok = pair & in_range.unsqueeze(2) & in_range.unsqueeze(1)
        self._on_device: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    def _constants(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(allowed, layout, pair_ok) on `device`, copied once: a copy per step would wait on the queue."""
        if device not in self._on_device:
            self._on_device[device] = tuple(t.to(device) for t in (self.allowed, self.layout, self.pair_ok))
        return self._on_device[device]

    def format(self, cell: Cell) -> str:
        return darts.format_arch(cell)

    def sample(self, n: int, generator: torch.Generator, valid: bool = False) -> list[Cell]:
        # Results (valid=True) are genotypes without `none`, as DARTS derives and E2NAS decodes them.
        return [tuple(c) for c in darts.sample_archs(n, generator, with_none=not valid).tolist()]

    def path_probs(self, logits: Tensor, tau: float) -> Tensor:
        allowed, _, _ = self._constants(logits.device)
        return torch.softmax((logits / tau).masked_fill(~allowed, float("-inf")), dim=-1)

    def decode(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        dev = probs.device
        _, layout, pair_ok = self._constants(dev)
        m = pair_ok.shape[-1]
        p_in0 = probs[layout[:, 0], :m]  # (8, m): slot 0's input probabilities per node
        p_in1 = probs[layout[:, 2], :m]
        joint = (p_in0.unsqueeze(2) * p_in1.unsqueeze(1)).masked_fill(~pair_ok, -1.0)
        best = joint.flatten(1).argmax(dim=1)
        in0, in1 = best // m, best % m
        op0 = probs[layout[:, 1]].argmax(dim=1)
        op1 = probs[layout[:, 3]].argmax(dim=1)
        # Canonical order: swap a node's two (input, op) pairs, and their probability rows, when descending.
        swap = in0 > in1
        index = torch.empty(darts.NUM_POSITIONS, dtype=torch.long, device=dev)
        order = torch.arange(darts.NUM_POSITIONS, device=dev)
        first = torch.where(swap.unsqueeze(1), layout[:, 2:], layout[:, :2])
        second = torch.where(swap.unsqueeze(1), layout[:, :2], layout[:, 2:])
        order[layout[:, :2].flatten()] = first.flatten()
        order[layout[:, 2:].flatten()] = second.flatten()
        choice = torch.stack([in0, op0, in1, op1], dim=1)  # by original slot
        index[layout.flatten()] = choice.flatten()
        return index[order], probs[order]

    def complement(self, prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
        # Per slot of a_t (edge j → node i, op o): if a_{t−1} runs o on the same edge j → i,
        # another non-`none` op drawn uniformly; inputs are kept. A draw per slot, every step.
        draws = torch.rand(len(darts.OP_POSITIONS), generator=generator).tolist()
        prev_edges = {(self._node(p), prev[p - 1], prev[p]) for p in darts.OP_POSITIONS}
        out = list(cur)
        for p, u in zip(darts.OP_POSITIONS, draws):
            if (self._node(p), cur[p - 1], cur[p]) in prev_edges:
                others = [o for o in range(len(darts.OPS)) if o not in (darts.NONE, cur[p])]
                out[p] = others[int(u * len(others))]
        return tuple(out)

    @staticmethod
    def _node(position: int) -> int:
        """(cell type, node) of a position, as one index 0..7."""
        return position // (darts.SLOTS * 2)

    def derive(self, alpha: Tensor) -> Cell:
        from e2nas.supernet.darts_search import derive_genotype

        probs = torch.softmax(alpha.detach(), dim=-1)
        return derive_genotype(probs[0], probs[1])


SEARCH_SPACES = {"nb201": Nb201Search, "darts": DartsSearch}


def search_space(name: str) -> SearchSpace:
    if name not in SEARCH_SPACES:
        raise ValueError(f"unknown search space {name!r} (config key `space`); known: {', '.join(SEARCH_SPACES)}")
    return SEARCH_SPACES[name]()

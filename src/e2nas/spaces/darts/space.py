"""The DARTS space as a `Space`: sampling, decoding for the search, the supernet, the evaluation network.

A path is the 32-choice encoding of `cells` (per cell type, node, slot: input, op). The
decoder's logits are (32, 8), invalid options masked. E2NAS decodes a path per node as the
pair of distinct inputs of highest joint probability (any pair, one input twice included,
when the space's `distinct_inputs` is False) and on each the most probable op, `none`
excluded (as DARTS's derivation excludes it, so every decoded cell is valid), in canonical
order (a node's pairs by ascending (input, op); the probability rows move with them, so the
straight-through weights stay those of the slot that chose).

`distinct_inputs` (default True, as DARTS): whether the space samples (`sample_tensor`, so
stage 1's graph set) and decodes cells whose nodes read two distinct inputs only. It is not
a restriction on what the space accepts: parsing, validity, graphs and the evaluation network
take every genotype DARTS's network builds, repeated inputs included (published cells repeat
one: `references`). `SPACE` is the default space; `configured(distinct_inputs=False)` the
other.

GDAS and DARTS keep α (2, 14, 8) over both cell types' edges: GDAS's sample is an op on every
edge (28 indices, `DartsSuperNet.forward_edges`), and both return the genotype DARTS derives
from softmax α (two distinct inputs per node, whatever `distinct_inputs`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from e2nas.spaces.base import Cell, Space, TrainingHooks
from e2nas.spaces.darts import cells as darts
from e2nas.spaces.darts.config import CONFIG_CLASSES


def _node_layout() -> tuple[Tensor, Tensor, Tensor]:
    """Per (cell type, node): positions of slot 0's input and op, slot 1's input and op; and the
    node's number of input options. Shapes (8, 4) and (8,)."""
    rows, sizes = [], []
    for cell in range(len(darts.CELL_TYPES)):
        for node in range(darts.NUM_NODES):
            p0, p1 = darts.position(cell, node, 0), darts.position(cell, node, 1)
            rows.append([p0, p0 + 1, p1, p1 + 1])
            sizes.append(darts.NUM_INPUTS + node)
    return torch.tensor(rows), torch.tensor(sizes), torch.tensor(darts.OP_POSITIONS)


class DartsSpace(Space):
    name = darts.NAME
    ops = darts.OPS
    choice_sizes = darts.CHOICE_SIZES
    enumerable = False
    has_benchmark_table = False
    alpha_shape = (len(darts.CELL_TYPES), 14, len(darts.OPS))
    retrain_generators = ("init", "data", "drop_path")
    config_classes = CONFIG_CLASSES
    parameter_free_ops = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect")

    def __init__(self, distinct_inputs: bool = True):
        self.distinct_inputs = bool(distinct_inputs)
        self.layout, self.num_inputs, self.op_positions = _node_layout()
        width = max(darts.CHOICE_SIZES)
        # Options a decoded path may take: in range, and `none` never on an op position.
        allowed = torch.arange(width).unsqueeze(0) < torch.tensor(darts.CHOICE_SIZES).unsqueeze(1)
        allowed[self.op_positions, darts.NONE] = False
        self.allowed = allowed
        m = int(self.num_inputs.max())
        pair = torch.ones(m, m, dtype=torch.bool)
        if self.distinct_inputs:
            pair.fill_diagonal_(False)
        # pair_ok[n, i, j]: inputs i, j both among node n's options (and i ≠ j with distinct_inputs).
        in_range = torch.arange(m).unsqueeze(0) < self.num_inputs.unsqueeze(1)
        self.pair_ok = pair & in_range.unsqueeze(2) & in_range.unsqueeze(1)
        self._on_device: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    def configured(self, distinct_inputs: bool | None = None) -> DartsSpace:
        """This space with its option set (None keeps it): the same object when nothing changes."""
        if distinct_inputs is None or bool(distinct_inputs) == self.distinct_inputs:
            return self
        return type(self)(distinct_inputs=distinct_inputs)

    @property
    def options(self) -> dict:
        return {"distinct_inputs": self.distinct_inputs}

    def options_of(self, sections: dict) -> dict:
        """Config key `graphs.distinct_inputs`."""
        return {"distinct_inputs": self.config("graphs", sections.get("graphs")).distinct_inputs}

    def __repr__(self) -> str:
        return f"DartsSpace(distinct_inputs={self.distinct_inputs})"

    def _constants(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """(allowed, layout, pair_ok) on `device`, copied once: a copy per step would wait on the queue."""
        if device not in self._on_device:
            self._on_device[device] = tuple(t.to(device) for t in (self.allowed, self.layout, self.pair_ok))
        return self._on_device[device]

    # -- cells

    def format(self, cell) -> str:
        return darts.format_arch(cell)

    def parse(self, text: str) -> Cell:
        return darts.parse_arch(text)

    def canonical_text(self, cell) -> str:
        """The canonical Genotype text of genotype text, a 32-choice encoding or a Genotype(-like) object."""
        if isinstance(cell, str):
            return darts.format_arch(darts.parse_arch(cell))
        if all(hasattr(cell, f) for f in darts.FIELDS):  # DARTS's own namedtuple, or ours
            return darts.format_arch(darts.from_genotype(cell))
        return darts.format_arch(cell)

    def sample_tensor(self, n: int, generator: torch.Generator | None = None, valid: bool = False) -> Tensor:
        # Results (valid=True) are genotypes without `none`, as DARTS derives and E2NAS decodes them.
        return darts.sample_archs(n, generator, with_none=not valid, distinct_inputs=self.distinct_inputs)

    def valid_mask(self, archs: Tensor) -> Tensor:
        # Every cell DARTS's network builds, repeated inputs included, whatever `distinct_inputs`.
        return darts.valid_mask(archs)

    def op_choices(self, archs: Tensor) -> Tensor:
        return darts.op_choices(archs)

    def num_cells(self) -> int:
        return darts.num_archs(self.distinct_inputs)

    def canonicalize(self, archs: Tensor) -> Tensor:
        return darts.canonicalize(archs)

    def graphs(self, archs: Tensor) -> tuple[Tensor, Tensor]:
        return self.part("graphs").darts_graph(archs)

    # -- decoding and the search

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
        swap = (in0 > in1) | ((in0 == in1) & (op0 > op1))
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
        # another non-`none` op drawn uniformly, none a_{t−1} runs on that edge; inputs are kept.
        # A draw per slot, every step. (With distinct inputs a_{t−1} runs one op per edge, o
        # itself; a node of a_{t−1} that reads j twice may run two.) Canonical order again after:
        # where a node reads one input twice, the new ops may order its pairs the other way.
        draws = torch.rand(len(darts.OP_POSITIONS), generator=generator).tolist()
        prev_edges = {(self._node(p), prev[p - 1], prev[p]) for p in darts.OP_POSITIONS}
        out = list(cur)
        for p, u in zip(darts.OP_POSITIONS, draws):
            edge = (self._node(p), cur[p - 1])
            if (*edge, cur[p]) in prev_edges:
                others = [o for o in range(len(darts.OPS)) if o not in (darts.NONE, cur[p]) and (*edge, o) not in prev_edges]
                out[p] = others[int(u * len(others))]
        return darts._canonical_tuple(out)

    @staticmethod
    def _node(position: int) -> int:
        """(cell type, node) of a position, as one index 0..7."""
        return position // (darts.SLOTS * 2)

    def derive(self, alpha: Tensor) -> Cell:
        probs = torch.softmax(alpha.detach(), dim=-1)
        return self.part("supernet").derive_genotype(probs[0], probs[1])

    # -- networks

    def build_supernet(self, cfg, num_classes: int, in_channels: int) -> nn.Module:
        return self.part("supernet").DartsSuperNet(cfg.channels, cfg.layers, num_classes, in_channels)

    def build_network(self, cell, cfg, num_classes: int, in_channels: int) -> nn.Module:
        return self.part("network").NetworkCIFAR(cell, cfg.channels, cfg.layers, num_classes, in_channels,
                            auxiliary=cfg.auxiliary_weight > 0, drop_path_prob=cfg.drop_path_prob)

    def count_params(self, net: nn.Module) -> int:
        return self.part("network").count_params_darts(net)

    def training_hooks(self, net: nn.Module, cfg, device: torch.device, generators: dict) -> TrainingHooks:
        """DARTS's evaluation regularisers: the auxiliary head's loss and drop-path ramped per epoch."""
        network = self.part("network")

        # Drop-path masks come from a generator on the device (no host transfer per op); it is
        # checkpointed with the others, so a resume replays them.
        generators["drop_path"] = torch.Generator(device).manual_seed(generators["drop_path"].initial_seed())
        net.drop_generator = generators["drop_path"]

        def loss_fn(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
            return network.loss_with_aux(net, x, y, cfg.auxiliary_weight)

        def before_epoch(epoch: int) -> dict:
            net.drop_path_prob = network.drop_path_at(epoch, cfg.epochs, cfg.drop_path_prob)
            return {"drop_path_prob": net.drop_path_prob}

        # The drop-path generator's state loads only on its device type.
        return TrainingHooks(loss_fn, before_epoch, identity={"rng_device": device.type})

    def draw(self, cell, ax=None, title: str | None = None):
        return self.part("drawing").draw_genotype(cell, ax, title)

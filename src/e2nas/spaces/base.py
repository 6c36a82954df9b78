"""The interface of a search space: everything a stage asks of it.

A space is one package under `e2nas.spaces` holding its cells' text form and sampling, its
graphs, how a latent decodes to a cell, its supernet, its evaluation network and its drawing,
behind one `Space` object (`e2nas.spaces.get(name)`). Stages never branch on a space's name:
they call these methods. docs/extending.md shows a third space.

A cell is a tuple of ints, the space's own encoding (`choice_sizes` options per position).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

Cell = tuple[int, ...]


@dataclass
class TrainingHooks:
    """What a space's evaluation network needs from the training loop beyond cross-entropy.

    loss_fn(x, y) -> (loss, logits) replaces the plain loss (DARTS: the auxiliary head);
    before_epoch(epoch) -> dict of extra history columns sets per-epoch state (DARTS: the
    drop-path ramp); identity: extra checkpoint identity (e.g. a device-bound generator).
    """

    loss_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None
    before_epoch: Callable[[int], dict] | None = None
    identity: dict = field(default_factory=dict)


class Space:
    """A search space. Subclasses set the class attributes and implement the methods below.

    The package's core (its `__init__`, `cells`, `space`) holds the text form, sampling and
    decoding; the heavier parts (graphs, supernet, network, drawing, ...) are modules of the
    package that the methods load by name with `part`, so a stage's code inputs hold the parts
    its library modules declare in SPACE_PARTS (e2nas.code_inputs), not the whole package.
    """

    # The space's dataclasses of config sections it adds keys to ({section: subclass of the
    # e2nas.sections class}; its package's config.py and config.schema.yaml).
    config_classes: dict[str, type] = {}

    def config(self, section: str, values: dict | None = None):
        """Config section `section` (graphs, supernet, retrain) as this space's typed object.

        Keys another space adds to the section are left out: a profile merged over config/config.yaml
        may carry them (a DARTS profile inherits NB201's cells_per_stage). A key no space knows raises.
        """
        from e2nas.sections import SECTIONS
        from e2nas.space_schema import space_keys

        cls = self.config_classes.get(section, SECTIONS[section])
        own = {f.name for f in dataclasses.fields(cls)}
        others = space_keys(section) - own
        return cls(**{k: v for k, v in (values or {}).items() if k not in others})

    def part(self, name: str):
        """The module `name` of this space's package, imported on first use."""
        return importlib.import_module(f"{type(self).__module__.rsplit('.', 1)[0]}.{name}")

    name: str = ""
    ops: tuple[str, ...] = ()
    choice_sizes: tuple[int, ...] = ()  # options per position of a cell's encoding (the decoder's output)
    enumerable: bool = False  # all_cells() lists the whole space (stage 1 encodes every cell)
    has_benchmark_table: bool = False  # NAS-Bench-201's accuracy table scores its cells
    alpha_shape: tuple[int, ...] = ()  # GDAS's and DARTS's edge logits
    retrain_generators: tuple[str, ...] = ("init", "data")  # seeded streams of stage 5
    parameter_free_ops: tuple[str, ...] = ()  # ops without weights (a single-path supernet's easy favourites)

    @property
    def options(self) -> dict:
        """The options this space was configured with (`configured`), recorded with stage 1's graphs."""
        return {}

    def configured(self, **options) -> Space:
        """This space with `options` set; a space without such options ignores them (NB201's cells are fixed)."""
        return self

    def options_of(self, sections: dict) -> dict:
        """The options (`configured`) that config `sections` ({section: values}) set for this space; none by default."""
        return {}

    @property
    def decoder_shape(self) -> tuple[int, int]:
        """The decoder's logits for one latent: (positions, max options)."""
        return len(self.choice_sizes), max(self.choice_sizes)

    # -- cells and their text

    def format(self, cell) -> str:
        """The canonical text of a cell (encoding or text)."""
        raise NotImplementedError

    def parse(self, text: str) -> Cell:
        """The encoding of a cell's text; malformed text raises ValueError naming the problem."""
        raise NotImplementedError

    def canonical_text(self, cell) -> str:
        """The canonical text of a cell given as text or as an encoding."""
        return self.format(self.parse(cell) if isinstance(cell, str) else cell)

    def all_cells(self) -> Tensor:
        """Every cell as an (N, positions) long tensor (enumerable spaces only)."""
        raise ValueError(f"the {self.name} space is sampled, not enumerated: sample its cells instead")

    def sample_tensor(self, n: int, generator: torch.Generator | None = None, valid: bool = False) -> Tensor:
        """n cells drawn uniformly as an (n, positions) long tensor; valid=True draws among the cells a search may return."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None, valid: bool = False) -> list[Cell]:
        """n cells drawn uniformly, as tuples (see sample_tensor)."""
        return [tuple(c) for c in self.sample_tensor(n, generator, valid).tolist()]

    def valid_mask(self, archs: Tensor) -> Tensor:
        """(B,) bool over (B, positions) encodings: True for a cell whose output depends on its input."""
        raise NotImplementedError

    def is_valid(self, cell) -> bool:
        return bool(self.valid_mask(torch.tensor([list(cell)], dtype=torch.long))[0])

    def op_choices(self, archs: Tensor) -> Tensor:
        """The positions of (B, positions) encodings that hold ops (the others choose inputs)."""
        return archs

    def parameter_free_share(self, cells) -> float:
        """The share of the op choices of `cells` (encodings or texts) that are parameter-free ops."""
        archs = torch.tensor([list(self.parse(c) if isinstance(c, str) else c) for c in cells], dtype=torch.long)
        ops = self.op_choices(archs).flatten()
        free = torch.tensor([self.ops.index(o) for o in self.parameter_free_ops], dtype=torch.long)
        return float(torch.isin(ops, free).double().mean()) if ops.numel() else float("nan")

    def num_cells(self) -> int:
        """How many cells the space holds."""
        raise NotImplementedError

    # -- graphs (stage 1)

    def canonicalize(self, archs: Tensor) -> Tensor:
        """One encoding per cell (spaces whose encodings can spell a cell in several ways override it)."""
        return archs

    def graphs(self, archs: Tensor) -> tuple[Tensor, Tensor]:
        """Dense graphs of (B, positions) cells: node features (B, nodes, F) and edge_index (2, E) or (B, 2, E)."""
        raise NotImplementedError

    # -- decoding and the search (stage 4)

    def path_probs(self, logits: Tensor, tau: float) -> Tensor:
        """P = softmax(logits / τ) per position, over the options a decoded path may take."""
        return torch.softmax(logits / tau, dim=-1)

    def decode(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """(index, probs) of the most probable path on the device: index (positions,) and the rows
        of P aligned with it (the straight-through weights use these)."""
        return probs.argmax(dim=-1), probs

    def decode_cell(self, logits: Tensor) -> Cell:
        """The cell a latent's logits decode to (host ints; τ does not change it)."""
        index, _ = self.decode(self.path_probs(logits, 1.0))
        return tuple(index.tolist())

    def complement(self, prev: Cell, cur: Cell, generator: torch.Generator) -> Cell:
        """a_c: where a_{t−1} runs a_t's op on the same edge, a uniformly random other op; a_t's elsewhere."""
        raise NotImplementedError

    def derive(self, alpha: Tensor) -> Cell:
        """The cell GDAS and DARTS return from their edge logits α."""
        raise NotImplementedError

    # -- networks (stages 3 and 5)

    def build_supernet(self, cfg, num_classes: int, in_channels: int) -> nn.Module:
        """The weight-sharing supernet of config section `supernet` (a SupernetConfig)."""
        raise NotImplementedError

    def build_network(self, cell, cfg, num_classes: int, in_channels: int) -> nn.Module:
        """The evaluation network of one cell under config section `retrain` (a RetrainConfig)."""
        raise NotImplementedError

    def count_params(self, net: nn.Module) -> int:
        """Parameters of an evaluation network as the space's literature counts them."""
        return sum(p.numel() for p in net.parameters())

    def training_hooks(self, net: nn.Module, cfg, device: torch.device, generators: dict) -> TrainingHooks:
        """Extra training behaviour of the evaluation network. `generators` holds the stage's seeded
        streams (`retrain_generators`), checkpointed with the run; a space may replace one by a
        device generator seeded alike."""
        return TrainingHooks()

    supports_grouped_paths: bool = False  # grouped_losses runs several paths in one pass

    def grouped_losses(self, net: nn.Module, x: Tensor, y: Tensor, paths: list[Cell]) -> Tensor:
        raise NotImplementedError(f"the {self.name} supernet has no grouped pass")

    # -- published cells

    def reference_cells(self) -> dict:
        """Well-known cells of the space by name ({name: ReferenceCell(name, arch, source)})."""
        return self.part("references").REFERENCES

    def resolve_reference(self, entry: str) -> tuple[str, str]:
        """(slug, canonical text) of a config `references` entry: a name of `reference_cells()`, or a
        literal cell in the space's text form (slug `cell-` and a digest of its text, `e2nas.layout.cell_key`)."""
        from e2nas.layout import cell_key

        known = self.reference_cells()
        if entry in known:
            return entry, self.canonical_text(known[entry].arch)
        try:
            text = self.canonical_text(entry)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"references: {entry!r} is neither a known {self.name} cell ({', '.join(known)}) "
                             f"nor a valid {self.name} cell text ({exc})") from None
        return cell_key(text), text

    # -- pictures

    def draw(self, cell, ax, title: str | None = None):
        """Draw one cell on a matplotlib Axes; returns its Figure."""
        raise NotImplementedError

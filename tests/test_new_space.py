"""Adding a third space touches only its own package: a toy space, written against the public `Space`
interface in a copy of src/, runs every stage's library call (graphs, VGAE, warm-up, the searches,
retraining) and is known to the config schema, the code inputs and the space registry, with no
file outside `src/e2nas/spaces/toy/` changed (docs/extending.md, "A third search space")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

from conftest import REPO

TOY = {
    "__init__.py": '''
        """A toy space for the tests: a chain of 3 positions, each one of 3 ops."""
        from e2nas.spaces.toy.space import ToySpace

        SPACE = ToySpace()
    ''',
    "config.py": '''
        from dataclasses import dataclass

        from e2nas.sections import SupernetConfig


        @dataclass
        class ToySupernetConfig(SupernetConfig):
            repeats: int = 1  # a key of the toy space's own


        CONFIG_CLASSES = {"supernet": ToySupernetConfig}
    ''',
    "config.schema.yaml": '''
        supernet:
          repeats:
            type: integer
            minimum: 1
            description: blocks per position; toy only
    ''',
    "references.py": '''
        from collections import namedtuple

        ReferenceCell = namedtuple("ReferenceCell", "name arch source")
        REFERENCES = {"toy-convs": ReferenceCell("toy-convs", "conv-conv-conv", "the tests")}
    ''',
    "space.py": '''
        import torch
        from torch import nn

        from e2nas.spaces.base import Space
        from e2nas.spaces.toy.config import CONFIG_CLASSES

        OPS = ("skip", "conv", "pool")
        POSITIONS = 3


        def make(op, c):
            return {"skip": nn.Identity, "conv": lambda: nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU()),
                    "pool": lambda: nn.AvgPool2d(3, 1, 1)}[op]()


        class Supernet(nn.Module):
            def __init__(self, c, repeats, num_classes, in_channels):
                super().__init__()
                self.stem = nn.Conv2d(in_channels, c, 3, padding=1)
                self.ops = nn.ModuleList(nn.ModuleList(make(o, c) for o in OPS) for _ in range(POSITIONS * repeats))
                self.head = nn.Linear(c, num_classes)

            def forward(self, x, cell, weights=None):
                x = self.stem(x)
                for i, ops in enumerate(self.ops):
                    p, a = i % POSITIONS, cell[i % POSITIONS]
                    y = ops[a](x)
                    # GDAS's form: h_a·op_a(x) + Σ_{k≠a} h_k, zero in value, gradient to every op's h
                    x = y if weights is None else weights[p, a] * y + (weights[p].sum() - weights[p, a])
                return self.head(x.mean((2, 3)))

            def forward_mixture(self, x, probs):
                x = self.stem(x)
                for i, ops in enumerate(self.ops):
                    x = sum(probs[i % POSITIONS, k] * op(x) for k, op in enumerate(ops))
                return self.head(x.mean((2, 3)))


        class ToySpace(Space):
            name, ops, choice_sizes = "toy", OPS, (3,) * POSITIONS
            enumerable = True
            alpha_shape = (POSITIONS, 3)
            config_classes = CONFIG_CLASSES

            def format(self, cell):
                return "-".join(OPS[int(o)] for o in cell)

            def parse(self, text):
                try:
                    cell = tuple(OPS.index(t) for t in text.split("-"))
                except ValueError:
                    raise ValueError(f"{text!r} is not a toy cell") from None
                if len(cell) != POSITIONS:
                    raise ValueError(f"{text!r} is not a toy cell")
                return cell

            def all_cells(self):
                return torch.cartesian_prod(*[torch.arange(3)] * POSITIONS)

            def sample_tensor(self, n, generator=None, valid=False):
                return torch.randint(3, (n, POSITIONS), generator=generator)

            def valid_mask(self, archs):
                return torch.ones(len(archs), dtype=torch.bool)

            def num_cells(self):
                return 3 ** POSITIONS

            def graphs(self, archs):
                b = archs.shape[0]
                x = torch.zeros(b, POSITIONS, POSITIONS + 3)
                x[:, torch.arange(POSITIONS), torch.arange(POSITIONS)] = 1
                x.scatter_(2, archs.unsqueeze(2) + POSITIONS, 1.0)
                return x, torch.tensor([[0, 1], [1, 2]])

            def complement(self, prev, cur, generator):
                shifts = torch.randint(1, 3, (POSITIONS,), generator=generator).tolist()
                return tuple((c + s) % 3 if p == c else c for p, c, s in zip(prev, cur, shifts))

            def derive(self, alpha):
                return tuple(alpha.detach().argmax(-1).tolist())

            def build_supernet(self, cfg, num_classes, in_channels):
                return Supernet(cfg.channels, cfg.repeats, num_classes, in_channels)

            def build_network(self, cell, cfg, num_classes, in_channels):
                cell = self.parse(cell) if isinstance(cell, str) else tuple(cell)
                net = Supernet(cfg.channels, 1, num_classes, in_channels)
                return _Fixed(net, cell)

            def draw(self, cell, ax=None, title=None):
                from matplotlib.figure import Figure

                ax = ax or Figure().add_subplot()
                ax.text(0.5, 0.5, self.canonical_text(cell), ha="center")
                return ax.figure


        class _Fixed(nn.Module):
            def __init__(self, net, cell):
                super().__init__()
                self.net, self.cell = net, cell

            def forward(self, x):
                return self.net(x, self.cell)
    ''',
}

SCRIPT = '''
import json, sys, torch, yaml
from pathlib import Path
from e2nas import spaces
from e2nas.code_inputs import stage_code
from e2nas.config_check import composed_schema, problems
from e2nas.data import ImageData, make_split
from e2nas.graphs import write_stage
from e2nas.retrain import run_retrain
from e2nas.search import SearchConfig, run_search
from e2nas.vgae import VGAEConfig, run_pretraining
from e2nas.warmup import WarmupConfig, run_warmup

root, repo = Path(sys.argv[1]), Path(sys.argv[2])
assert "toy" in spaces.NAMES
toy = spaces.get("toy")
schema = composed_schema(repo / "workflow/schemas/config.schema.yaml")
assert "toy" in schema["properties"]["space"]["enum"] and "repeats" in schema["properties"]["supernet"]["properties"]
config = yaml.safe_load((repo / "config/smoke.yaml").read_text())
config.update(space="toy", references={}, supernet={"channels": 4, "repeats": 2})
assert problems(config, repo / "workflow/schemas/config.schema.yaml") == [], problems(config, repo / "workflow/schemas/config.schema.yaml")
assert problems({**config, "supernet": {"repeats": 0}}, repo / "workflow/schemas/config.schema.yaml")
assert any("/spaces/toy/" in f for f in stage_code(repo / "notebooks/03_supernet_warmup.ipynb", "toy"))
assert toy.resolve_reference("toy-convs") == ("toy-convs", "conv-conv-conv")

gen = torch.Generator().manual_seed(0)
x, y = torch.randn(96, 1, 8, 8, generator=gen), torch.randint(0, 3, (96,), generator=gen)
data = ImageData("synthetic", 3, 1, 8, x, y, x[:32], y[:32], augment=False, pad=1)
split = make_split(96, 0)
write_stage(toy, root / "graphs.pt", root / "graphs.json")
run_pretraining(root / "graphs.pt", root / "vgae.pt", root / "vgae.json", VGAEConfig(latent_dim=4, epochs=2, batch_size=8), progress=False)
net_cfg = toy.config("supernet", {"channels": 4, "repeats": 2, "cells_per_stage": 1})  # another space's key is left out
run_warmup(data, split, net_cfg, WarmupConfig(epochs=1, batch_size=16), 0, root / "warmup.pt", root / "w.ckpt", progress=False, space=toy)
cfg = SearchConfig(epochs=2, batch_size=16, rsps_num_candidates=3, rsps_eval_images=16, eval_batch_size=16, archive_size=4)
for method in ("e2nas", "gdas", "darts", "rsps"):
    result = run_search(method, data, root / "warmup.pt", root / "vgae.pt", cfg, 0, root / f"{method}.json",
                        root / f"{method}.ckpt", progress=False, graphs_path=root / "graphs.pt", supernet_path=root / f"{method}.pt")
    toy.parse(result["arch"])
    metrics, _ = run_retrain(data, split, result["arch"], toy.config("retrain", {"epochs": 1, "batch_size": 16, "channels": 4}), 0,
                             root / f"{method}-retrain.json", root / f"{method}-r.ckpt", progress=False, space=toy)
    assert 0 <= metrics["test_accuracy"] <= 100
print("toy space ran every stage")
'''


def test_a_third_space_is_one_package_and_runs_every_stage(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    package = src / "e2nas" / "spaces" / "toy"
    package.mkdir()
    for name, text in TOY.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(REPO)], capture_output=True, text=True,
                         env=env, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "toy space ran every stage" in out.stdout

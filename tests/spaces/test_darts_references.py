"""The published DARTS-space cells (e2nas.spaces.darts.references): each reads from its authors' text,
round-trips, builds DARTS's network and counts the parameters the authors' code reports."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from e2nas import spaces
from e2nas.spaces import darts
from e2nas.spaces.darts.network import NetworkCIFAR, count_params_darts
from e2nas.spaces.darts.references import REFERENCES, ReferenceCell

# Parameters as DARTS counts them (count_parameters_in_MB x 1e6: the auxiliary head excluded), C = 36,
# 20 cells, CIFAR-10 (10 classes, 3 input channels). darts-v2 and e2nas-c are the "param size" lines of
# the authors' training logs (3.349342MB, 3.860398MB); the others agree with the authors' rounded figures
# (DARTS-V1 3.3M in the paper's table, PC-DARTS 3.6M, E2NAS 3.32M; GDAS-V1 as DARTS's network builds it).
PARAMS = {
    "darts-v1": 3_169_414,
    "darts-v2": 3_349_342,
    "pc-darts": 3_634_678,
    "gdas-v1": 3_368_782,
    "e2nas": 3_322_774,
    "e2nas-c": 3_860_398,
}


def test_the_space_exposes_the_registry():
    sp = spaces.get("darts")
    assert sp.reference_cells() is REFERENCES is darts.REFERENCES
    assert set(REFERENCES) == set(PARAMS)
    assert all(isinstance(c, ReferenceCell) and c.name == name for name, c in REFERENCES.items())
    assert {f.name for f in dataclasses.fields(ReferenceCell)} >= {"name", "arch", "source"}  # as NB201's
    assert REFERENCES["darts-v2"].printed == darts.DARTS_V2


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_reference_text_round_trips_and_is_the_printed_cell(name):
    cell = REFERENCES[name]
    arch = darts.parse_arch(cell.arch)
    assert darts.format_arch(arch) == cell.arch and darts.parse_arch(cell.printed) == arch
    assert darts.SPACE.canonical_text(cell.printed) == cell.arch
    assert darts.is_valid(arch) and darts.NONE not in arch[1::2]  # derived cells never hold `none`
    assert "commit" in cell.source and "/" in cell.source


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_reference_counts_the_published_parameters(name):
    net = NetworkCIFAR(REFERENCES[name].arch, 36, 20, num_classes=10, in_channels=3, auxiliary=True)
    params = count_params_darts(net)
    assert params == PARAMS[name]
    assert sum(p.numel() for p in net.parameters()) > params  # the auxiliary head is not counted
    # The text as printed builds the same network.
    assert count_params_darts(NetworkCIFAR(REFERENCES[name].printed, 36, 20, 10, 3)) == params


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_reference_runs_forward_and_backward(name):
    torch.manual_seed(0)
    net = NetworkCIFAR(REFERENCES[name].arch, 4, 3, num_classes=10, in_channels=3)
    out = net(torch.randn(2, 3, 16, 16))
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_the_e2nas_cell_repeats_an_input():
    arch = darts.parse_arch(REFERENCES["e2nas"].arch)
    inputs = [arch[p] for p in darts.INPUT_POSITIONS]
    assert inputs[0:2] == [1, 1] and inputs[2:4] == [1, 1]  # normal nodes 2 and 3 read c_{k-1} twice
    assert not darts.is_valid(arch, distinct_inputs=True)
    others = [n for n in REFERENCES if n != "e2nas"]
    assert all(darts.is_valid(darts.parse_arch(REFERENCES[n].arch), distinct_inputs=True) for n in others)

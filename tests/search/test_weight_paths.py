"""search.weight_paths: what E2NAS's weight half trains each step, and the per-epoch diagnostics of what the
search trained and sampled (issue 31: the search's weight steps train the cell it samples)."""

from __future__ import annotations

import pytest
import torch

from e2nas.search.config import SearchConfig
from e2nas.spaces import nb201
from search_helpers import batches, make_e2nas


def recorded_terms(method, steps: int = 3):
    """Every step's weight-loss terms (cell, coefficient) as train_paths receives them, and the step's a_t."""
    seen, cells = [], []
    real = method.harness.train_paths

    def spy(x, y, terms, probe=None):
        seen.append(list(terms))
        return real(x, y, terms, probe)

    method.harness.train_paths = spy
    method.start_epoch(0, 2)
    for _ in range(steps):
        before = len(method.epoch_cells)
        method.step(*batches())
        cells.append(method.epoch_cells[before])
    return seen, cells


def test_sampled_trains_the_sample_its_predecessor_and_their_complement():
    seen, cells = recorded_terms(make_e2nas(weight_paths="sampled"))
    for t, terms in enumerate(seen):
        prev = cells[t - 1] if t else cells[0]
        assert [c for c, _ in terms][:2] == [cells[t], prev] and [w for _, w in terms] == [0.5, 0.25, 0.25]


def test_broad_trains_the_sample_and_two_uniformly_drawn_cells():
    method = make_e2nas(weight_paths="broad")
    seen, cells = recorded_terms(method, steps=6)
    drawn = [c for terms in seen for c, _ in terms[1:]]
    assert all(terms[0] == (cell, 0.5) and [w for _, w in terms[1:]] == [0.25, 0.25] for terms, cell in zip(seen, cells))
    assert len(set(drawn)) > 6  # fresh uniform draws, not the search's own cells
    assert not set(drawn) & set(cells)


def test_fair_trains_the_sample_and_every_op_on_every_edge_once_more():
    seen, cells = recorded_terms(make_e2nas(weight_paths="fair"))
    for terms, cell in zip(seen, cells):
        assert terms[0] == (cell, 0.5) and len(terms) == 1 + len(nb201.OPS)
        for edge in range(nb201.NUM_EDGES):
            assert sorted(c[edge] for c, _ in terms[1:]) == list(range(len(nb201.OPS)))
        assert sum(w for _, w in terms) == pytest.approx(1.0)


def test_frozen_never_changes_the_supernet_and_still_moves_mu():
    method = make_e2nas(weight_paths="frozen")
    before = {k: v.clone() for k, v in method.harness.net.state_dict().items()}
    mu = method.mu.detach().clone()
    seen, _ = recorded_terms(method)
    assert seen == [] and all(torch.equal(before[k], v) for k, v in method.harness.net.state_dict().items())
    assert not torch.equal(mu, method.mu.detach())


def test_unknown_weight_paths_is_refused_naming_the_key():
    with pytest.raises(ValueError, match="weight_paths"):
        SearchConfig(weight_paths="some")


def test_the_epoch_records_what_the_weight_half_trained_and_the_arch_half_sampled():
    method = make_e2nas(weight_paths="sampled")
    _, cells = recorded_terms(method, steps=4)
    trained = list(method.harness.trained)
    diag = method.harness.path_diagnostics()
    assert diag["distinct_cells_trained"] == len(set(trained)) >= len(set(cells))
    assert diag["trained_parameter_free_share"] == pytest.approx(nb201.SPACE.parameter_free_share(trained))
    extras = method.epoch_extras()
    assert extras["sampled_parameter_free_share"] == pytest.approx(nb201.SPACE.parameter_free_share(cells))
    assert method.harness.trained == []  # read once per epoch

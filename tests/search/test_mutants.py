"""Mutants of the search code (E2NAS, the baselines, the harness's diagnostics) and the tests that must kill them.

Each mutant is one shortcut a reviewer found or feared: the file, the exact text it replaces, and the
tests named as its killers. A mutant is applied in a temporary copy of `src/`, put first on PYTHONPATH
(the package is installed editable from this checkout: PYTHONPATH comes before it), never in the working
tree; only its killers run, and each mutant must make them fail. A new shortcut found in review belongs
in this list, with the test that kills it.

    make mutants                                          # the whole list (E2NAS_MUTANTS=all)
    E2NAS_MUTANTS="GDAS,manifold" pytest tests/search/test_mutants.py   # the mutants whose names hold these
    pytest -m slow tests/search/test_mutants.py           # a seeded subset, as `make test` runs it (< 5 min)
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
E = "e2nas/search/e2nas.py"
B = "e2nas/search/baselines.py"
H = "e2nas/search/harness.py"
A = "e2nas/atomic.py"
T_E2NAS = "tests/search/test_e2nas.py::"
T_BASE = "tests/search/test_baselines.py::"
SUBSET, SEED = 12, 29  # mutants run by default (make test), drawn with this seed; E2NAS_MUTANTS=all runs every one


class Mutant(NamedTuple):
    name: str
    file: str  # under src/
    edits: tuple[tuple[str, str], ...]  # (old, new): each old text occurs exactly once
    killers: tuple[str, ...]  # pytest node ids


def m(name, file, old, new, *killers, more=()):
    return Mutant(name, file, ((old, new), *more), killers)


STEP = T_E2NAS + "test_a_step_draws_one_sample_trains_weights_first_on_the_weight_batch_then_the_arch_on_its_batch"
NOVELTY_AT_SAMPLE = T_E2NAS + "test_novelty_is_taken_at_the_sample_against_the_archive_without_it"
COMBINED = T_E2NAS + "test_terms_are_combined_on_mu_by_normalised_gradients"
SIGMA_LR = T_E2NAS + "test_sigma_learns_from_the_validation_loss_alone_at_a_tenth_of_the_lr"
TAU = T_E2NAS + "test_sampling_uses_the_epochs_temperature"
WEIGHT_TERMS = T_E2NAS + "test_each_weight_loss_term_has_its_exact_gradient"
MU0 = T_E2NAS + "test_mu_starts_at_the_encoding_of_the_seeded_start_cell"
MANIFOLD_AT_MU = T_E2NAS + "test_the_manifold_gradient_is_that_of_minus_log_density_at_mu"
GDAS_STEP = T_BASE + "test_gdas_step_trains_weights_on_the_weight_batch_then_alpha_on_the_arch_batch_with_two_draws_at_tau"
DARTS_STEP = T_BASE + "test_darts_step_mixes_at_softmax_alpha_weights_on_the_weight_batch_then_alpha_on_the_arch_batch"
RSPS_STEP = T_BASE + "test_rsps_step_trains_one_uniform_draw_on_the_weight_batch_and_never_reads_the_arch_batch"
TAU_LINE = "self.tau = geometric_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)"

MUTANTS = (
    # ---- E2NAS (issue 14's list)
    m("L(a_c) dropped", E, "return [(cur, 1.0 - lam), (prev, lam / 2), (comp, lam / 2)]", "return [(cur, 1.0 - lam), (prev, lam / 2)]",
      WEIGHT_TERMS),
    m("L(a_c) detached", H, "            for cell, coef in merged.items():\n                loss = self.path_loss(x, y, cell)\n                (coef * loss).backward()",
      "            for i, (cell, coef) in enumerate(merged.items()):\n                loss = self.path_loss(x, y, cell)\n"
      "                (coef * (loss.detach() if i == 2 else loss)).backward() if i != 2 else None", WEIGHT_TERMS),
    m("novelty sign flipped", E, '(grads["novelty"],) = torch.autograd.grad(-novelty, self.mu)', '(grads["novelty"],) = torch.autograd.grad(novelty, self.mu)',
      NOVELTY_AT_SAMPLE, T_E2NAS + "test_exploration_moves_mu_away_from_the_archive"),
    m("novelty on mu", E, "z_explore = self.mu + self.sigma().detach() * eps", "z_explore = self.mu + 0.0 * eps", NOVELTY_AT_SAMPLE),
    m("archive holds the current sample", E, "        novelty = self.archive.novelty(z_explore)  # against the archive without z",
      "        self.archive.append(z)\n        novelty = self.archive.novelty(z_explore)", NOVELTY_AT_SAMPLE),
    m("archive stores mu", E, "        self.archive.append(z)\n        self.last", "        self.archive.append(self.mu.detach())\n        self.last",
      NOVELTY_AT_SAMPLE),
    m("K not the configured size", E, "self.archive = LatentArchive(cfg.archive_size, self.dim, device)",
      "self.archive = LatentArchive(50, self.dim, device)", NOVELTY_AT_SAMPLE),
    m("archive filled with two samples", E, "for _ in range(cfg.archive_size)]",
      "for _ in range(cfg.archive_size)][:2] * (cfg.archive_size // 2) + [self._draw_latent()[0]] * (cfg.archive_size % 2)",
      T_E2NAS + "test_archive_starts_with_samples_of_the_initial_q"),
    m("(1-eta) on L_val removed", E, 'weights = {"val": 1.0 - self.eta,', 'weights = {"val": 1.0,',
      T_E2NAS + "test_at_eta_one_the_validation_loss_does_not_move_mu", COMBINED),
    m("mu0 not the start cell's encoding", E, "mu0 = encode_cell(vae, start, harness.device, space)",
      "mu0 = encode_cell(vae, harness.space.sample(1, torch.Generator().manual_seed(123), valid=True)[0], harness.device, space)", MU0),
    m("start cell not seed-dependent", E, 'start = space.sample(1, harness.gens["init"], valid=True)[0]',
      "start = space.sample(1, torch.Generator().manual_seed(7), valid=True)[0]", MU0),
    m("tau fixed", E, TAU_LINE, "self.tau = self.cfg.tau_max", TAU),
    m("tau = 1", E, TAU_LINE, "self.tau = 1.0", TAU),
    m("tau linear", E, TAU_LINE, "self.tau = self.cfg.tau_max - (self.cfg.tau_max - self.cfg.tau_min) * epoch / max(epochs - 1, 1)", TAU),
    m("sigma clamp removed", E, "            self.log_sigma.clamp_(*self.log_sigma_bounds)", "            pass",
      T_E2NAS + "test_sigma_stays_in_its_bounds"),
    m("log sigma frozen", E, "self.log_sigma.grad = g_log_sigma", "self.log_sigma.grad = torch.zeros_like(g_log_sigma)", SIGMA_LR),
    m("no reparameterisation noise", E, "return self.mu + self.sigma() * eps, eps", "return self.mu + 0.0 * self.sigma() * eps, eps",
      T_E2NAS + "test_the_sample_is_reparameterised"),
    m("result is the last sample", E,
      "            return self.harness.space.decode_cell(self.decoder.decode_logits(self.mu.detach().reshape(1, -1))[0]), None",
      "            return self.prev, None", T_E2NAS + "test_the_result_is_the_decoded_mean_not_a_sample"),
    m("arch step on the weights batch", E, "self.arch_step(xa, ya, z, eps, probs, cell, index)", "self.arch_step(xw, yw, z, eps, probs, cell, index)", STEP),
    m("two latent samples in one step", E, "        self.arch_step(xa, ya, z, eps, probs, cell, index)",
      "        z, eps = self._draw_latent()\n        self.arch_step(xa, ya, z, eps, probs, cell, index)", STEP),
    m("arch step before weight step", E, "        self.weight_step(xw, yw, prev, cell, probe)\n        self.arch_step(xa, ya, z, eps, probs, cell, index)",
      "        self.arch_step(xa, ya, z, eps, probs, cell, index)\n        self.weight_step(xw, yw, prev, cell, probe)", STEP),
    m("probe measures a_t", E, "probe=prev if probe else None)", "probe=cur if probe else None)",
      T_E2NAS + "test_forgetting_probe_measures_the_previous_cell"),
    m("decoder bypassed, its weights scale the gradient", E, "        return self.harness.space.path_probs(self.decoder.decode_logits(z), tau)",
      "        out = self.decoder.decode_logits(z.detach())\n"
      "        return self.harness.space.path_probs(out + (z - z.detach()).sum(-1)[..., None, None] * out.detach(), tau)",
      T_E2NAS + "test_validation_gradient_is_the_chain_rule_through_the_decoder"),
    m("terms summed raw (no normalisation)", E,
      "            rms = (self.mean_square[name] / (1 - self.decay ** self.steps[name])).sqrt().clamp_min(1e-30)",
      "            rms = torch.ones(())", COMBINED),
    m("manifold term dropped", E, '            (grads["manifold"],) = torch.autograd.grad(self.manifold.penalty(self.mu), self.mu)',
      '            grads["manifold"] = torch.zeros_like(self.mu)', COMBINED),
    m("novelty moves sigma", E, "self.log_sigma.grad = g_log_sigma",
      "self.log_sigma.grad = g_log_sigma + torch.autograd.grad(-self.archive.novelty(self.mu + self.sigma() * eps), self.log_sigma)[0]",
      SIGMA_LR),
    # ---- E2NAS diagnostics that survived every test before issue 29
    m("grad_rms_decay ignored", E, "GradientNormaliser(TERMS, cfg.grad_rms_decay, device)", "GradientNormaliser(TERMS, 0.0, device)",
      T_E2NAS + "test_the_running_rms_takes_the_configured_decay_across_steps"),
    m("manifold term at the sample z-tilde", E, "torch.autograd.grad(self.manifold.penalty(self.mu), self.mu)",
      "torch.autograd.grad(self.manifold.penalty(z_explore), self.mu)", MANIFOLD_AT_MU),
    m("manifold term's sign flipped", E, "torch.autograd.grad(self.manifold.penalty(self.mu), self.mu)",
      "torch.autograd.grad(-self.manifold.penalty(self.mu), self.mu)", MANIFOLD_AT_MU,
      T_E2NAS + "test_the_manifold_term_alone_pulls_mu_to_the_encoded_cells"),
    m("forgetting probe's before read after the step", H,
      '        if probe is not None:\n            self.stats.set("forget_before", self.probe_accuracy(probe))\n        self.w_opt.zero_grad(set_to_none=True)',
      "        self.w_opt.zero_grad(set_to_none=True)",
      T_BASE + "test_the_forgetting_probe_reads_the_previous_cell_just_before_and_just_after_the_weight_step",
      more=(("        self._weight_update()\n        if probe is not None:\n",
             '        self._weight_update()\n        if probe is not None:\n            self.stats.set("forget_before", self.probe_accuracy(probe))\n'),)),
    # ---- the baselines
    m("DARTS arch half on the weights batch", B,
      "logits = self.harness.net.forward_mixture(xa, torch.softmax(self.alpha, dim=-1))\n        self.arch_update(F.cross_entropy(logits, ya))",
      "logits = self.harness.net.forward_mixture(xw, torch.softmax(self.alpha, dim=-1))\n        self.arch_update(F.cross_entropy(logits, yw))",
      DARTS_STEP),
    m("DARTS weight half at another temperature", B, "self.harness.train_mixture(xw, yw, torch.softmax(self.alpha, dim=-1).detach())",
      "self.harness.train_mixture(xw, yw, torch.softmax(self.alpha / 2, dim=-1).detach())", DARTS_STEP),
    m("GDAS arch half on the weights batch", B, "self.arch_update(self.harness.path_loss(xa, ya, cell_a,",
      "self.arch_update(self.harness.path_loss(xw, yw, cell_a,", GDAS_STEP),
    m("GDAS tau not annealed", B, "self.tau = linear_tau(epoch, epochs, self.cfg.gdas_tau_max, self.cfg.gdas_tau_min)",
      "self.tau = self.cfg.gdas_tau_max", GDAS_STEP),
    m("GDAS one draw for both halves", B, "(p_w, ok_w), (p_a, ok_a) = self.gumbel_sample(), self.gumbel_sample()",
      "(p_w, ok_w) = self.gumbel_sample()\n            (p_a, ok_a) = (p_w, ok_w)", GDAS_STEP),
    m("GDAS probe measures a_t", B, "[(cell_w, 1.0)], probe=prev if probe else None)", "[(cell_w, 1.0)], probe=cell_w if probe else None)",
      T_BASE + "test_baselines_probe_the_previous_weight_steps_cell[gdas]"),
    m("RSPS trains on the arch batch", B, "self.harness.train_paths(xw, yw, [(cell, 1.0)], probe=prev if probe else None)",
      "self.harness.train_paths(xa, ya, [(cell, 1.0)], probe=prev if probe else None)", RSPS_STEP),
    # ---- atomic writes (issue 29, item 5)
    m("a writer removes other writers' temporary files", A, "        os.replace(tmp, path)\n",
      "        os.replace(tmp, path)\n        for other in path.parent.glob(f'.{path.name}.tmp*'):\n            other.unlink(missing_ok=True)\n",
      "tests/test_atomic_writes.py::test_a_writer_never_removes_another_writers_temporary_file"),
)


def selected() -> list[Mutant]:
    """Every mutant with E2NAS_MUTANTS=all, those whose names hold one of its comma-separated words, else a seeded subset."""
    choice = os.environ.get("E2NAS_MUTANTS", "").strip()
    if choice == "all":
        return list(MUTANTS)
    if choice:
        words = [w.strip().lower() for w in choice.split(",") if w.strip()]
        return [mu for mu in MUTANTS if any(w in mu.name.lower() for w in words)]
    return sorted(random.Random(SEED).sample(MUTANTS, SUBSET), key=MUTANTS.index)


def mutated_copy(tmp: Path, mutant: Mutant | None) -> Path:
    """src/ copied under `tmp` with `mutant` applied (each old text must occur exactly once)."""
    src = tmp / "src"
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.csv.lock"))
    if mutant is not None:
        path = src / mutant.file
        text = path.read_text()
        for old, new in mutant.edits:
            assert text.count(old) == 1, f"{mutant.name}: {old!r} occurs {text.count(old)} times in {mutant.file}"
            text = text.replace(old, new)
        path.write_text(text)
    return src


def run_tests(src: Path, nodes, *extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *extra, *nodes],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_every_mutant_names_real_tests_and_applies_once():
    """The list is runnable: each killer is a test that exists, each mutant's text occurs once in its file."""
    names = [mu.name for mu in MUTANTS]
    assert len(set(names)) == len(names)
    for mu in MUTANTS:
        text = (REPO / "src" / mu.file).read_text()
        for old, _ in mu.edits:
            assert text.count(old) == 1, (mu.name, text.count(old))
        for node in mu.killers:
            file, _, test = node.partition("::")
            assert (REPO / file).is_file() and f"def {test.split('[')[0]}(" in (REPO / file).read_text(), (mu.name, node)
    assert len(selected()) >= min(SUBSET, len(MUTANTS))


@pytest.mark.slow
def test_the_copy_comes_first_on_the_path(tmp_path):
    """A mutant runs in the copy, not in the editable install of this checkout."""
    src = mutated_copy(tmp_path, None)
    (src / "e2nas" / "_mutant_probe.py").write_text("HERE = __file__\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", "import e2nas, e2nas._mutant_probe as p; print(e2nas.__file__); print(p.HERE)"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and all(line.startswith(str(src)) for line in out.stdout.split()), out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mutant", selected(), ids=lambda mu: mu.name)
def test_each_mutant_is_killed_by_its_tests(tmp_path, mutant):
    src = mutated_copy(tmp_path, mutant)
    out = run_tests(src, mutant.killers)
    assert out.returncode == 1 and " failed" in out.stdout, (
        f"mutant {mutant.name!r} SURVIVED its killers {list(mutant.killers)} (exit {out.returncode}):\n"
        f"{out.stdout[-3000:]}{out.stderr[-2000:]}")

"""Mutants of the search code that tests/test_search.py must kill (issue 14's adversarial list).

Applies each mutation to src/e2nas/search/ in turn (restoring the file afterwards), runs
the tests of tests/search/ with -x and prints the first test that fails, or SURVIVED. A new
shortcut found in review belongs in this list together with the test that kills it.

    python tests/search/mutants.py [NAME-SUBSTRING ...]     # from the repository root
"""
import re
import subprocess
import sys
from pathlib import Path

E = "src/e2nas/search/e2nas.py"
C = "src/e2nas/search/harness.py"
M = [
 ("L(a_c) dropped", E, "return [(cur, 1.0 - lam), (prev, lam / 2), (comp, lam / 2)]", "return [(cur, 1.0 - lam), (prev, lam / 2)]"),
 ("L(a_c) detached", C, "            for cell, coef in merged.items():\n                loss = self.path_loss(x, y, cell)\n                (coef * loss).backward()",
  "            for i, (cell, coef) in enumerate(merged.items()):\n                loss = self.path_loss(x, y, cell)\n                (coef * (loss.detach() if i == 2 else loss)).backward() if i != 2 else None"),
 ("novelty sign flipped", E, "(grads[\"novelty\"],) = torch.autograd.grad(-novelty, self.mu)", "(grads[\"novelty\"],) = torch.autograd.grad(novelty, self.mu)"),
 ("novelty on mu", E, "z_explore = self.mu + self.sigma().detach() * eps", "z_explore = self.mu + 0.0 * eps"),
 ("archive holds the current sample", E, "        novelty = self.archive.novelty(z_explore)  # against the archive without z", "        self.archive.append(z)\n        novelty = self.archive.novelty(z_explore)"),
 ("archive stores mu", E, "        self.archive.append(z)\n        self.last", "        self.archive.append(self.mu.detach())\n        self.last"),
 ("K not the configured size", E, "self.archive = LatentArchive(cfg.archive_size, self.dim, device)", "self.archive = LatentArchive(50, self.dim, device)"),
 ("K not the configured size (fill)", E, "for _ in range(cfg.archive_size)]", "for _ in range(cfg.archive_size)][:2] * (cfg.archive_size // 2) + [self._draw_latent()[0]] * (cfg.archive_size % 2)"),
 ("(1-eta) on L_val removed", E, "weights = {\"val\": 1.0 - self.eta,", "weights = {\"val\": 1.0,"),
 ("mu0 not the start cell's encoding", E, "mu0 = encode_cell(vae, start, harness.device, space)", "mu0 = encode_cell(vae, harness.space.sample(1, torch.Generator().manual_seed(123), valid=True)[0], harness.device, space)"),
 ("start cell not seed-dependent", E, "start = harness.space.sample(1, harness.gens[\"init\"], valid=True)[0]", "start = harness.space.sample(1, torch.Generator().manual_seed(7), valid=True)[0]"),
 ("tau fixed", E, "self.tau = geometric_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)", "self.tau = self.cfg.tau_max"),
 ("tau = 1", E, "self.tau = geometric_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)", "self.tau = 1.0"),
 ("tau linear", E, "self.tau = geometric_tau(epoch, epochs, self.cfg.tau_max, self.cfg.tau_min)", "self.tau = self.cfg.tau_max - (self.cfg.tau_max - self.cfg.tau_min) * epoch / max(epochs - 1, 1)"),
 ("sigma clamp removed", E, "            self.log_sigma.clamp_(*self.log_sigma_bounds)", "            pass"),
 ("log sigma frozen", E, "self.log_sigma.grad = g_log_sigma", "self.log_sigma.grad = torch.zeros_like(g_log_sigma)"),
 ("no reparameterisation noise", E, "return self.mu + self.sigma() * eps, eps", "return self.mu + 0.0 * self.sigma() * eps, eps"),
 ("result is the last sample", E, "            return self.harness.space.decode_cell(self.decoder.decode_logits(self.mu.detach().reshape(1, -1))[0]), None", "            return self.prev, None"),
 ("arch step on the weights batch", E, "self.arch_step(xa, ya, z, eps, probs, cell, index)", "self.arch_step(xw, yw, z, eps, probs, cell, index)"),
 ("two latent samples in one step", E, "        self.arch_step(xa, ya, z, eps, probs, cell, index)", "        z, eps = self._draw_latent()\n        self.arch_step(xa, ya, z, eps, probs, cell, index)"),
 ("arch step before weight step", E, "        self.weight_step(xw, yw, prev, cell, probe)\n        self.arch_step(xa, ya, z, eps, probs, cell, index)", "        self.arch_step(xa, ya, z, eps, probs, cell, index)\n        self.weight_step(xw, yw, prev, cell, probe)"),
 ("probe measures a_t", E, "probe=prev if probe else None)", "probe=cur if probe else None)"),
 ("decoder bypassed, its weights scale the gradient", E, "        return self.harness.space.path_probs(self.decoder.decode_logits(z), tau)",
  "        out = self.decoder.decode_logits(z.detach())\n        return self.harness.space.path_probs(out + (z - z.detach()).sum(-1)[..., None, None] * out.detach(), tau)"),
 ("terms summed raw (no normalisation)", E, "            rms = (self.mean_square[name] / (1 - self.decay ** self.steps[name])).sqrt().clamp_min(1e-30)", "            rms = torch.ones(())"),
 ("manifold term dropped", E, "            (grads[\"manifold\"],) = torch.autograd.grad(self.manifold.penalty(self.mu), self.mu)", "            grads[\"manifold\"] = torch.zeros_like(self.mu)"),
 ("novelty moves sigma", E, "self.log_sigma.grad = g_log_sigma", "self.log_sigma.grad = g_log_sigma + torch.autograd.grad(-self.archive.novelty(self.mu + self.sigma() * eps), self.log_sigma)[0]"),
]
only = sys.argv[1:]
results = []
for name, path, old, new in M:
    if only and not any(o in name for o in only):
        continue
    p = Path(path)
    src = p.read_text()
    assert src.count(old) == 1, (name, src.count(old))
    p.write_text(src.replace(old, new))
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "tests/search"],
                             capture_output=True, text=True, timeout=900)
    finally:
        p.write_text(src)
    failed = re.findall(r"FAILED (\S+)", out.stdout)
    status = "CAUGHT by " + (failed[0].split("::")[-1] if failed else "(error: " + out.stdout[-300:] + ")") if out.returncode else "SURVIVED"
    results.append((name, status))
    print(f"{name}: {status}", flush=True)

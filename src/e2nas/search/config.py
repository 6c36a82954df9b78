"""Config section `search`: every method's settings, one typed object built from the validated config."""

from __future__ import annotations

from dataclasses import asdict, dataclass

WEIGHT_PATHS = ("sampled", "broad", "fair", "frozen")
ESTIMATORS = ("straight-through", "swap")


@dataclass
class SearchConfig:
    """Config section `search`. Defaults are the quick default profile; paper values in comments."""

    epochs: int = 5  # search epochs T (paper: 250)
    batch_size: int = 64  # images per weight step and per architecture step (paper: 64)
    # Supernet weights: SGD, cosine schedule per epoch (paper values).
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_nesterov: bool = True
    w_weight_decay: float = 5e-4
    grad_clip: float = 5.0  # max global norm of the weight gradient
    # Architecture parameters (E2NAS's μ, log σ; GDAS's and DARTS's α): Adam. The paper's lr is
    # 3e-4 over 250 epochs; a quick profile takes ~100x fewer steps, so it needs a ~100x larger
    # lr or μ (and α) would not leave their start.
    arch_lr: float = 0.05
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3  # on GDAS's and DARTS's α only (the paper's); never on μ or log σ
    # E2NAS.
    # Decoder softmax temperature τ. It only shapes the straight-through gradient: below ~3 a
    # decoder trained to exact reconstruction is saturated, and on a known optimum τ in 15-60
    # steered 3 in 4 seeds to it against 1 in 2 at τ = 10 (docs/method.md); tau_min < tau_max
    # anneals it geometrically per epoch.
    tau_max: float = 30.0
    tau_min: float = 30.0
    sigma_init: float = 0.1  # initial σ of q(z) (clamped into [sigma_min, sigma_max])
    sigma_min: float = 0.01  # σ is kept in [sigma_min, sigma_max] ...
    sigma_max: float | None = None  # ... None: the median posterior σ of the VGAE over all encodings
    sigma_lr_scale: float = 0.1  # log σ learns from L_val alone at arch_lr × this
    manifold_weight: float = 0.3  # β_m: weight of the manifold term M(μ) = −log ρ_E(μ) / d
    grad_rms_decay: float = 0.9  # each latent term's gradient on μ is divided by its running RMS (this decay)
    archive_size: int = 50  # K: latents in the novelty archive (filled with K samples of q at the start)
    explore_r: float = 10.0  # r in η_t = 1 − sigmoid(r (2t/T − 1))
    complement_lambda: float = 0.5  # λ in L_w = (1 − λ) L(a_t) + λ/2 [L(a_{t−1}) + L(a_c)]
    # What E2NAS's weight half trains each step: "frozen" (none: the warm-up supernet judges throughout, the default),
    # "sampled" (the paper's: a_t, a_{t−1}, a_c), "broad" (a_t at
    # 1 − λ and two uniformly drawn cells at λ/2 each: as many paths, fewer of them the search's own), "fair"
    # (a_t and the |ops| paths of a fair update, every edge taking every op once). docs/method.md: why, with the numbers.
    weight_paths: str = "frozen"
    # How E2NAS's arch half reads ∂L_val/∂P: "swap" (the exact gradient of the expected loss at the sampled cell: L of
    # the cell with that one edge swapped, one forward per alternative op) or "straight-through" (the paper's: one
    # path's gradient, the same for every unchosen op of an edge). docs/method.md: why swap, with the numbers.
    estimator: str = "swap"
    # Baselines.
    gdas_tau_max: float = 10.0  # GDAS's Gumbel temperature, annealed linearly per epoch (as GDAS does) ...
    gdas_tau_min: float = 0.1  # ... to this
    rsps_num_candidates: int = 20  # cells RSPS ranks with the supernet
    rsps_eval_images: int = 512  # arch-half images that score a cell (every method's acc_val, RSPS's ranking)
    eval_batch_size: int = 256  # batch of those evaluations (and of the fixed forgetting batch)
    # What a user would do instead (e2nas.search.standalone).
    random_search_trainings: int = 10  # k stand-alone trainings of random search (the study sizes k to E2NAS's cost)
    zero_cost_cells: int = 1000  # cells the zero-cost picks (params, synflow) score

    def __post_init__(self):
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "tau_min": 0 < self.tau_min <= self.tau_max,
            "gdas_tau_min": 0 < self.gdas_tau_min <= self.gdas_tau_max,
            "sigma_min": 0 < self.sigma_min <= self.sigma_init,
            "sigma_max": self.sigma_max is None or self.sigma_max >= self.sigma_min,
            "sigma_lr_scale": self.sigma_lr_scale >= 0,
            "manifold_weight": self.manifold_weight >= 0,
            "grad_rms_decay": 0 <= self.grad_rms_decay < 1,
            "archive_size": self.archive_size >= 2,
            "complement_lambda": 0 <= self.complement_lambda <= 1,
            "weight_paths": self.weight_paths in WEIGHT_PATHS,
            "estimator": self.estimator in ESTIMATORS,
            "rsps_num_candidates": self.rsps_num_candidates >= 1,
            "rsps_eval_images": self.rsps_eval_images >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "random_search_trainings": self.random_search_trainings >= 1,
            "zero_cost_cells": self.zero_cost_cells >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid search config value(s) for {', '.join(bad)}: {asdict(self)}")

"""The per-epoch schedules of the search: E2NAS's exploration weight and temperature, GDAS's temperature."""

from __future__ import annotations

import math


def eta_at(epoch: int, epochs: int, r: float) -> float:
    """Exploration weight η_t = 1 − sigmoid(r (2t/T − 1)): ≈1 early (explore), ≈0 late (exploit)."""
    return 1.0 - 1.0 / (1.0 + math.exp(-r * (2.0 * epoch / epochs - 1.0)))


def geometric_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """τ_t = τ_max (τ_min/τ_max)^(t/(T−1)); τ_max for a one-epoch search."""
    return tau_max * (tau_min / tau_max) ** (epoch / max(epochs - 1, 1))


def linear_tau(epoch: int, epochs: int, tau_max: float, tau_min: float) -> float:
    """GDAS's schedule: τ_t = τ_max − (τ_max − τ_min) t/(T−1)."""
    return tau_max - (tau_max - tau_min) * epoch / max(epochs - 1, 1)

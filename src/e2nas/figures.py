"""Showing a figure where users look: inline in the executed notebook, in MLflow, and as files.

The library builds matplotlib Figures without pyplot (no global state). IPython draws such a
figure only when its inline backend happens to be active, and papermill's kernels print
`<Figure size 640x400 with 1 Axes>` otherwise; `show` displays the rendered PNG itself.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

DPI = 110


def png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show(fig: Figure | None, name: str, run=None, save_dir: str | os.PathLike | None = None) -> None:
    """Display `fig` inline (as a PNG), log it to the stage's MLflow `run` as plots/`name`, and write
    `name` (.png and .svg) into `save_dir` when given. None (nothing to draw) does nothing."""
    if fig is None:
        return
    from IPython.display import Image, display

    display(Image(data=png(fig)))
    if run is not None:
        run.log_figure(fig, name)
    if save_dir is not None:
        stem = Path(save_dir) / Path(name).stem
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".png", ".svg"):
            fig.savefig(stem.with_suffix(suffix), dpi=DPI, bbox_inches="tight")


def training_curves(history: dict, title: str, accuracy_label: str = "training accuracy (%)") -> Figure:
    """Loss and accuracy per epoch of a training history ({"epoch", "loss", "accuracy", ...} columns)."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    fig.suptitle(title)
    loss, accuracy = fig.subplots(1, 2)
    epochs = [e + 1 for e in history["epoch"]]
    loss.plot(epochs, history["loss"], marker="o")
    loss.set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
    accuracy.plot(epochs, history["accuracy"], marker="o")
    accuracy.set(xlabel="epoch", ylabel=accuracy_label, title=accuracy_label.split(" (")[0], ylim=(0, 100))
    return fig


class PCAProjection:
    """A 2-D (or k-D) PCA basis fitted once, to project later points (e.g. a search path) alike."""

    def __init__(self, mean: Tensor, basis: Tensor):
        self.mean, self.basis = mean, basis  # (d,), (d, k)

    @classmethod
    def fit(cls, mu: Tensor, dims: int = 2) -> PCAProjection:
        """Principal axes of the points `mu` (N, d), signs fixed so the fit is deterministic."""
        mu = mu.detach().float().cpu()
        mean = mu.mean(dim=0)
        _, _, vh = torch.linalg.svd(mu - mean, full_matrices=False)
        basis = vh[:dims].T
        # An axis's sign is arbitrary: make its largest-magnitude component positive.
        signs = torch.sign(basis.gather(0, basis.abs().argmax(dim=0, keepdim=True)))
        return cls(mean, basis * signs)

    def __call__(self, z: Tensor) -> Tensor:
        """Coordinates (N, k) of points z (N, d) on the fitted axes (on the CPU)."""
        return (z.detach().float().cpu() - self.mean) @ self.basis


def latent_projection(mu: Tensor, dims: int = 2) -> Tensor:
    """PCA coordinates (N, dims) of the means; use PCAProjection.fit(mu) to project new points too."""
    return PCAProjection.fit(mu, dims)(mu)

"""Small run-time choices shared by the stage notebooks."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when there is a GPU, else CPU; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"config key `device` is {name!r} but this machine has no CUDA GPU; use 'auto' or 'cpu'")
    return torch.device(name)


def memory_format(device: torch.device | str) -> torch.memory_format:
    """The image layout that trains faster on `device`: channels_last on a CPU (oneDNN's convolutions:
    1.2-1.4x an NB201 network's training step, benchmarks/RESULTS.md), the default on a GPU (slower
    there in fp32, measured on an H200)."""
    return torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format

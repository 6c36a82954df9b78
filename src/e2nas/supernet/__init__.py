"""The NAS-Bench-201 weight-sharing supernet, its warm-up, and the fixed-cell network."""

from e2nas.supernet.nb201 import FixedNet, SuperNet, count_flops, count_params

__all__ = ["FixedNet", "SuperNet", "count_flops", "count_params"]

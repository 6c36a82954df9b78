"""E2NAS: differentiable NAS in an equivalent (VGAE latent) space with exploration enhancement."""

import warnings

__version__ = "0.1.0"

# PyTorch Geometric scripts a function with torch.jit when it is imported, which torch >= 2.10 deprecates:
# its warning, not ours, and it printed in every stage notebook.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

"""What the search tests share: a linear decoder, a tiny supernet and images, E2NAS on them."""

from __future__ import annotations

import torch
from torch import nn

from e2nas.search import Harness, SearchConfig
from e2nas.search.e2nas import E2NAS
from e2nas.spaces import nb201

torch.set_num_threads(1)

LATENT = 4
NUM_OPS = len(nb201.OPS)


class LinearDecoder(nn.Module):
    """logits(z) = W z + b, (B, d) -> (B, 6, 5): a decoder the test can reason about."""

    def __init__(self, dim: int = LATENT, seed: int = 0):
        super().__init__()
        self.lin = nn.Linear(dim, nb201.NUM_EDGES * NUM_OPS)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.lin.weight.copy_(torch.randn(self.lin.weight.shape, generator=g))
            self.lin.bias.zero_()

    def decode_logits(self, z):
        return self.lin(z).view(-1, nb201.NUM_EDGES, NUM_OPS)


def tiny_supernet(seed: int = 0):
    from e2nas.spaces.nb201.supernet import SuperNet

    torch.manual_seed(seed)
    return SuperNet(4, 1, 10, 1)


def images(n: int, seed: int = 0, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(10, (n,), generator=g)


def tiny_cfg(**kw) -> SearchConfig:
    # The weight half under test is the paper's (sampled paths); the default's frozen one: test_weight_paths.py.
    base = dict(weight_paths="sampled", epochs=2, batch_size=8, archive_size=4, rsps_num_candidates=3, rsps_eval_images=16, eval_batch_size=16)
    return SearchConfig(**{**base, **kw})


def make_e2nas(net=None, decoder=None, seed=0, encodings=True, method_cls=None, **cfg):
    """E2NAS on the tiny supernet and a linear decoder; `encodings`: 32 points around μ₀ make the manifold."""
    net = tiny_supernet(seed) if net is None else net
    x, y = images(16, seed=99)
    harness = Harness(net, tiny_cfg(**cfg), "cpu", seed, x, y, space="nb201")
    decoder = LinearDecoder() if decoder is None else decoder
    mu0 = torch.randn(LATENT, generator=torch.Generator().manual_seed(seed + 1))
    points = mu0 + torch.randn(32, LATENT, generator=torch.Generator().manual_seed(seed + 2)) if encodings else None
    return (method_cls or E2NAS)(harness, decoder, mu0, encodings=points)


def batches():
    return (*images(8, seed=1), *images(8, seed=2))


class LinearCost(E2NAS):
    """E2NAS whose L_val is ⟨c, h⟩ for a fixed per-edge op cost c: the gradient's answer is known."""

    cost: torch.Tensor = torch.zeros(nb201.NUM_EDGES, NUM_OPS)

    def validation_loss(self, x, y, cell, weights):
        return (self.cost * weights).sum()



"""The DARTS evaluation network (DARTS's NetworkCIFAR): a genotype trained from scratch (stage 5).

Skeleton, as DARTS's `model.py` builds it: a stem conv 3×3 to 3C channels + BatchNorm, then
`layers` cells; the cells at layers//3 and 2·layers//3 are reduction cells (stride 2 on the ops
that read the two cell inputs, channels doubled), the others normal cells. Each cell reads the
outputs of the two cells before it, preprocessed to its C channels by ReLU-Conv1×1-BN, or by
FactorizedReduce when the cell before was a reduction (so c_{k-2} has twice the resolution);
its output concatenates its 4 nodes (4C channels). Global average pool and a linear
classifier end it. With `auxiliary`, a head after the cell at 2·layers//3 (DARTS's
AuxiliaryHeadCIFAR, which assumes an 8×8 map there, i.e. 32×32 images) gives a second output,
weighted 0.4 in the loss during training only. Drop-path: during training each op output except
identities is zeroed per sample with probability `drop_path_prob` (kept ones scaled by
1/(1−p)); DARTS ramps p linearly from 0 to 0.2 over the epochs (`drop_path_at`).

Parameters are counted as DARTS counts them (`count_parameters_in_MB` skips every name containing
"auxiliary"): `count_params_darts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from e2nas.layers import ReLUConvBN
from e2nas.spaces.darts import cells as darts
from e2nas.spaces.darts.ops import FactorizedReduce, make_op

STEM_MULTIPLIER = 3  # the stem has 3C channels


def as_genotype(arch) -> darts.Genotype:
    """The canonical Genotype of a genotype text, a 32-choice encoding, or a Genotype-like object."""
    if isinstance(arch, str):
        return darts.to_genotype(darts.parse_arch(arch))
    if all(hasattr(arch, f) for f in darts.FIELDS):
        return darts.to_genotype(darts.from_genotype(arch))
    return darts.to_genotype(arch)


def drop_path(x: Tensor, drop_prob: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero whole samples of x with probability drop_prob, scale the kept ones by 1/(1 − drop_prob).

    The mask is drawn on the generator's device (x's without one) and moved to x's.
    """
    keep = 1.0 - drop_prob
    device = generator.device if generator is not None else x.device
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=device).bernoulli_(keep, generator=generator)
    return x * (mask.to(x.device) / keep)


def drop_path_at(epoch: int, epochs: int, max_prob: float) -> float:
    """DARTS's schedule: drop-path probability max_prob·epoch/epochs at (0-based) `epoch`."""
    return max_prob * epoch / max(epochs, 1)


class EvalCell(nn.Module):
    """One fixed cell: preprocessing of both inputs, 8 ops on the genotype's inputs, concat of nodes 2..5."""

    def __init__(self, pairs: Sequence[tuple[str, int]], c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0, True, True)
        )
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, True, True)
        self.indices = [src for _, src in pairs]
        # Only ops on the cell inputs stride in a reduction cell; later nodes are already reduced.
        self.ops = nn.ModuleList(
            make_op(name, c, 2 if reduction and src < darts.NUM_INPUTS else 1) for name, src in pairs
        )
        self.multiplier = len(darts.CONCAT)

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(darts.NUM_NODES):
            total = None
            for k in range(node * darts.SLOTS, (node + 1) * darts.SLOTS):
                op = self.ops[k]
                h = op(states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob, generator)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in darts.CONCAT], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier on an 8×8 map: pool to 2×2, conv 1×1 to 128, conv 2×2 to 768, linear."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        # DARTS's first ReLU is in-place on the trunk's feature map; out of place here, so the
        # trunk's later cells read the map as it was (they apply a ReLU first anyway).
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if not 8 <= x.shape[-1] <= 10 or not 8 <= x.shape[-2] <= 10:
            raise ValueError(
                f"the DARTS auxiliary head expects an 8x8 feature map at 2/3 depth (32x32 images), got "
                f"{tuple(x.shape[-2:])}; train without it (config key retrain.auxiliary_weight: 0) for other image sizes"
            )
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """DARTS's evaluation network for one genotype (see the module docstring)."""

    def __init__(
        self,
        genotype,
        C: int,
        layers: int,
        num_classes: int,
        in_channels: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
    ):
        super().__init__()
        if C < 1 or layers < 1:
            raise ValueError(f"the DARTS network needs C >= 1 and layers >= 1, got C={C}, layers={layers}")
        self.genotype = as_genotype(genotype)
        self.arch = repr(self.genotype)
        self.layers, self.auxiliary = layers, auxiliary
        self.drop_path_prob = drop_path_prob  # set per epoch by the trainer (drop_path_at)
        self.drop_generator: torch.Generator | None = None  # draws the drop-path masks when set
        self.aux_index = 2 * layers // 3
        reductions = {layers // 3, 2 * layers // 3}

        c_stem = STEM_MULTIPLIER * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_prev_prev, c_prev, c_curr = c_stem, c_stem, C
        cells, reduction_prev, c_aux = [], False, c_stem
        for i in range(layers):
            reduction = i in reductions
            c_curr = 2 * c_curr if reduction else c_curr
            pairs = self.genotype.reduce if reduction else self.genotype.normal
            cell = EvalCell(pairs, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_prev
        self.cells = nn.ModuleList(cells)
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(c_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def _run(self, x: Tensor, with_aux: bool) -> tuple[Tensor, Tensor | None]:
        drop_prob = self.drop_path_prob if self.training else 0.0
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop_prob, self.drop_generator)
            if with_aux and i == self.aux_index:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux

    def forward(self, x: Tensor) -> Tensor:
        """The main head's logits (the auxiliary head is not run)."""
        return self._run(x, with_aux=False)[0]

    def forward_with_aux(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(logits, auxiliary logits); the latter only in training mode with an auxiliary head, else None."""
        return self._run(x, with_aux=self.auxiliary and self.training)


def loss_with_aux(net: NetworkCIFAR, x: Tensor, y: Tensor, auxiliary_weight: float) -> tuple[Tensor, Tensor]:
    """(loss, logits): cross-entropy of the main head plus auxiliary_weight × the auxiliary head's, when it runs."""
    logits, aux = net.forward_with_aux(x)
    loss = F.cross_entropy(logits, y)
    if aux is not None:
        loss = loss + auxiliary_weight * F.cross_entropy(aux, y)
    return loss, logits


def count_params_darts(model: nn.Module) -> int:
    """Parameters as DARTS counts them: every element, except those of the auxiliary head."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)

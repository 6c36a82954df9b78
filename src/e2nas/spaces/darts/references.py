"""Well-known published DARTS-space cells, by the names this project uses, with their sources.

Every cell here was read from its authors' public code, never retyped from a figure: `printed`
is the genotype exactly as that code writes it (DXY's GDAS code nests a node's two pairs; its
flat form is listed, same pairs in the same order), `arch` the canonical text this space
prints for it (`format_arch(parse_arch(printed))`: a node's pairs by ascending (input, op), so
it can list two pairs in the other order than `printed`; the same cell). `source` names the
repository, file and commit, and the published figures the cell's DARTS-counted parameters
match (C = 36, 20 cells, CIFAR-10, auxiliary head excluded; tests/spaces/test_darts_references.py
checks the counts).

The E2NAS authors' CIFAR-10 cell repeats an input (its normal nodes 2 and 3 read c_{k-1}
twice): a genotype DARTS's network builds though a DARTS search never derives it, which this
space takes (see `cells`).
"""

from __future__ import annotations

from dataclasses import dataclass

from e2nas.spaces.darts import cells as darts

_DARTS = "quark0/darts cnn/genotypes.py (commit f276dd346a09ae3160f8e3aca5c7b193fda1da37)"
_E2NAS = (
    "miaozhang0525/EENAS EENAS_best_models_on_CNN-for-NeurIPS2020/CNN/genotypes.py "
    "(commit bb875985e859b520736e50fc682b5a00baf4e545)"
)


@dataclass(frozen=True)
class ReferenceCell:
    name: str
    arch: str  # the canonical Genotype text (what format_arch prints)
    source: str
    printed: str = ""  # the genotype as its authors' code writes it (parse_arch reads it to `arch`)


def _cell(name: str, printed: str, source: str) -> ReferenceCell:
    return ReferenceCell(name, darts.format_arch(darts.parse_arch(printed)), source, printed)


REFERENCES = {
    cell.name: cell
    for cell in (
        _cell(
            "darts-v1",
            "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
            "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
            f"DARTS (Liu et al., ICLR 2019), first-order search on CIFAR-10: `DARTS_V1` in {_DARTS}; "
            "3,169,414 parameters as DARTS counts them (the paper: 3.3M, 3.00% CIFAR-10 error)",
        ),
        _cell(
            "darts-v2",
            darts.DARTS_V2,
            f"DARTS (Liu et al., ICLR 2019), second-order search on CIFAR-10: `DARTS_V2` (= `DARTS`) in {_DARTS}; "
            "3,349,342 parameters, the 'param size = 3.349342MB' DARTS's train.py logs (README: 3.3M, 2.63% error)",
        ),
        _cell(
            "pc-darts",
            "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
            "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), "
            "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))",
            "PC-DARTS (Xu et al., ICLR 2020), searched on CIFAR-10: `PC_DARTS_cifar` (= `PCDARTS`) in yuhuixu1993/PC-DARTS "
            "genotypes.py (commit 283b086cc3d567aacf448511cd0b28d13a728f49); 3,634,678 parameters (README: 3.6M, 2.57% error)",
        ),
        _cell(
            "gdas-v1",
            "Genotype(normal=[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0), ('sep_conv_5x5', 2), "
            "('sep_conv_3x3', 3), ('skip_connect', 0), ('sep_conv_5x5', 4), ('sep_conv_3x3', 3)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 2), ('sep_conv_5x5', 1), ('dil_conv_5x5', 2), "
            "('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_5x5', 1)], reduce_concat=[2, 3, 4, 5])",
            "GDAS (Dong & Yang, CVPR 2019), searched on CIFAR-10 with a searched reduction cell: `GDAS_V1` in "
            "D-X-Y/AutoDL-Projects lib/nas_infer_model/DXYs/genotypes.py (commits bb2f405961d73b5bf3a757178793aa1fc7038ca2 "
            "and fac556c176332dd37eb31646bb9ae45e0a062b79 alike), its per-node pairs of pairs flattened in order; "
            "3,368,782 parameters as DARTS's network builds it (GDAS's own evaluation network is DXY's code, not DARTS's)",
        ),
        _cell(
            "e2nas",
            "Genotype(normal=[('sep_conv_5x5', 1), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('sep_conv_3x3', 1), "
            "('sep_conv_5x5',1), ('avg_pool_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 2), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), "
            "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
            f"E2NAS (Zhang et al., NeurIPS 2020), the authors' best CIFAR-10 cell: `EENAS` (train.py's default arch) in {_E2NAS}; "
            "3,322,774 parameters (the folder's README: 3.32M, 2.53% CIFAR-10 error; CIFAR-100 3.37M: 3,374,704 here); "
            "normal nodes 2 and 3 read c_{k-1} twice",
        ),
        _cell(
            "e2nas-c",
            "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 2), "
            "('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4), ('skip_connect', 0)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('dil_conv_5x5', 1), ('avg_pool_3x3', 0), ('dil_conv_5x5', 2), ('dil_conv_5x5', 3), "
            "('max_pool_3x3', 0), ('dil_conv_5x5', 4), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])",
            f"E2NAS (Zhang et al., NeurIPS 2020), the authors' later 'new searched' CIFAR-10 cell: `EENAS_C` in {_E2NAS}; "
            "3,860,398 parameters, the 'param size = 3.860398MB' of the authors' CIFAR-10 training log "
            "(trained_models/EENAS_C_cifar10/log.txt; README: 3.86M, 2.50% error)",
        ),
    )
}

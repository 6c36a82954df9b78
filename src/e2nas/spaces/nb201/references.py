"""Well-known NAS-Bench-201 cells, by the names the literature and this project use, with their sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceCell:
    name: str
    arch: str
    source: str


REFERENCES = {
    cell.name: cell
    for cell in (
        ReferenceCell(
            "nb201-best",
            "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
            "NAS-Bench-201 (Dong & Yang, ICLR 2020; NATS-Bench tss, 200 epochs): the highest CIFAR-10 test accuracy, "
            "94.37 (tied with the same cell with conv 1x1 on 3←1 and conv 3x3 on 3←2; this one is ahead on CIFAR-100)",
        ),
        ReferenceCell(
            "nb201-all-skip",
            "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
            "NAS-Bench-201 (Dong & Yang, ICLR 2020): the cell DARTS's collapsed searches end at, every edge a skip "
            "connection; CIFAR-10 54.30 in the benchmark's table",
        ),
    )
}

"""The cells of the paper's Tables 1-4: what each trains on and with which loss."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from mfr.errors import MfrError
from mfr.losses.registry import LOSSES
from mfr.masking.registry import MASK_METHODS, METHODS

LOSS_LABELS = {name: loss.label for name, loss in LOSSES.items()}
AD_HOC = METHODS  # the ad-hoc generators: masked twins made by `mfr mask`
SOURCE_LABELS = {
    **{name: method.label for name, method in MASK_METHODS.items()},
    "cyclegan": "CycleGAN",
    "iamgan": "IAMGAN",
    "iamgan-no_rec": "IAMGAN w/o L_rec",
    "iamgan-no_cls": "IAMGAN w/o L_cls",
}


@dataclass(frozen=True)
class Cell:
    """One row of a table: train ``loss`` on full faces (+ masked twins from ``source``)."""

    table: str
    row: str
    loss: str = "softmax"
    source: str | None = None  # None: full faces only
    loss_options: dict[str, Any] = field(default_factory=dict, hash=False)
    seed: int = 0
    # no training, a built-in model: "dlib" (the off-the-shelf descriptor) or "dlib-resnet"
    # (dlib's weights behind mfr's fixed chip, on the aligned crops)
    baseline: str | None = None
    # trained with distillation towards a teacher (the experiment config's ``distill``): a
    # row of its own ("<row>+distill"), so that the paper's losses are also compared without
    distill: bool = False

    @property
    def key(self) -> str:
        """Folder name of the cell: the row label made path-safe, plus the seed."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.row.lower()).strip("-")
        return f"{slug}-s{self.seed}"

    @property
    def synthetic_test_method(self) -> str:
        """The synthetic-mask test's method: KP-CVX, or KP-SYN for cells trained on KP-CVX.

        One method for every cell that did not train on it, so that the cells of a table
        (full-face only, KP-SYN, GAN, dlib) are compared on the same probes.
        """
        return "template" if self.source == "hull" else "hull"


BASELINE_ROWS = {
    "dlib": "dlib (off-the-shelf)",
    "dlib-resnet": "dlib weights, mfr chip (no training)",
}


def baseline_cells(table: str, baselines: tuple[str, ...] = tuple(BASELINE_ROWS)) -> list[Cell]:
    """The untrained reference rows of ``table``: ``baselines`` (keys of ``BASELINE_ROWS``)."""
    unknown = sorted(set(baselines) - set(BASELINE_ROWS))
    if unknown:
        raise MfrError(
            f"unknown baseline {', '.join(unknown)}: choose from {', '.join(BASELINE_ROWS)}"
        )
    return [Cell(table, BASELINE_ROWS[name], baseline=name) for name in baselines]


def _table1(masked_source: str, baselines: tuple[str, ...]) -> list[Cell]:
    label = SOURCE_LABELS[masked_source]
    cells = [Cell("table1", LOSS_LABELS[loss], loss) for loss in LOSS_LABELS if loss != "dcr"]
    cells += [
        Cell("table1", f"{LOSS_LABELS[loss]}+{label}", loss, masked_source) for loss in LOSS_LABELS
    ]
    return [*baseline_cells("table1", baselines), *cells]


def _table2() -> list[Cell]:
    sources = ["cyclegan", *AD_HOC, "iamgan"]
    return [Cell("table2", SOURCE_LABELS[s], "softmax", s) for s in sources]


def _table3() -> list[Cell]:
    variants = [("cyclegan", "w/o L_IP"), ("iamgan-no_rec", "w/o L_rec"),
                ("iamgan-no_cls", "w/o L_cls"), ("iamgan", "with all")]  # fmt: skip
    return [Cell("table3", row, "softmax", source) for source, row in variants]


def _table4(masked_source: str) -> list[Cell]:
    rows = [
        ("w/o L_c", {"use_cross": False}),
        ("w/o L_s", {"use_single": False}),
        ("with all", {}),
    ]
    return [Cell("table4", row, "dcr", masked_source, options) for row, options in rows]


DISTILL_SUFFIX = "+distill"


def table_cells(
    table: str,
    masked_source: str = "template",
    seeds: tuple[int, ...] = (0,),
    distill: bool = False,
    baselines: tuple[str, ...] = tuple(BASELINE_ROWS),
):
    """The cells of ``table`` (table1..table4); every cell repeated for each seed.

    Table 1 starts with the untrained ``baselines`` (see :func:`baseline_cells`).

    With ``distill``, every trained row is followed by its twin trained with distillation
    (row label + ``+distill``, ``Cell.distill`` True); the baselines are not repeated.
    """
    builders = {
        "table1": lambda: _table1(masked_source, tuple(baselines)),
        "table2": _table2,
        "table3": _table3,
        "table4": lambda: _table4(masked_source),
    }
    if table not in builders:
        raise MfrError(f"unknown table {table!r}: choose one of {', '.join(builders)}")
    cells = builders[table]()
    if distill:
        cells = [
            twin
            for cell in cells
            for twin in (
                [cell]
                if cell.baseline
                else [cell, dataclasses.replace(cell, row=cell.row + DISTILL_SUFFIX, distill=True)]
            )
        ]
    out = []
    for seed in seeds:
        for cell in cells:
            if cell.baseline and seed != seeds[0]:
                continue
            out.append(dataclasses.replace(cell, seed=seed))
    return out

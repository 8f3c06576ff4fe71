"""A grid of the first N masked faces of a dataset as ``mfr align`` aligned them (not chosen).

    .venv/bin/python benchmarks/aligned_grid.py SRC DST OUT.png [--count 64] [--columns 8]

SRC is the dataset, DST its ``mfr align`` output. The first ``--count`` masked images of SRC
in sorted order are shown; an image that could not be aligned is a dark red tile, so
failures are visible, not skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from mfr.align.batch import list_sources

TILE = 112


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--columns", type=int, default=8)
    args = parser.parse_args()
    masked = sorted(
        (item for item in list_sources(args.src) if "/masked/" in item.output),
        key=lambda item: item.output,
    )[: args.count]
    rows = -(-len(masked) // args.columns)
    grid = np.full((rows * TILE, args.columns * TILE, 3), 255, np.uint8)
    failed = 0
    for i, item in enumerate(masked):
        path = args.dst / item.output
        if path.is_file():
            tile = np.asarray(Image.open(path).convert("RGB").resize((TILE, TILE)))
        else:
            tile = np.zeros((TILE, TILE, 3), np.uint8)
            tile[..., 0] = 120
            failed += 1
        r, c = divmod(i, args.columns)
        grid[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tile
    Image.fromarray(grid).save(args.out, optimize=True)
    print(f"{len(masked)} masked faces, {failed} not aligned -> {args.out}")


if __name__ == "__main__":
    main()

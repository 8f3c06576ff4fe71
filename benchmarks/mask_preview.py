"""Draw ``docs/mask-preview.png``: real aligned LFW faces under every masking method.

Usage: python benchmarks/mask_preview.py [ALIGNED_DIR] [--out docs/mask-preview.png]

Columns: original, DE (erase), KP-CVX (hull), KP-SYN with the built-in surgical, N95, KN95
and cloth designs, KP-SYN with a MaskTheFace template, and the label of the last one. Rows:
faces of the aligned dataset (default ``runs/data/lfw-112``), frontal ones and one turned each
way (the template's pose variant follows). Saved as a 256-colour PNG to stay small.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mfr.align.landmarks import load_landmarks
from mfr.data.images import read_image
from mfr.masking import make_method
from mfr.masking.generate import image_rng
from mfr.masking.geometry import nose_offset
from mfr.paths import data_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aligned", nargs="?", default="runs/data/lfw-112")
    parser.add_argument("--out", default="docs/mask-preview.png")
    parser.add_argument("--rows", type=int, default=6)
    args = parser.parse_args()

    root = Path(args.aligned)
    landmarks, _ = load_landmarks(root)
    names = sorted(landmarks)[::97]
    offsets = {rel: nose_offset(landmarks[rel]) for rel in names}
    left = min(offsets, key=offsets.get)
    right = max(offsets, key=offsets.get)
    frontal = [rel for rel in names if abs(offsets[rel]) < 0.15][: args.rows - 2]
    chosen = frontal[:2] + [left] + frontal[2:] + [right]
    masks = data_root() / "mask-templates"
    methods = [
        make_method("erase"),
        make_method("hull"),
        make_method("template", "surgical"),
        make_method("template", "n95"),
        make_method("template", "kn95"),
        make_method("template", "cloth"),
        make_method("template", "surgical_blue:1,KN95:1,cloth:1", masks),
    ]
    rows = []
    for index, rel in enumerate(chosen):
        image, lm = read_image(root / rel), landmarks[rel]
        tiles = [image]
        for method in methods:
            out, label = method(image, lm, image_rng(index, rel))
            tiles.append(out)
        tiles.append(np.repeat(label[..., None], 3, axis=2))
        rows.append(np.hstack(tiles))
    grid = Image.fromarray(np.vstack(rows)).quantize(256, method=Image.Quantize.MEDIANCUT)
    grid.save(args.out, optimize=True)
    print(f"{args.out}: {len(chosen)} faces, {Path(args.out).stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

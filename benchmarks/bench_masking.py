"""Throughput of the masking methods against the bare decode + encode of the same files.

Usage: python benchmarks/bench_masking.py [ALIGNED_DIR] [--n 1000] [--rounds 3]

ALIGNED_DIR is an aligned dataset with its landmarks sidecar (default ``runs/data/lfw-112``,
made by ``mfr align ../shared/data/lfw/images runs/data/lfw-112``). Single process. For each
of the first N images: ``decode+encode`` reads the file and encodes it again in its own format
(in memory); each method adds its masking (and, in ``+label``, the label PNG encode the job
also writes). Rounds are interleaved and the best round of each is reported, so that other
load on the machine affects all rows alike; the ratio to decode+encode is the figure to quote.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mfr.align.landmarks import load_landmarks
from mfr.data.images import read_image
from mfr.masking import make_method
from mfr.masking.generate import encode_image, image_rng


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("aligned", nargs="?", default="runs/data/lfw-112")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--masks", default=None, help="MaskTheFace folder for a library row")
    args = parser.parse_args()

    root = Path(args.aligned)
    landmarks, size = load_landmarks(root)
    items = [(root / rel, rel, landmarks[rel]) for rel in sorted(landmarks)[: args.n]]
    print(f"{len(items)} aligned faces ({size} px) from {root}")

    def codec(path, rel, lm, method=None, label_too=False):
        image = read_image(path)
        if method is not None:
            image, label = method(image, lm, image_rng(0, rel))
            if label_too:
                encode_image(label, ".png")
        encode_image(image, path.suffix)

    from mfr.paths import data_root

    masks = args.masks or str(data_root() / "mask-templates")
    rows = {"decode+encode": dict()}
    for name in ("erase", "hull", "template"):
        rows[name] = dict(method=make_method(name))
        rows[f"{name} +label"] = dict(method=make_method(name), label_too=True)
    if Path(masks, "masks.cfg").is_file():
        rows["template (MaskTheFace folder)"] = dict(method=make_method("template", None, masks))
    for options in rows.values():  # warm up: template rendering and loading happen once
        for path, rel, lm in items[:20]:
            codec(path, rel, lm, **options)

    best = {name: float("inf") for name in rows}
    for _ in range(args.rounds):
        for name, options in rows.items():
            start = time.perf_counter()
            for path, rel, lm in items:
                codec(path, rel, lm, **options)
            best[name] = min(best[name], time.perf_counter() - start)

    base = len(items) / best["decode+encode"]
    print(f"{'job':32s} {'img/s':>9s} {'ms/img':>8s} {'vs decode+encode':>17s}")
    for name, seconds in best.items():
        rate = len(items) / seconds
        print(f"{name:32s} {rate:9.1f} {1000 / rate:8.3f} {rate / base:16.0%}")
    mask_only = {
        name: 1000 * (best[name] - best["decode+encode"]) / len(items)
        for name in rows
        if name != "decode+encode"
    }
    print("masking alone (ms/img): " + ", ".join(f"{k} {v:.3f}" for k, v in mask_only.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of ``mfr align`` against bare dlib detect + predict on the same LFW files.

    .venv/bin/python benchmarks/bench_align.py [--count 300] [--workers 1]

The bare loop decodes each JPEG (PIL), runs the HOG detector (upsample 1) and the 68-point
predictor on the largest face: the floor any dlib aligner pays. ``mfr align`` additionally
warps, encodes the PNG, writes it atomically and records progress. Both run in this process
(``--workers 1``) one after the other, three times, alternating, and the best of each is reported.
Goal: ``mfr align`` >= 90 % of the bare rate.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mfr.align.batch import align_folder
from mfr.align.dlib_models import hog_detector, landmark_predictor
from mfr.paths import data_root


def bare_dlib(paths: list[Path]) -> float:
    detector, predictor = hog_detector(), landmark_predictor(68)
    start = time.perf_counter()
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        rects = detector(image, 1)
        if len(rects):
            largest = max(rects, key=lambda r: r.width() * r.height())
            predictor(image, largest)
    return time.perf_counter() - start


def mfr_align(source: Path, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        align_folder(source, Path(out) / "dst", size=112, workers=workers, progress=False)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    lfw = data_root() / "lfw" / "images"
    paths = sorted(lfw.glob("*/*.jpg"))[:: max(1, 13233 // args.count)][: args.count]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        for path in paths:  # the same files, as an identity folder
            (source / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, source / path.parent.name / path.name)
        copies = sorted(source.glob("*/*.jpg"))
        hog_detector(), landmark_predictor(68)
        bare, ours = [], []
        for _ in range(3):
            bare.append(bare_dlib(copies))
            ours.append(mfr_align(source, args.workers))
    n = len(copies)
    bare_rate, our_rate = n / min(bare), n / min(ours)
    print(f"images: {n} LFW (250x250 JPEG), mfr align workers={args.workers}")
    print(f"bare dlib decode+detect+predict: {bare_rate:7.1f} img/s  (runs {bare})")
    print(f"mfr align (to PNG 112, sidecar): {our_rate:7.1f} img/s  (runs {ours})")
    print(f"ratio: {100 * our_rate / bare_rate:.1f} % (goal >= 90 %)")


if __name__ == "__main__":
    main()
